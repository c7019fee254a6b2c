"""MESH faults as typed errors with stable reason codes, and the rules that classify them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.retry_after import parse_retry_after
from gateway.errors import GatewayError

# MESH (DTS) error codes seen in error bodies and in REPORT messages.
MESH_UNREGISTERED_RECIPIENT = "12"
MESH_UNDELIVERED = "14"
MESH_WORKFLOW_NOT_REGISTERED = "17"
MESH_NO_MAILBOX_MATCHED = "EPL-151"

_TRANSIENT_STATUS = {408: "mesh_timeout", 425: "mesh_rate_limited", 429: "mesh_rate_limited"}
_PERMANENT_STATUS = {
    400: "mesh_bad_request",
    401: "mesh_auth_failed",
    403: "mesh_auth_failed",
    404: "mesh_not_found",
    410: "mesh_gone",
    413: "mesh_too_large",
}
_BY_MESH_CODE = {
    MESH_UNREGISTERED_RECIPIENT: "mesh_unknown_recipient",
    MESH_NO_MAILBOX_MATCHED: "mesh_unknown_recipient",
    MESH_WORKFLOW_NOT_REGISTERED: "mesh_workflow_not_registered",
}


class MeshError(GatewayError):
    """Base of every MESH channel error; `transient` says whether a later retry may succeed."""

    code = "mesh_error"
    transient = False


class MeshUnavailableError(MeshError):
    """MESH could not be reached or did not answer in time (network, TLS, timeout)."""

    code = "mesh_unreachable"
    transient = True


class MeshProtocolError(MeshError):
    """MESH answered success with a reply we cannot read; a retry will check tracking first."""

    code = "mesh_bad_reply"
    transient = True


class MeshApiError(MeshError):
    """MESH answered with an error status; carries the HTTP status and MESH's own error code."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        transient: bool,
        http_status: int,
        mesh_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.transient = transient
        self.http_status = http_status
        self.mesh_code = mesh_code
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class MeshErrorBody:
    """The parts of a MESH error body we act on (v1 and v2 shapes)."""

    mesh_code: str | None = None
    description: str | None = None


def parse_error_body(body: Any) -> MeshErrorBody:
    """Read MESH's v2 `{"detail": [{"code", "msg"}]}` or v1 `{"errorCode", ...}` error body."""
    if not isinstance(body, Mapping):
        return MeshErrorBody()
    detail = body.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], Mapping):
        first = detail[0]
        code, text = first.get("code"), first.get("msg")
        return MeshErrorBody(str(code) if code else None, str(text) if text else None)
    if "errorCode" in body or "errorDescription" in body:
        code, text = body.get("errorCode"), body.get("errorDescription")
        return MeshErrorBody(str(code) if code else None, str(text) if text else None)
    if isinstance(detail, str):
        return MeshErrorBody(None, detail)
    return MeshErrorBody()


def classify(http_status: int, body: Any, *, retry_after: str | None = None) -> MeshApiError:
    """Turn an error reply into a MeshApiError: 5xx/408/429 transient, other 4xx permanent."""
    parsed = parse_error_body(body)
    transient = http_status >= 500 or http_status in _TRANSIENT_STATUS
    if http_status >= 500:
        code = "mesh_server_error"
    elif http_status in (401, 403):
        # MESH answers 403 for every authentication failure (even "No mailbox matched").
        code = "mesh_auth_failed"
    elif parsed.mesh_code in _BY_MESH_CODE:
        code = _BY_MESH_CODE[parsed.mesh_code]
    else:
        code = _TRANSIENT_STATUS.get(http_status) or _PERMANENT_STATUS.get(
            http_status, "mesh_rejected"
        )
    text = parsed.description or "no description"
    return MeshApiError(
        f"MESH answered {http_status}: {text}",
        code=code,
        transient=transient,
        http_status=http_status,
        mesh_code=parsed.mesh_code,
        retry_after=parse_retry_after(retry_after, datetime.now(UTC)),
    )
