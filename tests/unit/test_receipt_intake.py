"""Receipt intake against in-memory fakes: verified receipts move the status once, refusals are
audited with a code and refused."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agreements.model import Agreement, Partner
from gateway.application.receipt_intake import ReceiptIntake
from gateway.errors import NotFoundError
from gateway.jose import b64url_digest
from gateway.metrics import Metrics
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.receipts import ReceiptError, make_receipt
from gateway.store.disclosure_model import Disclosure, Status
from gateway.store.receipt_rows import StoredReceipt
from gateway.store.status_moves import Move

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
PARTNER, COUNCIL, ENVELOPE = "medway-ft", "medway-council", b"compact.jwe.bytes.here"


def _disclosure(id_: str = "d-1") -> Disclosure:
    return Disclosure(
        id=id_,
        client="case-system",
        agreement_id="KM-NHS-LAC-001",
        agreement_version=3,
        partner_id=PARTNER,
        purpose="looked_after_children_health",
        lawful_basis="art6(1)(e)",
        status=Status.DISPATCHED,
        fields_sent=("person.name",),
        fields_removed=(),
        requested_by_user="sw-1",
        requested_by_role="social_worker",
        reason="sealed",
        decision_reasons=(),
        approver=None,
        key_ids=("k1", "k2"),
        digest=b64url_digest(ENVELOPE),
        retain_until=NOW,
        envelope_purged_at=None,
        created_at=NOW - timedelta(seconds=3),
        updated_at=NOW,
        attempts=1,
        next_attempt_at=None,
    )


@dataclass
class FakeLedger:
    """The store side in memory: disclosures by id, receipts by id, refusals as (id, code)."""

    disclosures: dict[str, Disclosure] = field(default_factory=dict)
    receipts: dict[str, StoredReceipt] = field(default_factory=dict)
    moves: list[Move] = field(default_factory=list)
    refusals: list[tuple[str, str | None, str]] = field(default_factory=list)

    async def disclosure(self, message_id: str) -> Disclosure | None:
        return self.disclosures.get(message_id)

    async def record(self, receipt: StoredReceipt, move: Move, seen: Status) -> tuple[bool, Status]:
        if receipt.receipt_id in self.receipts:
            return False, seen
        self.receipts[receipt.receipt_id] = receipt
        self.moves.append(move)
        return True, move.to

    async def refused(
        self, *, message_id: str, partner: str | None, code: str, via: str, at: datetime
    ) -> None:
        self.refusals.append((message_id, partner, code))


@dataclass(frozen=True)
class Snapshot:
    agreements: Mapping[str, Agreement]
    partners: Mapping[str, Partner]
    keys: Mapping[str, tuple[PartnerKey, ...]]


@dataclass(frozen=True)
class Policy:
    snapshot: Snapshot


_, SIGNING = generate_partner_keys("ec")
_, STRANGER = generate_partner_keys("ec")
REGISTERED = PartnerKey.from_jwk(
    PARTNER, public_jwk(SIGNING), use="sig", not_before=NOW - timedelta(days=1)
)


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger(disclosures={"d-1": _disclosure()})


def _intake(ledger: FakeLedger) -> ReceiptIntake:
    policy = Policy(Snapshot({}, {}, {PARTNER: (REGISTERED,)}))
    return ReceiptIntake(
        records=ledger, policy=policy, org_id=COUNCIL, metrics=Metrics(), clock=lambda: NOW
    )


def _receipt(signing_key: Mapping[str, Any] = SIGNING, message_id: str = "d-1", **kw: Any) -> bytes:
    values: dict[str, Any] = {
        "partner_id": PARTNER,
        "council_id": COUNCIL,
        "message_id": message_id,
        "body_received": ENVELOPE,
        "status": "received",
        "signing_key": signing_key,
        "now": NOW,
        "receipt_id": "r-1",
    }
    values.update(kw)
    return make_receipt(**values)


async def test_a_verified_receipt_moves_the_disclosure_once(ledger: FakeLedger) -> None:
    intake = _intake(ledger)
    first = await intake.accept(_receipt())
    again = await intake.accept(_receipt())
    assert (first.status, first.duplicate) == (Status.RECEIPTED, False)
    assert (again.message_id, again.duplicate) == ("d-1", True)
    [move] = ledger.moves
    assert (move.id, move.to, move.event_type) == ("d-1", Status.RECEIPTED, "receipted")
    assert ledger.refusals == []


async def test_a_receipt_signed_by_an_unregistered_key_is_counted_not_stored(
    ledger: FakeLedger,
) -> None:
    metrics = Metrics()
    intake = ReceiptIntake(
        records=ledger,
        policy=Policy(Snapshot({}, {}, {PARTNER: (REGISTERED,)})),
        org_id=COUNCIL,
        metrics=metrics,
        clock=lambda: NOW,
    )
    with pytest.raises(ReceiptError) as refused:
        await intake.accept(_receipt(signing_key=STRANGER))
    assert ledger.moves == []
    assert ledger.refusals == []  # anyone could have sent it: nothing permanent
    counted = metrics.receipts_unauthenticated.labels(refused.value.code)._value.get()
    assert counted == 1


async def test_a_receipt_over_other_bytes_is_refused(ledger: FakeLedger) -> None:
    with pytest.raises(ReceiptError):
        await _intake(ledger).accept(_receipt(body_received=b"something else"))
    assert ledger.moves == []
    assert [code for *_, code in ledger.refusals] == ["receipt_digest_mismatch"]


async def test_a_receipt_for_an_unknown_message_is_not_found(ledger: FakeLedger) -> None:
    with pytest.raises(NotFoundError):
        await _intake(ledger).accept(_receipt(message_id="no-such"))
    assert ledger.refusals == []


async def test_a_synchronous_receipt_for_the_envelope_just_sent_is_recorded(
    ledger: FakeLedger,
) -> None:
    sent = ledger.disclosures["d-1"]
    recorded = await _intake(ledger).accept_sync(
        _receipt(), sent=sent, digest=b64url_digest(ENVELOPE), via="webhook"
    )
    assert (recorded.message_id, recorded.status) == ("d-1", Status.RECEIPTED)


async def test_a_synchronous_receipt_for_an_earlier_message_is_a_mismatch(
    ledger: FakeLedger,
) -> None:
    """A validly signed receipt for another message never settles this one, nor that one."""
    ledger.disclosures["d-0"] = _disclosure("d-0")
    earlier = _receipt(message_id="d-0", receipt_id="r-0")
    with pytest.raises(ReceiptError) as refused:
        await _intake(ledger).accept_sync(
            earlier, sent=ledger.disclosures["d-1"], digest=b64url_digest(ENVELOPE), via="webhook"
        )
    assert refused.value.code == "receipt_mismatch"
    assert ledger.moves == []
    assert ledger.refusals == [("d-1", PARTNER, "receipt_mismatch")]


async def test_a_synchronous_receipt_over_other_bytes_is_a_mismatch(ledger: FakeLedger) -> None:
    with pytest.raises(ReceiptError) as refused:
        await _intake(ledger).accept_sync(
            _receipt(), sent=ledger.disclosures["d-1"], digest=b64url_digest(b"resealed"), via="w"
        )
    assert refused.value.code == "receipt_mismatch"
    assert ledger.moves == []


async def test_a_badly_signed_synchronous_receipt_keeps_its_own_code(ledger: FakeLedger) -> None:
    with pytest.raises(ReceiptError) as refused:
        await _intake(ledger).accept_sync(
            _receipt(signing_key=STRANGER),
            sent=ledger.disclosures["d-1"],
            digest=b64url_digest(ENVELOPE),
            via="webhook",
        )
    assert refused.value.code != "receipt_mismatch"
    assert ledger.moves == []
