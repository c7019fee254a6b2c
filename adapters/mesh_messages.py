"""What MESH tells us about messages (tracking, inbox headers), parsed into plain values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Tracking statuses (API v2 spells them in lower case, v1 in title case).
ACCEPTED = "accepted"
ACKNOWLEDGED = "acknowledged"
UPLOADING = "uploading"
ERROR = "error"
UNDELIVERABLE = "undeliverable"
EXPIRED = "expired"
DELIVERED_STATUSES = frozenset({ACCEPTED, ACKNOWLEDGED})
FAILED_STATUSES = frozenset({ERROR, UNDELIVERABLE, EXPIRED})

DATA = "DATA"
REPORT = "REPORT"


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


@dataclass(frozen=True, slots=True)
class Tracking:
    """The sender's view of one sent message, from `GET /outbox/tracking`."""

    message_id: str
    status: str
    local_id: str | None = None
    recipient: str | None = None
    workflow_id: str | None = None
    status_code: str | None = None
    description: str | None = None

    @property
    def delivered(self) -> bool:
        """MESH holds it for (or has handed it to) the recipient: never send it again."""
        return self.status in DELIVERED_STATUSES

    @property
    def failed(self) -> bool:
        """MESH gave up on it (error event, undeliverable, expired)."""
        return self.status in FAILED_STATUSES


def tracking_from_json(body: Mapping[str, Any]) -> Tracking:
    """Parse a v2 (`message_id`, `status`) or v1 (`messageId`, `status`) tracking reply."""
    if "message_id" in body:
        return Tracking(
            message_id=str(body["message_id"]),
            status=str(body.get("status") or "").lower(),
            local_id=_text(body.get("local_id")),
            recipient=_text(body.get("recipient")),
            workflow_id=_text(body.get("workflow_id")),
            status_code=_text(body.get("status_code")),
            description=_text(body.get("status_description")),
        )
    return Tracking(
        message_id=str(body.get("messageId") or body.get("dtsId") or ""),
        status=str(body.get("status") or "").lower(),
        local_id=_text(body.get("localId")),
        recipient=_text(body.get("recipient")),
        workflow_id=_text(body.get("workflowId")),
        status_code=_text(body.get("statusCode")),
        description=_text(body.get("failureDiagnostic") or body.get("statusDescription")),
    )


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One message downloaded from our inbox: its mex-* headers (lower-case keys) and body."""

    message_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def mex(self, name: str) -> str | None:
        """A mex-* header by its short name, e.g. mex("WorkflowID"); None when absent."""
        return _text(self.headers.get(f"mex-{name}".lower()))

    @property
    def message_type(self) -> str:
        """DATA or REPORT."""
        return (self.mex("MessageType") or DATA).upper()

    @property
    def workflow_id(self) -> str | None:
        """The workflow id the sender gave (for a REPORT: that of the original message)."""
        return self.mex("WorkflowID")

    @property
    def local_id(self) -> str | None:
        """The sender's local id (for a REPORT: the original message's, when MESH carries it)."""
        return self.mex("LocalID")

    @property
    def sender(self) -> str | None:
        """The sending mailbox (empty for MESH's own REPORT messages)."""
        return self.mex("From")


def mex_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Keep the mex-* headers of a reply, keyed in lower case."""
    return {key.lower(): value for key, value in headers.items() if key.lower().startswith("mex-")}


def chunk_count(headers: Mapping[str, str]) -> int:
    """Total chunks from `mex-Chunk-Range: 1:n` (1 when absent or malformed)."""
    value = headers.get("mex-chunk-range") or "1:1"
    try:
        total = int(value.split(":")[1])
    except (IndexError, ValueError):
        return 1
    return max(total, 1)
