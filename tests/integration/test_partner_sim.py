"""The partner simulator on a real loopback port, fed by the real webhook channel."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.webhook import WebhookChannel
from gateway.application.channel import DeliveryOutcome, DeliveryResult, Envelope
from gateway.jose import b64url_digest
from gateway.keys import CouncilKeyring, PartnerKey
from gateway.partner_sim import (
    Fault,
    FaultRates,
    KeyType,
    PartnerConfig,
    PartnerSimulator,
    ReceiptMode,
)
from gateway.partner_sim.faults import decide
from gateway.queue.retry import RetryPolicy
from gateway.receipts import VerifiedReceipt, verify_receipt
from gateway.sealing import EnvelopeAgreement, EnvelopeClaims, SealedEnvelope, seal

ServerFactory = Callable[..., Awaitable[TestServer]]
COUNCIL = "medway-council"
PARTNER = "kent-lac-nurses"
NHS_NUMBER = "9434765919"  # synthetic (the NHS's published test range)
SECRET_VALUES = (NHS_NUMBER, "Asthma-synthetic", "Ada Testperson")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Council:
    """The council side of a test: a keyring and a JWKS server that counts its fetches."""

    keyring: CouncilKeyring
    jwks_url: str = ""
    fetches: int = 0

    def seal(self, sim: PartnerSimulator, message_id: str) -> SealedEnvelope:
        enc, _ = sim.public_keys()
        recipient = PartnerKey.from_jwk(sim.config.partner_id, enc, use="enc")
        claims = EnvelopeClaims(
            iss=COUNCIL,
            aud=sim.config.partner_id,
            jti=message_id,
            iat=now(),
            agreement=EnvelopeAgreement("isa-lac-health", 2),
            purpose="looked_after_children_health",
            subject={"nhs_number": NHS_NUMBER},
            data={"name": "Ada Testperson", "health": {"diagnoses": ["Asthma-synthetic"]}},
            retain_until=date(2032, 3, 31),
            onward_sharing="prohibited",
        )
        return seal(claims, self.keyring.active_signer(now()), recipient)


@dataclass
class ReceiptInbox:
    """The gateway's POST /v1/receipts, played by a small app: first `refuse_first` get 503."""

    refuse_first: int = 0
    bodies: list[bytes] = field(default_factory=list)
    calls: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()
        if self.calls <= self.refuse_first:
            return web.Response(status=503)
        assert request.content_type == "application/jose"
        self.bodies.append(body)
        return web.json_response({"receipt_id": "x"})


@pytest.fixture
async def council(tmp_path: Path, aiohttp_server: ServerFactory) -> Council:
    keyring = CouncilKeyring(tmp_path / "council")
    keyring.generate("ES256", now())
    council = Council(keyring)

    async def jwks(_: web.Request) -> web.Response:
        council.fetches += 1
        return web.json_response(keyring.jwks(now()))

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    server = await aiohttp_server(app)
    council.jwks_url = str(server.make_url("/.well-known/jwks.json"))
    return council


@pytest.fixture
async def channel() -> AsyncIterator[WebhookChannel]:
    webhook = WebhookChannel(allow_insecure_loopback=True, total_timeout=0.3, connect_timeout=0.5)
    yield webhook
    await webhook.close()


@pytest.fixture
async def running() -> AsyncIterator[Callable[..., Awaitable[PartnerSimulator]]]:
    started: list[PartnerSimulator] = []

    async def start(config: PartnerConfig) -> PartnerSimulator:
        sim = PartnerSimulator(config)
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.stop()


def config(council: Council, **overrides: Any) -> PartnerConfig:
    values: dict[str, Any] = {
        "partner_id": PARTNER,
        "council_id": COUNCIL,
        "council_jwks": council.jwks_url,
        "timeout_hold_s": 2.0,
    }
    values.update(overrides)
    return PartnerConfig(**values)


async def deliver(
    channel: WebhookChannel, sim: PartnerSimulator, sealed: SealedEnvelope, message_id: str
) -> DeliveryResult:
    envelope = Envelope(message_id, sim.config.partner_id, sealed.body, sealed.digest)
    return await channel.deliver(envelope, {"endpoint": f"{sim.base_url}/in"})


def check_receipt(
    sim: PartnerSimulator, token: bytes, message_id: str, digest: str
) -> VerifiedReceipt:
    _, sig = sim.public_keys()
    return verify_receipt(
        token,
        partner_keys=[PartnerKey.from_jwk(sim.config.partner_id, sig, use="sig")],
        partner_id=sim.config.partner_id,
        council_id=COUNCIL,
        message_id=message_id,
        expected_digest=digest,
        now=now(),
    )


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.json()


async def post_json(url: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        return response.status, await response.json(content_type=None)


async def test_an_envelope_is_opened_recorded_and_receipted(
    council: Council, channel: WebhookChannel, running: Any
) -> None:
    sim = await running(config(council))
    sealed = council.seal(sim, "d-0001")

    result = await deliver(channel, sim, sealed, "d-0001")

    assert result.outcome is DeliveryOutcome.RECEIPTED, result
    assert result.receipt is not None
    receipt = check_receipt(sim, result.receipt, "d-0001", sealed.digest)
    assert (receipt.status, receipt.reason) == ("received", None)
    entry = sim.ledger.get("d-0001")
    assert entry is not None
    assert (entry.count, entry.status, entry.digests) == (1, "received", [sealed.digest])
    assert entry.agreement == {"id": "isa-lac-health", "version": 2}
    assert entry.subject_fields == ["nhs_number"]
    assert entry.data_fields == ["health.diagnoses", "name"]
    assert council.fetches == 1


async def test_the_ledger_shows_names_and_ids_never_values(
    council: Council, channel: WebhookChannel, running: Any
) -> None:
    sim = await running(config(council))
    sealed = council.seal(sim, "d-0002")
    await deliver(channel, sim, sealed, "d-0002")

    async with aiohttp.ClientSession() as session, session.get(f"{sim.base_url}/ledger") as got:
        text = await got.text()
    ledger = await get_json(f"{sim.base_url}/ledger")

    assert all(value not in text for value in SECRET_VALUES)
    assert "nhs_number" in text
    assert ledger["messages"] == 1
    assert ledger["entries"][0]["message_id"] == "d-0002"
    assert ledger["entries"][0]["digests"] == [sealed.digest]
    assert ledger["entries"][0]["answers"] == {"receipt": 1}
    assert ledger["jwks_fetches"] == 1


async def test_a_duplicate_is_counted_and_answered_with_the_same_receipt(
    council: Council, channel: WebhookChannel, running: Any
) -> None:
    sim = await running(config(council))
    sealed = council.seal(sim, "d-0003")

    first = await deliver(channel, sim, sealed, "d-0003")
    second = await deliver(channel, sim, sealed, "d-0003")

    assert first.outcome is second.outcome is DeliveryOutcome.RECEIPTED
    assert first.receipt == second.receipt
    entry = sim.ledger.get("d-0003")
    assert entry is not None
    assert entry.duplicate
    assert (entry.count, len(entry.receipts)) == (2, 1)
    assert (sim.ledger.arrivals, sim.ledger.duplicates) == (2, 1)


async def test_a_tampered_envelope_gets_a_rejected_receipt(
    council: Council, channel: WebhookChannel, running: Any
) -> None:
    sim = await running(config(council))
    sealed = council.seal(sim, "d-0004")
    parts = sealed.body.split(b".")
    flipped = parts[3][:10] + (b"A" if parts[3][10:11] != b"A" else b"B") + parts[3][11:]
    tampered_body = b".".join([*parts[:3], flipped, parts[4]])
    tampered = SealedEnvelope(tampered_body, b64url_digest(tampered_body), "", "")

    result = await deliver(channel, sim, tampered, "d-0004")

    assert result.outcome is DeliveryOutcome.RECEIPTED
    assert result.receipt is not None
    receipt = check_receipt(sim, result.receipt, "d-0004", tampered.digest)
    assert (receipt.status, receipt.reason) == ("rejected", "envelope_invalid")
    entry = sim.ledger.get("d-0004")
    assert entry is not None
    assert (entry.status, entry.check) == ("rejected", "envelope_decrypt_failed")
    assert entry.data_fields == []


async def test_a_signature_by_a_key_the_council_never_published_is_signature_invalid(
    council: Council, channel: WebhookChannel, running: Any, tmp_path: Path
) -> None:
    sim = await running(config(council))
    impostor = CouncilKeyring(tmp_path / "impostor")
    impostor.generate("ES256", now())
    forged = Council(impostor).seal(sim, "d-0005")

    result = await deliver(channel, sim, forged, "d-0005")

    assert result.receipt is not None
    receipt = check_receipt(sim, result.receipt, "d-0005", forged.digest)
    assert (receipt.status, receipt.reason) == ("rejected", "signature_invalid")
    assert sim.ledger.get("d-0005").check == "envelope_unknown_key"
    assert council.fetches == 2  # the unknown kid made it look once more


async def test_the_jwks_is_fetched_again_when_the_council_rotates(
    council: Council, channel: WebhookChannel, running: Any
) -> None:
    sim = await running(config(council))
    before = council.seal(sim, "d-0006")
    assert (await deliver(channel, sim, before, "d-0006")).outcome is DeliveryOutcome.RECEIPTED
    assert council.fetches == 1

    council.keyring.rotate(now(), overlap=timedelta(days=7))
    after = council.seal(sim, "d-0007")
    result = await deliver(channel, sim, after, "d-0007")
    again = await deliver(channel, sim, council.seal(sim, "d-0008"), "d-0008")

    assert result.receipt is not None
    assert check_receipt(sim, result.receipt, "d-0007", after.digest).status == "received"
    assert again.outcome is DeliveryOutcome.RECEIPTED
    assert council.fetches == sim.jwks.fetches == 2  # once for the new kid, then cached


async def test_a_jwks_refetch_is_rate_limited(
    council: Council, channel: WebhookChannel, running: Any, tmp_path: Path
) -> None:
    sim = await running(config(council, jwks_max_refetches=1, jwks_refetch_window_s=3600.0))
    impostor = CouncilKeyring(tmp_path / "impostor")
    impostor.generate("ES256", now())
    for n in range(3):
        forged = Council(impostor).seal(sim, f"d-01{n}")
        await deliver(channel, sim, forged, f"d-01{n}")
    assert council.fetches == 2  # the first fetch and one refetch; then the limit held


async def test_fault_injection_with_a_fixed_seed_gives_the_expected_mix(
    council: Council, channel: WebhookChannel, running: Any
) -> None:
    rates = FaultRates(fail_rate=0.25, timeout_rate=0.1, reject_rate=0.15, no_receipt_rate=0.1)
    sim = await running(config(council, faults=rates, seed=1234, timeout_hold_s=1.0))
    rng = random.Random(1234)
    expected = [decide(rates, rng).fault for _ in range(30)]
    assert set(expected) == set(Fault)  # the seed exercises every fault

    seen: list[Fault] = []
    for n in range(30):
        sealed = council.seal(sim, f"m-{n}")
        result = await deliver(channel, sim, sealed, f"m-{n}")
        seen.append(classify(sim, result, f"m-{n}", sealed.digest))

    assert seen == expected
    served = sim.faults.summary()["served"]
    assert served == {fault.value: expected.count(fault) for fault in Fault}
    # 503s were never taken in; timed-out ones were (the partner got it, the answer was lost).
    assert len(sim.ledger) == 30 - expected.count(Fault.FAIL)


def classify(sim: PartnerSimulator, result: DeliveryResult, message_id: str, digest: str) -> Fault:
    if result.outcome is DeliveryOutcome.TRANSIENT:
        return {"partner_server_error": Fault.FAIL, "partner_timeout": Fault.TIMEOUT}[
            str(result.reason)
        ]
    if result.outcome is DeliveryOutcome.DISPATCHED:
        return Fault.NO_RECEIPT
    assert result.outcome is DeliveryOutcome.RECEIPTED
    assert result.receipt is not None
    receipt = check_receipt(sim, result.receipt, message_id, digest)
    if receipt.status == "rejected":
        assert receipt.reason == "simulated_rejection"
        return Fault.REJECT
    return Fault.NONE


async def test_a_partner_down_for_a_while_then_back_via_control(
    council: Council, channel: WebhookChannel, running: Any
) -> None:
    sim = await running(config(council))
    sealed = council.seal(sim, "d-0020")

    status, body = await post_json(f"{sim.base_url}/control", {"fail_rate": 1.0})
    assert (status, body["faults"]["fail_rate"]) == (200, 1.0)
    down = await deliver(channel, sim, sealed, "d-0020")
    status, _ = await post_json(f"{sim.base_url}/control", {"fail_rate": 0})
    back = await deliver(channel, sim, sealed, "d-0020")

    assert (down.outcome, down.reason) == (DeliveryOutcome.TRANSIENT, "partner_server_error")
    assert status == 200
    assert back.outcome is DeliveryOutcome.RECEIPTED
    assert sim.ledger.get("d-0020").count == 1


@pytest.mark.parametrize(
    ("body", "code", "field_name"),
    [
        ({"fail_rate": 2}, "control_invalid", "fail_rate"),
        ({"fail_rate": "high"}, "control_invalid", "fail_rate"),
        ({"colour": "red"}, "control_invalid", "colour"),
        ({"fail_rate": 0.7, "reject_rate": 0.7}, "fault_config_invalid", None),
        ({"receipts": "async"}, "control_invalid", None),
    ],
)
async def test_control_refuses_impossible_settings(
    council: Council, running: Any, body: dict[str, Any], code: str, field_name: str | None
) -> None:
    sim = await running(config(council, faults=FaultRates(reject_rate=0.1)))
    status, problem = await post_json(f"{sim.base_url}/control", body)
    assert (status, problem["code"]) == (422, code)
    if field_name is not None:
        assert [e["field"] for e in problem["errors"]] == [field_name]
    assert sim.faults.rates == FaultRates(reject_rate=0.1)
    assert sim.receipts is ReceiptMode.SYNC


async def test_slow_answers_are_slow(
    council: Council, channel: WebhookChannel, running: Any
) -> None:
    sim = await running(config(council, faults=FaultRates(slow_ms=150)))
    started = time.monotonic()
    result = await deliver(channel, sim, council.seal(sim, "d-0030"), "d-0030")
    assert result.outcome is DeliveryOutcome.RECEIPTED
    assert time.monotonic() - started >= 0.15
    assert sim.faults.summary()["slow"] == 1


async def test_async_receipts_are_posted_later_with_retries(
    council: Council, channel: WebhookChannel, running: Any, aiohttp_server: ServerFactory
) -> None:
    inbox = ReceiptInbox(refuse_first=1)
    app = web.Application()
    app.router.add_post("/v1/receipts", inbox.handle)
    server = await aiohttp_server(app)
    sim = await running(
        config(
            council,
            receipts=ReceiptMode.ASYNC,
            async_receipt_url=str(server.make_url("/v1/receipts")),
            receipt_retry=RetryPolicy((timedelta(milliseconds=20),), max_attempts=5),
        )
    )
    sealed = council.seal(sim, "d-0040")

    result = await deliver(channel, sim, sealed, "d-0040")
    assert (result.outcome, result.receipt) == (DeliveryOutcome.DISPATCHED, None)
    await poll(lambda: len(inbox.bodies) == 1)

    assert check_receipt(sim, inbox.bodies[0], "d-0040", sealed.digest).status == "received"
    entry = sim.ledger.get("d-0040")
    assert entry is not None
    assert entry.async_receipt is not None
    assert entry.async_receipt["state"] == "delivered"
    assert (entry.async_receipt["attempts"], inbox.calls) == (2, 2)

    await deliver(channel, sim, sealed, "d-0040")  # a duplicate: the same receipt again
    await poll(lambda: len(inbox.bodies) == 2)
    assert inbox.bodies[1] == inbox.bodies[0]


async def test_never_mode_takes_in_and_never_receipts(
    council: Council, channel: WebhookChannel, running: Any
) -> None:
    sim = await running(config(council, receipts=ReceiptMode.NEVER))
    result = await deliver(channel, sim, council.seal(sim, "d-0050"), "d-0050")
    assert (result.outcome, result.receipt) == (DeliveryOutcome.DISPATCHED, None)
    entry = sim.ledger.get("d-0050")
    assert entry is not None
    assert (entry.status, entry.receipts, dict(entry.answers)) == ("received", {}, {"accepted": 1})


async def test_an_unreachable_council_jwks_is_a_503_not_a_rejection(
    council: Council, channel: WebhookChannel, running: Any
) -> None:
    sim = await running(config(council, council_jwks="http://127.0.0.1:9/.well-known/jwks.json"))
    result = await deliver(channel, sim, council.seal(sim, "d-0060"), "d-0060")
    assert (result.outcome, result.reason) == (DeliveryOutcome.TRANSIENT, "partner_server_error")
    assert len(sim.ledger) == 0


async def test_garbage_without_a_message_id_is_a_400_and_counted(
    council: Council, running: Any
) -> None:
    sim = await running(config(council))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sim.base_url}/",
            data=b"not.a.jwe",
            headers={"Content-Type": "application/jose"},
        ) as response,
    ):
        problem = await response.json(content_type=None)
    assert (response.status, problem["code"]) == (400, "envelope_invalid")
    assert (len(sim.ledger), sim.ledger.unidentified) == (0, 1)


async def test_an_in_process_x25519_partner_with_a_jwks_function(
    council: Council, channel: WebhookChannel, running: Any
) -> None:
    async def jwks() -> dict[str, Any]:
        return council.keyring.jwks(now())

    sim = await running(config(council, council_jwks=jwks, key_type=KeyType.X25519))
    enc, sig = sim.public_keys()
    assert (enc["crv"], sig["crv"]) == ("X25519", "Ed25519")
    sealed = council.seal(sim, "d-0070")
    result = await deliver(channel, sim, sealed, "d-0070")
    assert result.receipt is not None
    assert check_receipt(sim, result.receipt, "d-0070", sealed.digest).status == "received"
    assert council.fetches == 0  # the function was asked, not the URL


async def poll(done: Callable[[], bool], deadline_s: float = 5.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not done():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)
