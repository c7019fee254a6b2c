"""A partner that misbehaves on command: the simulator behind a front the test switches.

The simulator opens envelopes, keeps the ledger and signs receipts; the front decides what the
gateway hears back. Every mode but `unavailable` lets the simulator take the envelope in first,
so the partner really has it, as after a lost answer.
"""

from __future__ import annotations

import asyncio
import enum
import io
from collections import Counter
from datetime import datetime, timedelta

import aiohttp
from aiohttp import web

from gateway import audit
from gateway.application.partner_key_admin import add_partner_key
from gateway.partner_keys import KeyUse, PartnerKey
from gateway.partner_sim import PartnerConfig, PartnerSimulator
from gateway.store.database import Store

JOSE = "application/jose"
POISON = b"\x00\xffnot-a-receipt\x00" * 16


class Mode(enum.StrEnum):
    """What the partner answers to the next envelopes."""

    OK = "ok"  # the simulator's signed receipt
    UNAVAILABLE = "unavailable"  # 503 before taking the envelope in
    TIMEOUT = "timeout"  # taken in; no answer before the gateway's webhook timeout
    SLOW = "slow"  # taken in; the receipt comes late, within the timeout
    NO_RECEIPT = "no_receipt"  # taken in; 202 now, the receipt posted to /v1/receipts later
    STALE = "stale"  # taken in; answered with the receipt of an earlier message
    POISON = "poison"  # taken in; 200 application/jose with bytes that are no receipt


class MisbehavingPartner:
    """One webhook partner for the chaos cases: `mode` is switched by the test at any time."""

    def __init__(self, partner_id: str, council_jwks: str, *, hold_s: float, slow_s: float) -> None:
        self.sim = PartnerSimulator(PartnerConfig(partner_id=partner_id, council_jwks=council_jwks))
        self.mode = Mode.OK
        self.hold_s, self.slow_s = hold_s, slow_s
        self.answered: dict[str, int] = {mode.value: 0 for mode in Mode}
        self.late_receipts: Counter[int] = Counter()  # answers to the withheld receipts
        self.receipts_url = ""  # the gateway's POST /v1/receipts, for withheld receipts
        self._withheld: list[bytes] = []
        self._last_receipt: bytes | None = None
        self._runner: web.AppRunner | None = None
        self._sim_url = ""
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> str:
        """Start the simulator and the front; returns the front's envelope URL."""
        self._sim_url = await self.sim.start()
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/in", self._envelope)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/in"
        return self.url

    async def stop(self) -> None:
        """Stop the front and the simulator."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        await self.sim.stop()

    async def register(self, store: Store, actor: audit.Actor, at: datetime) -> None:
        """Register the simulator's public keys with the council."""
        enc, sig = self.sim.public_keys()
        partner = self.sim.config.partner_id
        uses: tuple[KeyUse, KeyUse] = ("enc", "sig")
        for jwk, use in zip((enc, sig), uses, strict=True):
            key = PartnerKey.from_jwk(partner, jwk, use=use, not_before=at - timedelta(days=1))
            await add_partner_key(store, key, actor=actor, at=at)

    async def release_withheld(self) -> None:
        """Post every withheld receipt to the gateway, as a partner catching up would."""
        assert self._session is not None
        while self._withheld:
            token = self._withheld.pop()
            for _ in range(50):
                try:
                    async with self._session.post(
                        self.receipts_url, data=token, headers={"Content-Type": JOSE}
                    ) as resp:
                        self.late_receipts[resp.status] += 1
                        if resp.status < 500 and resp.status != 429:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)

    async def _envelope(self, request: web.Request) -> web.StreamResponse:
        mode = self.mode
        self.answered[mode.value] += 1
        if mode is Mode.UNAVAILABLE:
            return web.json_response({"status": "unavailable"}, status=503)
        body = await request.read()
        assert self._session is not None
        headers = {"Content-Type": JOSE}
        if "X-Gatehouse-Message-Id" in request.headers:
            headers["X-Gatehouse-Message-Id"] = request.headers["X-Gatehouse-Message-Id"]
        forward = io.BytesIO(body)  # aiohttp streams a file-like body, bytes in one write
        async with self._session.post(self._sim_url + "/in", data=forward, headers=headers) as resp:
            status, receipt = resp.status, await resp.read()
        if status != 200:
            return web.Response(status=status, body=receipt, content_type="application/json")
        if mode is Mode.TIMEOUT:
            await asyncio.sleep(self.hold_s)
            return web.json_response({"status": "timeout"}, status=504)
        if mode is Mode.SLOW:
            await asyncio.sleep(self.slow_s)
        if mode is Mode.NO_RECEIPT:
            self._withheld.append(receipt)
            return web.json_response({"status": "accepted"}, status=202)
        if mode is Mode.POISON:
            return web.Response(status=200, body=POISON, content_type=JOSE)
        stale, self._last_receipt = self._last_receipt, receipt
        if mode is Mode.STALE and stale is not None and stale != receipt:
            return web.Response(status=200, body=stale, content_type=JOSE)
        return web.Response(status=200, body=receipt, content_type=JOSE)
