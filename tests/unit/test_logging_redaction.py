"""The redaction processor keeps ids and codes, and removes every value that could be personal."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from gateway.logging import REDACTED, configure_logging, redact


def _run(**event: Any) -> dict[str, Any]:
    return dict(redact(None, "info", dict(event)))


def test_safe_keys_pass_and_secret_keys_are_redacted() -> None:
    out = _run(
        event="submitted",
        disclosure_id="01J0-abc",
        partner="medway-ft",
        record={"identity": {"name": "Alex Example"}},
        token="t" * 43,
        nhs_number="9434765919",
        subject={"nhs_number": "9434765919"},
    )
    assert out["event"] == "submitted"
    assert out["disclosure_id"] == "01J0-abc"
    assert out["partner"] == "medway-ft"
    for key in ("record", "token", "nhs_number", "subject"):
        assert out[key] == REDACTED


def test_unknown_keys_keep_numbers_but_lose_text() -> None:
    out = _run(event="x", new_field="Alex Example", size=4096, flag=True)
    assert out["new_field"] == REDACTED
    assert out["size"] == 4096
    assert out["flag"] is True


def test_nhs_numbers_and_tokens_inside_safe_text_are_scrubbed() -> None:
    out = _run(event="lookup 943 476 5919 with token " + "A" * 40, reason="code")
    assert "943" not in out["event"]
    assert "A" * 40 not in out["event"]
    assert out["reason"] == "code"


@given(st.text(min_size=1), st.dictionaries(st.text(min_size=1, max_size=10), st.text()))
def test_no_value_of_a_secret_key_survives(value: str, record: dict[str, str]) -> None:
    out = _run(event="e", record=record, data=value, body=value, password=value)
    assert all(out[key] == REDACTED for key in ("record", "data", "body", "password"))


def test_disclosure_ids_survive_but_tokens_do_not() -> None:
    disclosure_id = "3f2b9c1e-8a4d-4e6f-9b2a-1c3d5e7f9a0b"
    token = "fl8HI2bq6Ql5PpAZ0RhMg-pVt3Ss9Ohuk_Ia8-zsKC0"
    out = _run(event=f"about {disclosure_id} with {token}", disclosure_id=disclosure_id)
    assert out["disclosure_id"] == disclosure_id
    assert disclosure_id in out["event"]
    assert token not in out["event"]


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_library_records_are_json_lines_and_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    token = "Q" * 40
    logging.getLogger("aio_pika.robust_connection").warning("reconnecting with %s", token)
    logging.getLogger("asyncio").error("Task exception about 943 476 5919")
    lines = _json_lines(capsys.readouterr().err)
    assert [line["logger"] for line in lines] == ["aio_pika.robust_connection", "asyncio"]
    assert [line["level"] for line in lines] == ["warning", "error"]
    assert token not in lines[0]["event"]
    assert "943 476 5919" not in lines[1]["event"]


def test_an_exception_is_rendered_then_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """The traceback's text is scrubbed: an NHS number or a database key value in the message
    of an exception never reaches the log."""
    configure_logging("json", "info")
    log = structlog.get_logger("test")
    try:
        raise ValueError(
            "DETAIL:  Key (token_hash)=(staff-0042-secret) already exists; nhs 9434765919"
        )
    except ValueError:
        log.exception("request_failed")
    try:
        raise KeyError("9434765919")
    except KeyError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    err = capsys.readouterr().err
    lines = _json_lines(err)
    assert len(lines) == 2
    assert all("Traceback" in line["exception"] for line in lines)
    assert "staff-0042-secret" not in err
    assert "9434765919" not in err
    assert "Key (token_hash)=([redacted])" in lines[0]["exception"]
