"""The one protocol every partner channel implements, and the small types it exchanges."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

SIGNED_JWT = "application/jwt"
"""The content type of an envelope that is the council-signed JWT itself (the email channel's)."""
SMIME_CMS = "application/pkcs7-mime"
"""The content type of an envelope that is the partner's S/MIME message (DER CMS), made once."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A sealed disclosure ready to leave: compact JWE bytes addressed to one partner."""

    message_id: str
    partner_id: str
    body: bytes
    digest: str
    attempt: int = 1
    content_type: str = "application/jose"


class DeliveryOutcome(enum.StrEnum):
    """What a channel could tell us after one delivery attempt."""

    RECEIPTED = "receipted"  # the partner answered with a receipt (to be verified by the gateway)
    DISPATCHED = "dispatched"  # handed over; a receipt may come later
    TRANSIENT = "transient"  # try again later (network, timeout, 408, 429, 5xx)
    PERMANENT = "permanent"  # never try again (other 4xx, partner refused it)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The result of one attempt; `reason` is a stable code, `receipt` a compact JWS if any."""

    outcome: DeliveryOutcome
    reason: str | None = None
    receipt: bytes | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    retry_after: float | None = None


class Channel(Protocol):
    """A partner channel: deliver one envelope to one partner target, never raise for its faults."""

    async def deliver(self, envelope: Envelope, target: Mapping[str, Any]) -> DeliveryResult:
        """Attempt one delivery; partner faults come back as a result, never as an exception."""
        ...

    async def close(self) -> None:
        """Release pooled connections."""
        ...


@runtime_checkable
class SealsAtSend(Protocol):
    """A channel that seals for the partner at send time (email's S/MIME). The worker has it
    seal once and keeps the result, so every attempt sends the same bytes and a receipt digests
    them whichever attempt arrived."""

    async def seal_for_partner(
        self, envelope: Envelope, target: Mapping[str, Any], at: datetime
    ) -> Envelope | DeliveryResult | None:
        """The sealed envelope (content type `SMIME_CMS`), None when `target` asks for no
        sealing, or the result that says why it cannot be made at `at`."""
        ...

    def signer(self, at: datetime) -> str | None:
        """The fingerprint of the council certificate seals are signed with, None when there
        is none valid at `at`: a seal signed with another is made again."""
        ...
