"""A NUL character in any text field is a 422 naming the field, the same on SQLite and
PostgreSQL (which cannot store NUL in text), and writes nothing."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from gateway.http.app import create_app
from gateway.store.tables import audit_log, disclosures
from tests.gateway_support import Harness, build_harness, isolated_settings, lac_submission

Client = TestClient[Any, Any]
NUL = "\x00"


@pytest.fixture
async def served(
    tmp_path: Path, database_url: str, aiohttp_client: Any
) -> AsyncIterator[tuple[Harness, Client]]:
    harness = await build_harness(isolated_settings(tmp_path, database_url))
    try:
        yield harness, await aiohttp_client(create_app(harness.gateway))
    finally:
        await harness.gateway.close()


def _with(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(lac_submission())
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return body


CASES = [
    ("agreement", f"KM-NHS-LAC-001{NUL}", "agreement"),
    ("purpose", f"looked_after{NUL}", "purpose"),
    ("reason", f"assessment{NUL}", "reason"),
    ("requested_by.user", f"sw{NUL}0042", "requested_by.user"),
    ("requested_by.role", f"social_worker{NUL}", "requested_by.role"),
    ("subject.local_id", f"MC-C{NUL}", "subject.local_id"),
    ("record.identity.name", f"Alex{NUL}", "record"),
    ("record.case_notes", [{"text": f"note{NUL}"}], "record"),
    ("record.unknown", {f"key{NUL}": "value"}, "record"),
]


async def _counts(harness: Harness) -> tuple[int, int]:
    async with harness.gateway.store.read() as conn:
        rows = await conn.scalar(select(func.count()).select_from(disclosures))
        audit = await conn.scalar(select(func.count()).select_from(audit_log))
    return int(rows or 0), int(audit or 0)


async def test_nul_in_any_text_field_is_422_naming_it(served: tuple[Harness, Client]) -> None:
    harness, api = served
    for path, value, field in CASES:
        await _refused(harness, api, path, value, field)


async def _refused(harness: Harness, api: Client, path: str, value: Any, field: str) -> None:
    before = await _counts(harness)
    headers = {"Authorization": f"Bearer {harness.token()}"}
    resp = await api.post("/v1/disclosures", json=_with(path, value), headers=headers)
    assert resp.status == 422, (path, await resp.text())
    problem = await resp.json()
    assert problem["code"] == "body_invalid"
    assert [(e["field"], e["code"]) for e in problem["errors"]] == [(field, "string_contains_nul")]
    if field == "record":  # the path inside the record is named, by field names only
        message = problem["errors"][0]["message"]
        assert path in message or "record.unknown.<key>" in message, message
    assert NUL not in await resp.text()
    assert "\\u0000" not in await resp.text()
    assert await _counts(harness) == before
    # The same body without the NUL is accepted: the refusal is about the NUL alone.
    clean = _with(path, value.replace(NUL, "x") if isinstance(value, str) else "plain")
    if path not in {"agreement", "purpose"}:
        ok = await api.post("/v1/disclosures", json=clean, headers=headers)
        assert ok.status in {202, 403}, (path, await ok.text())


async def test_annex_b_text_with_nul_is_422(served: tuple[Harness, Client]) -> None:
    harness, api = served
    body = lac_submission(
        annex_b={
            "requesting_officer": "DC Example",
            "rank": f"DC{NUL}",
            "authorising_officer": "DI Example",
            "offence_or_prejudice": "x",
            "why_necessary": "y",
        }
    )
    headers = {"Authorization": f"Bearer {harness.token()}"}
    resp = await api.post("/v1/disclosures", json=body, headers=headers)
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["field"] == "annex_b.rank"


async def test_a_disclosure_id_with_nul_is_not_found(served: tuple[Harness, Client]) -> None:
    harness, api = served
    headers = {"Authorization": f"Bearer {harness.token()}"}
    for path in ("/v1/disclosures/%00", "/v1/disclosures/abc%00def", "/v1/disclosures/" + "a" * 65):
        resp = await api.get(path, headers=headers)
        assert resp.status == 404, (path, await resp.text())
        assert (await resp.json())["code"] == "disclosure_not_found"
