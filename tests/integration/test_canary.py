"""Canary: every submitted value is a unique marker; none may surface in logs, database, metrics."""

from __future__ import annotations

import itertools
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agreements.nhs_number import nhs_number_valid
from agreements.samples import adult_record, child_record
from gateway.logging import configure_logging
from tests.gateway_support import Harness

Client = TestClient[Any, Any]
_counter = itertools.count()


class Markers:
    """Makes unique marker strings and remembers them."""

    def __init__(self) -> None:
        self.all: list[str] = []

    def text(self) -> str:
        marker = f"CANARY{next(_counter):04d}{secrets.token_hex(4)}"
        self.all.append(marker)
        return marker

    def nhs_number(self) -> str:
        number = ""
        while not nhs_number_valid(number):  # the API refuses a failed check digit
            number = f"999{secrets.randbelow(10**7):07d}"
        self.all.append(number)
        return number

    def fill(self, value: Any) -> Any:
        """The same shape, every string a marker (dates keep their form: markers in the year)."""
        if isinstance(value, dict):
            return {key: self.fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.fill(item) for item in value]
        if isinstance(value, str):
            return self.text()
        return value


def _submissions(markers: Markers) -> list[dict[str, Any]]:
    def body(agreement: str, purpose: str, record: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "agreement": agreement,
            "purpose": purpose,
            "subject": {"nhs_number": markers.nhs_number(), "local_id": markers.text()},
            "record": markers.fill(record),
            "requested_by": {"user": "sw-0042", "role": "social_worker"},
            "reason": markers.text(),
            **extra,
        }

    annex_b = {
        "requesting_officer": "DC 1 Example",
        "rank": "DC",
        "authorising_officer": "DI 2 Example",
        "requester_reference": "46/00001/26",
        "offence_or_prejudice": markers.text(),
        "prejudice": markers.text(),
        "why_necessary": markers.text(),
        "data_requested": [markers.text()],
    }
    return [
        body("KM-NHS-LAC-001", "looked_after_children_health", child_record()),
        body("KM-DOM-006", "direct_care", adult_record()),
        body("KM-ICB-COM-004", "commissioning", adult_record()),
        body("KM-NHS-LAC-001", "research", child_record()),  # denied
        body("KM-POL-S2-011", "law_enforcement_request", adult_record(), annex_b=annex_b),
    ]


def _database_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_no_marker_escapes(
    api: Client, ops: Client, harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "debug")
    markers = Markers()
    headers = {"Authorization": f"Bearer {harness.token()}"}
    statuses = []
    for submission in _submissions(markers):
        resp = await api.post("/v1/disclosures", json=submission, headers=headers)
        statuses.append(resp.status)
        reply = await resp.text()
        assert not [m for m in markers.all if m in reply]
    bad = {"agreement": "KM-DOM-006", "purpose": markers.text(), "subject": {"nhs_number": "x"}}
    resp = await api.post("/v1/disclosures", json=bad, headers=headers)
    assert resp.status == 422
    assert not [m for m in markers.all if m in await resp.text()]
    assert statuses.count(202) >= 3, statuses  # queued, queued/denied, held: all paths exercised
    assert 403 in statuses
    await harness.gateway.sealer.seal_now()
    metrics = await (await ops.get("/metrics")).text()
    logs = capsys.readouterr()
    database = _database_bytes(
        Path(harness.gateway.settings.resolved_database_url.split("///", 1)[1])
    )
    assert len(database) > 10_000
    events = {json.loads(line).get("event") for line in logs.err.splitlines() if line}
    assert "decision" in events  # the logs were captured, so the check means something
    for marker in markers.all:
        assert marker not in logs.out, "log"
        assert marker not in logs.err, "log"
        assert marker not in metrics, "metrics"
        assert marker.encode() not in database, "database"
        assert marker.encode("utf-16-le") not in database, "database (utf-16)"


async def test_every_log_line_of_a_request_carries_its_disclosure_id(
    api: Client, harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    configure_logging("json", "info")
    capsys.readouterr()
    headers = {"Authorization": f"Bearer {harness.token()}"}
    body = {
        "agreement": "KM-DOM-006",
        "purpose": "direct_care",
        "subject": {"nhs_number": "9990000026"},
        "record": adult_record(),
        "requested_by": {"user": "sw-1", "role": "care_manager"},
        "reason": "log test",
    }
    resp = await api.post("/v1/disclosures", json=body, headers=headers)
    disclosure_id = (await resp.json())["id"]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    request_lines = [line for line in lines if line.get("event") in ("decision", "request")]
    assert {line["event"] for line in request_lines} == {"decision", "request"}
    assert all(line.get("disclosure_id") == disclosure_id for line in request_lines), request_lines
