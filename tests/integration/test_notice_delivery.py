"""An Article 19 notice travels the disclosure pipeline: relayed from the outbox, delivered over
the partner's usual channel (here a webhook to the partner simulator, which opens it as a notice,
not a disclosure) and receipted, even after the agreement it was sent under has ended."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from gateway import audit, retention
from gateway.application.notice_sending import SendNotices
from gateway.application.recipient_notices import NoticeKind, NoticeRequest
from gateway.notice_envelope import NoticeSealer
from gateway.protection import Protection
from gateway.store.disclosure_model import Status
from gateway.store.tables import disclosures, subject_notices
from tests.integration.delivery_support import COUNCIL, Rig, utc_now

NHS_NUMBER = "9990000026"
DPO = audit.Actor(audit.ActorKind.ADMIN, "dpo.example")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    built = await Rig.open(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}")
    yield built
    await built.close()


async def test_a_notice_is_delivered_and_receipted_after_the_agreement_ended(
    rig: Rig, tmp_path: Path
) -> None:
    protection = Protection.from_dir(tmp_path / "protection")
    sim = await rig.add_partner("care-home")
    await rig.add_partner("other-home")
    await rig.start()
    [told] = await rig.submit("care-home")
    [other] = await rig.submit("other-home")  # someone else's data: that partner is not told
    await rig.wait_for([told, other], Status.RECEIPTED)
    index = protection.blind_index("nhs_number", NHS_NUMBER)
    await rig.store.write(
        lambda conn: conn.execute(
            update(disclosures).where(disclosures.c.id == told).values(subject_nhs_index=index)
        )
    )
    await rig.set_agreement_status("care-home", "terminated")

    notices = SendNotices(
        org_id=COUNCIL,
        store=rig.store,
        policy=lambda: rig.policy.snapshot,
        sealer=NoticeSealer(rig.keyring),
        protection=protection,
        clock=utc_now,
        envelope_lifetime=timedelta(days=30),
        records_retention=timedelta(days=6 * 365),
    )
    run = await notices.send(
        NoticeRequest(
            nhs_number=NHS_NUMBER,
            kind=NoticeKind.ERASURE,
            reason="Record created for the wrong person",
            fields=(),
            corrections={},
            actor=DPO,
        )
    )
    assert [n.partner for n in run.notices] == ["care-home"]
    [notice] = run.notices
    assert notice.disclosure_ids == (told,)
    assert rig.service is not None
    rig.service.notify()
    await rig.wait_for([notice.notice_id], Status.RECEIPTED)

    entry = sim.ledger.get(notice.notice_id)
    assert entry is not None  # the partner opened it as a notice, not as a disclosure
    assert entry.status == "received"
    assert entry.purpose == "art19_erasure"
    assert entry.data_fields == ["identity.name"]
    [status] = await notices.about(NHS_NUMBER)
    assert status.status == "receipted"
    assert status.record.partner_id == "care-home"

    # The proof of telling the partner is kept for the schedule, then goes with its record.
    schedule = timedelta(days=6 * 365)
    kept = await retention.run(
        rig.store, now=utc_now() + timedelta(days=365), records_retention=schedule
    )
    assert notice.notice_id not in kept.metadata_deleted
    gone = await retention.run(rig.store, now=utc_now() + 2 * schedule, records_retention=schedule)
    assert notice.notice_id in gone.metadata_deleted
    assert await notices.about(NHS_NUMBER) == []
    async with rig.store.read() as conn:
        assert (await conn.execute(select(subject_notices.c.id))).all() == []
