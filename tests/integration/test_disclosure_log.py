"""The disclosure log and the record of processing on 100,000 disclosures: counts that match."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

import pytest

from gateway.application.disclosure_log import COLUMNS, DisclosureLogQuery, read_disclosure_log
from gateway.cli.admin import main
from gateway.store import disclosure_listing as log_rows
from gateway.store.disclosure_listing import Cursor, LogFilter, LoggedDisclosure
from gateway.store.unit_of_work import Connection
from tests.integration.cli_support import admin_env, run
from tests.integration.records_support import SHARES, Tally, seed_history
from tests.integration.store_support import T0, open_store

COUNT = 100_000
pytestmark = pytest.mark.timeout(600)


class CountingPages:
    """The store's pages, with the largest page and the number of pages asked for."""

    def __init__(self) -> None:
        self.pages = 0
        self.largest = 0

    async def page(
        self, conn: Connection, chosen: LogFilter, *, after: Cursor | None, limit: int
    ) -> list[LoggedDisclosure]:
        found = await log_rows.page(conn, chosen, after=after, limit=limit)
        self.pages += 1
        self.largest = max(self.largest, len(found))
        return found


def seed_and_stream(url: str) -> tuple[Tally, int, CountingPages, int]:
    """Seed the history, then stream all of it under tracemalloc; (tally, seen, pages, peak)."""

    async def work() -> tuple[Tally, int, CountingPages, int]:
        async with open_store(url) as store:
            tally = await seed_history(store, COUNT)
            pages = CountingPages()
            seen = 0
            tracemalloc.start()
            try:
                async for _ in read_disclosure_log(store, DisclosureLogQuery(), rows=pages):
                    seen += 1
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        return tally, seen, pages, peak

    return asyncio.run(work())


def test_log_and_ropa_on_100000_disclosures_match_counts_made_independently(
    postgres_url: str,  # one store: the 100,000-row scale is what is tested, not the dialect
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tally, seen, pages, peak = seed_and_stream(postgres_url)
    assert seen == tally.total == COUNT
    assert pages.largest == 1000
    assert pages.pages == COUNT // 1000 + 1  # the last, empty page says the log is over
    # Holding every disclosure would take well over 50 MB; a page at a time stays small.
    assert peak < 16 * 1024 * 1024, peak

    catalog = admin_env(monkeypatch, postgres_url, tmp_path)
    code, out, err = run(capsys, "disclosures", "list", "--json")
    assert (code, err) == (0, "")
    listed = json.loads(out)
    assert len(listed) == COUNT
    assert set(listed[0]) == set(COLUMNS)
    assert [d["id"] for d in listed[:2]] == ["d-0000000", "d-0000001"]  # oldest first
    assert len({d["id"] for d in listed}) == COUNT

    code, out, _ = run(
        capsys, "disclosures", "list", "--partner", "kent-police", "--status", "failed", "--csv"
    )
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == tally.by_partner_status[("kent-police", "failed")]
    assert {(r["partner"], r["status"], r["approver"]) for r in table} == {
        ("kent-police", "failed", "dpo.jsmith")
    }
    assert table[0]["fields_sent"] == "person.name;person.date_of_birth"

    first = T0.date() + timedelta(days=10)
    last = first + timedelta(days=4)
    code, out, _ = run(
        capsys,
        "disclosures",
        "list",
        "--agreement",
        "KM-GP-005",
        "--from",
        first.isoformat(),
        "--to",
        last.isoformat(),
        "--csv",
    )
    assert code == 0
    days = {(first + timedelta(days=n)).isoformat() for n in range(5)}
    expected = sum(
        n for (a, day), n in tally.by_agreement_day.items() if a == "KM-GP-005" and day in days
    )
    dated = list(csv.DictReader(io.StringIO(out)))
    assert len(dated) == expected > 0
    assert {date.fromisoformat(r["date"][:10]).isoformat() for r in dated} == days

    code, out, _ = run(capsys, "disclosures", "list", "--agreement", "KM-DFE-CIN-013")
    assert code == 0
    assert out.splitlines()[-1] == f"{tally.by_agreement['KM-DFE-CIN-013']} disclosure(s)"

    assert main(["catalog", "apply", str(catalog), "--json"]) == 0
    code, out, _ = run(
        capsys, "ropa", "--from", "2026-03-01", "--to", "2026-12-31", "--format", "json"
    )
    assert code == 0
    ropa = json.loads(out)
    entries = {e["agreement"]: e for e in ropa["agreements"]}
    for agreement, *_ in SHARES:
        expected = {s: n for (a, s), n in tally.by_agreement_status.items() if a == agreement}
        assert entries[agreement]["by_status"] == expected
        assert entries[agreement]["disclosed"] == expected["receipted"]
    assert sum(e["disclosed"] for e in entries.values()) == sum(
        n for (_, s), n in tally.by_agreement_status.items() if s == "receipted"
    )
    assert entries["KM-CQC-014"]["disclosed"] == 0  # in force, nothing sent
    assert "EXAMPLE-EXPIRED-001" not in entries  # ended, nothing sent in the period


def test_bad_filters_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    admin_env(monkeypatch, f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", tmp_path)
    code, _, err = run(capsys, "disclosures", "list", "--from", "2026-13-01")
    assert code == 2
    assert "--from" in err
    code, _, err = run(capsys, "disclosures", "list", "--from", "2026-02-01", "--to", "2026-01-01")
    assert (code, "--to is before --from" in err) == (2, True)
    code, _, err = run(capsys, "disclosures", "list", "--json", "--csv")
    assert code == 2
    code, _, err = run(capsys, "disclosures", "list", "--status", "lost")
    assert code == 2
    assert "Traceback" not in err
