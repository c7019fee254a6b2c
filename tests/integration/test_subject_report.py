"""Subject-access report by blind index; no identifier is ever readable in the SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.audit import AuditSealer
from gateway.store import disclosures
from gateway.store.unit_of_work import Connection
from gateway.subject_report import InvalidNhsNumberError, subject_report
from tests.integration.store_support import (
    ADMIN,
    CLIENT,
    LOCAL_ID,
    NHS_NUMBER,
    T0,
    new_disclosure,
    open_store,
    protection,
)

OTHER_NHS = "9990005672"


async def test_report_finds_every_disclosure_about_the_person(
    database_url: str, tmp_path: Path
) -> None:
    prot = protection(tmp_path)
    mine = [new_disclosure(prot), new_disclosure(prot, partner="medway-ft")]
    theirs = new_disclosure(prot, nhs_number=OTHER_NHS, local_id="MDW-SYN-999")
    async with open_store(database_url) as store:

        async def record_three(conn: Connection) -> None:
            await disclosures.record_accepted(
                conn, mine[0], envelope=b"x", digest="d", actor=CLIENT, at=T0
            )
            await disclosures.record_denied(conn, mine[1], actor=CLIENT, at=T0)
            await disclosures.record_denied(conn, theirs, actor=CLIENT, at=T0)

        await store.write(record_three)
        by_nhs = await subject_report(store, prot, nhs_number="999 000 1235", actor=ADMIN, at=T0)
        by_local = await subject_report(store, prot, local_id=LOCAL_ID, actor=ADMIN, at=T0)
        nobody = await subject_report(store, prot, nhs_number="9990001006", actor=ADMIN, at=T0)
        with pytest.raises(ValueError, match="NHS number or a local id"):
            await subject_report(store, prot, actor=ADMIN, at=T0)
        # A typo (one digit off) is refused, not reported as "no disclosures".
        with pytest.raises(InvalidNhsNumberError, match="modulus 11") as refused:
            await subject_report(store, prot, nhs_number="9990001234", actor=ADMIN, at=T0)
        assert "9990001234" not in refused.value.message
    assert {d.id for d in by_nhs} == {d.id for d in mine}
    assert {d.id for d in by_local} == {d.id for d in mine}
    assert nobody == []
    line = next(d for d in by_nhs if d.id == mine[0].id)
    assert (line.partner, line.agreement_version, line.status) == ("kent-police", 3, "queued")
    assert line.fields_sent == ("person.name", "person.date_of_birth")
    assert line.as_dict()["date"] == T0.isoformat()


def database_bytes(folder: Path) -> bytes:
    """The SQLite file and any WAL or journal beside it."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("scan.db"))


async def test_no_identifier_in_plain_text_in_the_sqlite_file(tmp_path: Path) -> None:
    """Write every kind of row about the subject, then scan the database files' bytes."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'scan.db'}"
    prot = protection(tmp_path)
    request = f'{{"subject": {{"nhs_number": "{NHS_NUMBER}", "local_id": "{LOCAL_ID}"}}}}'.encode()
    async with open_store(url) as store:
        accepted, denied, held = (new_disclosure(prot) for _ in range(3))

        async def record_one_of_each(conn: Connection) -> None:
            await disclosures.record_accepted(
                conn, accepted, envelope=b"opaque-jwe", digest="d", actor=CLIENT, at=T0
            )
            await disclosures.record_denied(conn, denied, actor=CLIENT, at=T0)
            await disclosures.record_held(
                conn, held, request=request, protection=prot, actor=CLIENT, at=T0
            )

        await store.write(record_one_of_each)
        await subject_report(store, prot, nhs_number=NHS_NUMBER, actor=ADMIN, at=T0)
        await AuditSealer(store, clock=lambda: T0).seal_now()
    data = database_bytes(tmp_path)
    assert len(data) > 10_000  # the scan really read the database
    for needle in (NHS_NUMBER, "999 000 1235", LOCAL_ID):
        assert needle.encode() not in data, needle
        assert needle.encode("utf-16-le") not in data, needle
