"""The plain-English subject access report: names partner and purpose, never a record value."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pypdf import PdfReader

from agreements.samples import child_record
from gateway.application.subject_access import SubjectAccessReport, subject_access_report
from gateway.cli.admin import main
from gateway.protection import Protection
from gateway.store import disclosures
from gateway.subject_access_documents import to_html, to_pdf
from tests.gateway_support import ADMIN, TEST_NOW, Harness, adult_submission, lac_submission
from tests.integration.store_support import NHS_NUMBER, new_disclosure, open_store

LAC_NHS = "9990000018"


def leaves(value: Any) -> Iterator[str]:
    """Every leaf value of a record, as text."""
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    else:
        yield str(value)


def pdf_text(data: bytes) -> str:
    """The PDF's text as one line of words (wrapping undone)."""
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


async def report_after_two_disclosures(
    harness: Harness, api: TestClient[Any, Any]
) -> SubjectAccessReport:
    headers = {"Authorization": f"Bearer {harness.token()}"}
    for body in (lac_submission(), adult_submission()):
        response = await api.post("/v1/disclosures", json=body, headers=headers)
        assert response.status == 202, await response.text()
    protection = Protection.from_dir(harness.gateway.settings.keys_dir)
    return await subject_access_report(
        harness.gateway.store, protection, nhs_number=LAC_NHS, actor=ADMIN, at=TEST_NOW
    )


async def test_the_pdf_names_partner_and_purpose_and_holds_no_record_value(
    harness: Harness, api: TestClient[Any, Any]
) -> None:
    report = await report_after_two_disclosures(harness, api)
    assert len(report.shared) == 1  # the adult's disclosure is about someone else
    text = pdf_text(to_pdf(report))
    assert "Medway NHS Foundation Trust (looked-after children's health team)" in text
    assert "for the health care of a child in the council's care" in text
    assert "the council's public tasks set by law" in text
    assert "Information Commissioner's Office" in text
    assert "How long they keep it" in text
    distinctive = {v for v in leaves(child_record()) if len(v) >= 8} | {LAC_NHS, "MC-C-000123"}
    assert "Jordan Example" in distinctive  # the check below means something
    assert [v for v in distinctive if v in text] == []
    html = to_html(report)
    assert "Medway NHS Foundation Trust" in html
    assert [v for v in distinctive if v in html] == []


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(tmp_path / "keys"))
    return tmp_path


def test_the_cli_writes_each_format_and_refuses_pdf_to_a_terminal(
    env: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def seed() -> str:
        async with open_store(sqlite_url) as store:
            new = new_disclosure(Protection.from_dir(env / "keys"))
            await store.write(
                lambda conn: disclosures.record_denied(conn, new, actor=ADMIN, at=TEST_NOW)
            )
            return new.id

    disclosure_id = asyncio.run(seed())
    pdf, page = env / "report.pdf", env / "report.html"
    args = ["subject-report", "--nhs-number", NHS_NUMBER]
    assert main([*args, "--format", "pdf", "--output", str(pdf)]) == 0
    assert "kent-police" in pdf_text(pdf.read_bytes())  # no partner row: named by id
    assert main([*args, "--format", "html", "--output", str(page)]) == 0
    assert "not sent: the council's sharing rules did not allow it" in unescape(page.read_text())
    capsys.readouterr()
    assert main([*args, "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [s["disclosure_id"] for s in document["shared"]] == [disclosure_id]
    assert document["shared"][0]["shared"] is False
    assert main([*args, "--format", "pdf"]) == 2
    assert "--format pdf needs --output" in capsys.readouterr().err
    assert main([*args, "--output", str(pdf)]) == 2
