"""The pure parts of the MESH channel: auth token, chunk plan, error and event classification."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mesh_client import AuthTokenGenerator

from adapters.mesh import MeshTarget
from adapters.mesh_auth import auth_token, mesh_timestamp
from adapters.mesh_chunking import (
    MAX_CHUNK_BYTES,
    MIB,
    MIN_CHUNK_BYTES,
    content_checksum,
    plan_upload,
    validate_chunk_size,
)
from adapters.mesh_client import _Reply
from adapters.mesh_config import MeshConfig, load_mesh_config
from adapters.mesh_errors import MeshProtocolError, classify, parse_error_body
from adapters.mesh_inbox import event_from_inbox, event_from_tracking
from adapters.mesh_messages import InboxMessage, Tracking, chunk_count, tracking_from_json
from gateway.application.inbound import DeliveryFailed, ReceiptArrived, TransportAcknowledged
from gateway.errors import ConfigurationError

CHUNK = int(5.5 * MIB)
NOON = dt.datetime(2025, 3, 30, 12, 7, 59, tzinfo=dt.UTC)


def test_token_is_the_one_nhs_englands_client_makes() -> None:
    theirs = AuthTokenGenerator(b"TestKey", "X26ABC1", "password")
    theirs._nonce = "4f6c1b9e"  # their nonce is random; pin it to compare
    theirs._nonce_count = 3
    expected = theirs.generate_token()
    stamp = expected.split(":")[3]
    when = dt.datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=dt.UTC)

    ours = auth_token(
        mailbox="X26ABC1",
        password="password",
        shared_key="TestKey",
        nonce="4f6c1b9e",
        nonce_count=3,
        now=when,
    )

    assert ours == expected
    assert ours.startswith("NHSMESH X26ABC1:4f6c1b9e:3:")


def test_token_changes_with_the_password_and_never_contains_it() -> None:
    base = {"mailbox": "X26ABC1", "shared_key": "k", "nonce": "n", "nonce_count": 0, "now": NOON}
    one = auth_token(password="first-pass", **base)  # type: ignore[arg-type]
    two = auth_token(password="other-pass", **base)  # type: ignore[arg-type]
    assert one != two
    assert "first-pass" not in one


def test_timestamp_is_utc_whatever_the_clock_zone() -> None:
    bst = dt.timezone(dt.timedelta(hours=1))
    assert mesh_timestamp(dt.datetime(2025, 6, 1, 0, 30, tzinfo=bst)) == "202505312330"


@pytest.mark.parametrize("size", [MIN_CHUNK_BYTES, MAX_CHUNK_BYTES + 1, 0])
def test_chunk_sizes_mesh_would_reject_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match="chunk size"):
        validate_chunk_size(size)


@pytest.mark.parametrize(
    ("size", "chunks"), [(1, 1), (CHUNK, 1), (CHUNK + 1, 2), (12 * 1000 * 1000, 3)]
)
def test_plan_splits_into_mesh_legal_chunks(size: int, chunks: int) -> None:
    payload = random.Random(size).randbytes(size)
    plan = plan_upload(payload, CHUNK, gzip_allowed=False)
    assert plan.total == chunks
    assert b"".join(plan.chunks) == payload
    assert all(len(chunk) > MIN_CHUNK_BYTES for chunk in plan.chunks[:-1])
    assert plan.chunk_range(plan.total) == f"{chunks}:{chunks}"
    assert plan.checksum == content_checksum(payload)


def test_gzip_is_dropped_when_it_would_leave_a_chunk_under_the_minimum() -> None:
    payload = b"A" * (2 * CHUNK + 1)  # each 5.5 MiB chunk of one letter gzips to a few KiB
    plan = plan_upload(payload, CHUNK, gzip_allowed=True)
    assert not plan.compressed
    assert b"".join(plan.chunks) == payload


def test_gzip_of_a_chunked_jwe_like_payload_is_per_chunk_and_legal() -> None:
    payload = base64.urlsafe_b64encode(random.Random(1).randbytes(6 * MIB))  # 8 MiB of base64
    plan = plan_upload(payload, int(7.5 * MIB), gzip_allowed=True)
    assert plan.compressed
    assert plan.total == 2
    assert len(plan.chunks[0]) > MIN_CHUNK_BYTES
    assert b"".join(gzip.decompress(chunk) for chunk in plan.chunks) == payload


@settings(max_examples=50, deadline=None)
@given(payload=st.binary(min_size=1, max_size=4096), allowed=st.booleans())
def test_a_single_chunk_plan_always_round_trips(payload: bytes, allowed: bool) -> None:
    plan = plan_upload(payload, CHUNK, gzip_allowed=allowed)
    [chunk] = plan.chunks
    assert plan.compressed <= allowed
    assert (gzip.decompress(chunk) if plan.compressed else chunk) == payload
    assert plan_upload(payload, CHUNK, gzip_allowed=allowed) == plan  # deterministic: resumable


def test_empty_payload_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        plan_upload(b"", CHUNK, gzip_allowed=False)


@pytest.mark.parametrize(
    ("status", "body", "code", "transient"),
    [
        (500, None, "mesh_server_error", True),
        (503, {"detail": [{"code": "12", "msg": "x"}]}, "mesh_server_error", True),
        (429, None, "mesh_rate_limited", True),
        (408, None, "mesh_timeout", True),
        (
            403,
            {"detail": [{"code": "EPL-151", "msg": "No mailbox matched"}]},
            "mesh_auth_failed",
            False,
        ),
        (
            417,
            {"detail": [{"code": "12", "msg": "Unregistered to address"}]},
            "mesh_unknown_recipient",
            False,
        ),
        (
            417,
            {"errorCode": "17", "errorDescription": "Workflow"},
            "mesh_workflow_not_registered",
            False,
        ),
        (400, {"detail": "Invalid checksum"}, "mesh_bad_request", False),
        (417, {"detail": [{"code": "InvalidHeaderChunks", "msg": "bad"}]}, "mesh_rejected", False),
    ],
)
def test_error_replies_are_classified(
    status: int, body: object, code: str, transient: bool
) -> None:
    error = classify(status, body)
    assert (error.code, error.transient, error.http_status) == (code, transient, status)


def test_retry_after_is_carried_when_given_in_seconds() -> None:
    assert classify(429, None, retry_after="7").retry_after == 7.0
    assert classify(429, None, retry_after="Wed, 21 Oct 2025 07:28:00 GMT").retry_after == 0.0


def test_error_body_shapes() -> None:
    assert parse_error_body({"errorCode": "06", "errorDescription": "Malformed"}).mesh_code == "06"
    assert parse_error_body("not json").mesh_code is None


def test_tracking_v1_and_v2_read_the_same() -> None:
    v2 = tracking_from_json({"message_id": "M1", "status": "acknowledged", "local_id": "L"})
    v1 = tracking_from_json({"messageId": "M1", "status": "Acknowledged", "localId": "L"})
    assert v1 == v2
    assert v1.delivered


def test_tracking_events() -> None:
    acked = Tracking("M1", "acknowledged", local_id="L")
    failed = Tracking("M2", "error", status_code="14")
    assert event_from_tracking(acked) == TransportAcknowledged("M1", "L")
    assert event_from_tracking(failed, "L2") == DeliveryFailed(
        "M2", "L2", reason="mesh_undelivered", status_code="14"
    )
    assert event_from_tracking(Tracking("M3", "accepted")) is None


def test_inbox_events() -> None:
    report = InboxMessage(
        "R1",
        {
            "mex-messagetype": "REPORT",
            "mex-linkedmsgid": "M1",
            "mex-localid": "L1",
            "mex-statuscode": "14",
            "mex-statussuccess": "ERROR",
            "mex-statusdescription": "Message not collected",
        },
    )
    receipt = InboxMessage(
        "D1", {"mex-messagetype": "DATA", "mex-workflowid": "RCPT", "mex-from": "X"}, b"jws"
    )
    other = InboxMessage("D2", {"mex-messagetype": "DATA", "mex-workflowid": "PATH"}, b"x")
    good_report = InboxMessage("R2", {"mex-messagetype": "REPORT", "mex-statussuccess": "SUCCESS"})
    assert event_from_inbox(report, receipt_workflow_id="RCPT") == DeliveryFailed(
        "M1", "L1", "mesh_undelivered", "14", "Message not collected"
    )
    assert event_from_inbox(receipt, receipt_workflow_id="RCPT") == ReceiptArrived(
        b"jws", "D1", None, "X"
    )
    assert event_from_inbox(other, receipt_workflow_id="RCPT") is None
    assert event_from_inbox(good_report, receipt_workflow_id="RCPT") is None


def test_chunk_count_from_headers() -> None:
    assert chunk_count({"mex-chunk-range": "1:4"}) == 4
    assert chunk_count({"mex-chunk-range": "1:0"}) == 1
    assert chunk_count({}) == 1


def test_targets_are_checked() -> None:
    good = MeshTarget.from_mapping(
        {"mailbox": "x26abc2", "workflow_id": "WF", "gzip": True}, allow_insecure_loopback=False
    )
    assert (good.mailbox, good.gzip) == ("X26ABC2", True)
    for bad in (
        {"mailbox": "X26ABC2"},
        {"mailbox": "X26ABC2", "workflow_id": "WF", "gzip": "yes"},
        {"mailbox": "X26ABC2", "workflow_id": "WF", "environment_url": "http://mesh.example"},
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
            MeshTarget.from_mapping(bad, allow_insecure_loopback=True)


def test_plain_http_is_refused_except_on_loopback_when_allowed() -> None:
    base = {"mailbox": "X26ABC1", "password": "p", "shared_key": "k"}
    with pytest.raises(ValueError, match="https"):
        MeshConfig(base_url="http://127.0.0.1:1", **base)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="https"):
        MeshConfig(  # type: ignore[arg-type]
            base_url="http://mesh.example", allow_insecure_loopback=True, **base
        )
    ok = MeshConfig(base_url="http://127.0.0.1:1", allow_insecure_loopback=True, **base)  # type: ignore[arg-type]
    assert ok.chunk_size == 20 * MIB


def test_bad_setting_names_the_variable_not_the_value() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_mesh_config(
            mailbox="X26ABC1",
            password="hunter2-secret",
            shared_key="k",
            base_url="https://mesh.example",
            chunk_size=1024,
        )
    assert "GATEWAY_MESH_CHUNK_SIZE" in raised.value.message
    assert "hunter2-secret" not in raised.value.message


@pytest.mark.parametrize("body", [b"[1, 2]", b"<html>proxy error</html>"])
def test_an_unreadable_success_reply_is_a_transient_protocol_error(body: bytes) -> None:
    with pytest.raises(MeshProtocolError) as raised:
        _Reply(202, {}, body).json()
    assert raised.value.transient
    assert raised.value.code == "mesh_bad_reply"
