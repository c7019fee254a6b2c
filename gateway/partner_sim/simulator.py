"""One simulated partner, runnable in-process: start it, point a webhook at it, read its ledger.

The demo runs two or three of these inside the gateway's own event loop; tests run one per
test on a loopback port; `gateway partner-sim` runs one as its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from gateway import jose
from gateway.partner_sim.config import PartnerConfig, ReceiptMode
from gateway.partner_sim.council_jwks import CouncilJwks, provider_for
from gateway.partner_sim.faults import Fault, FaultPolicy, FaultRates
from gateway.partner_sim.inbox import SIMULATED_REJECTION, Inbox
from gateway.partner_sim.key_pairs import (
    KeyType,
    PartnerKeyPair,
    generate_keys,
    load_or_create_keys,
)
from gateway.partner_sim.ledger import GivenReceipt, Ledger, LedgerEntry
from gateway.partner_sim.receipt_poster import ReceiptPoster
from gateway.partner_sim.web import create_app

log = structlog.get_logger("gateway.partner_sim")


@dataclass(frozen=True, slots=True)
class TakenIn:
    """An envelope the partner took in: its ledger entry and the receipt to answer with, if any."""

    entry: LedgerEntry
    receipt: GivenReceipt | None


class PartnerSimulator:
    """A partner that opens envelopes, keeps a ledger, signs receipts and misbehaves on request."""

    def __init__(self, config: PartnerConfig, *, keys: PartnerKeyPair | None = None) -> None:
        self.config = config
        if keys is None:
            keys = (
                load_or_create_keys(config.keys_dir, config.key_type)
                if config.keys_dir is not None
                else generate_keys(config.key_type or KeyType.EC)
            )
        self.keys = keys
        self.ledger = Ledger()
        self.in_flight = 0  # envelope requests being answered now
        self.peak_in_flight = 0  # the most at once: how hard the gateway leaned on us
        # A simulation, not security: the seeded RNG makes fault sequences reproducible.
        self.faults = FaultPolicy(config.faults, random.Random(config.seed))  # noqa: S311
        self.receipts = ReceiptMode(config.receipts)
        self._session: aiohttp.ClientSession | None = None
        self.jwks = CouncilJwks(
            provider_for(config.council_jwks, self._client),
            max_refetches=config.jwks_max_refetches,
            window_s=config.jwks_refetch_window_s,
        )
        self.inbox = Inbox(
            partner_id=config.partner_id,
            council_id=config.council_id,
            keys=keys,
            jwks=self.jwks,
            clock=config.clock,
        )
        self.poster = (
            ReceiptPoster(config.async_receipt_url, self._client, policy=config.receipt_retry)
            if config.async_receipt_url
            else None
        )
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.base_url: str | None = None

    def __repr__(self) -> str:
        return f"PartnerSimulator(partner_id={self.config.partner_id!r}, url={self.base_url!r})"

    def public_keys(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The public (encryption, signing) JWKs the council registers for this partner."""
        return self.keys.public()

    def set_faults(self, **changes: Any) -> FaultRates:
        """Change fault rates at runtime, e.g. set_faults(fail_rate=1.0) for "down for a while"."""
        rates = self.faults.change(**changes)
        log.info("faults_changed", partner=self.config.partner_id, **rates.to_dict())
        return rates

    def set_receipts(self, mode: ReceiptMode | str) -> ReceiptMode:
        """Switch how receipts are given; async needs an async receipt URL configured."""
        new = ReceiptMode(mode)
        if new is ReceiptMode.ASYNC and self.poster is None:
            raise ValueError("async receipts need an async receipt URL")
        self.receipts = new
        return new

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: any free port); returns the base URL to POST envelopes to."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        self._stopping.clear()
        runner = web.AppRunner(create_app(self), access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.base_url = f"http://{shown}:{bound[1]}"
        log.info("partner_sim_started", partner=self.config.partner_id, host=host, port=bound[1])
        return self.base_url

    async def stop(self) -> None:
        """Stop serving: held requests are answered at once, receipt posting stops."""
        self._stopping.set()
        if self.poster is not None:
            await self.poster.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> PartnerSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Count one envelope request in flight while it is answered."""
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1

    async def wait(self, seconds: float) -> None:
        """Sleep for a fault's delay, cut short when the simulator stops."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    async def take_in(self, body: bytes, hint: str | None, fault: Fault) -> TakenIn | None:
        """Open, record and (maybe) receipt one envelope; None when it names no message id."""
        verdict = await self.inbox.open(body, hint)
        if verdict.message_id is None:
            self.ledger.unidentified += 1
            return None
        digest = jose.b64url_digest(body)
        entry = self.ledger.arrived(verdict.message_id, digest, self.config.clock())
        entry.check = verdict.check
        if verdict.status == "received":
            entry.issuer, entry.agreement, entry.purpose = (
                verdict.issuer,
                verdict.agreement,
                verdict.purpose,
            )
            entry.subject_fields, entry.data_fields = verdict.subject_fields, verdict.data_fields
        receipt = entry.receipts.get(digest)  # a duplicate is answered as it was the first time
        if (
            receipt is None
            and self.receipts is not ReceiptMode.NEVER
            and fault is not Fault.NO_RECEIPT
        ):
            status, reason = verdict.status, verdict.reason
            if fault is Fault.REJECT and status == "received":
                status, reason = "rejected", SIMULATED_REJECTION
            receipt = self.inbox.receipt(verdict.message_id, body, status, reason)
            entry.receipts[digest] = receipt
        entry.status, entry.reason = (
            (receipt.status, receipt.reason) if receipt else (verdict.status, verdict.reason)
        )
        log.debug(  # one line per envelope: debug, so a benchmark run is not a logging run
            "envelope_taken_in",
            partner=self.config.partner_id,
            message_id=entry.message_id,
            status=entry.status,
            reason=entry.reason,
            count=entry.count,
        )
        if receipt is not None and self.receipts is ReceiptMode.ASYNC and self.poster is not None:
            self.poster.post(entry, receipt.token, delay_s=self.config.receipt_delay_s)
            return TakenIn(entry, None)
        return TakenIn(entry, receipt if self.receipts is ReceiptMode.SYNC else None)

    def report(self) -> dict[str, Any]:
        """The ledger and the simulator's own counters, as GET /ledger shows them."""
        return {
            "partner_id": self.config.partner_id,
            "receipts": self.receipts.value,
            "faults": self.faults.summary(),
            "jwks_fetches": self.jwks.fetches,
            "async_receipts_pending": self.poster.pending if self.poster else 0,
            "peak_in_flight": self.peak_in_flight,
            **self.ledger.to_dict(),
        }

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(trust_env=False)
        return self._session
