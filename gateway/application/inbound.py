"""What comes back over the channels, as the typed events the adapters hand in, and the ports
they hand them to.

Each channel's poller (an adapter) reads its wire format, parses it and checks what signatures it
carries; only then does it call the handler port with one of these events and act on the
verdict (acknowledge, archive, quarantine, or leave it for the next poll). The handlers record
the events; the delivery engine runs each poller with its handler.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

# -- MESH: transport receipts, failure reports, receipts sent back --------------------------


@dataclass(frozen=True, slots=True)
class TransportAcknowledged:
    """The partner's MESH client downloaded and acknowledged our message (transport receipt)."""

    mesh_message_id: str
    local_id: str | None


@dataclass(frozen=True, slots=True)
class DeliveryFailed:
    """MESH gave up on our message; `reason` is a stable code, `status_code` MESH's own."""

    mesh_message_id: str | None
    local_id: str | None
    reason: str
    status_code: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ReceiptArrived:
    """A partner sent a message on the receipt workflow: `body` is exactly what it sent."""

    body: bytes
    mesh_message_id: str
    local_id: str | None
    sender: str | None


MeshEvent = TransportAcknowledged | DeliveryFailed | ReceiptArrived


@dataclass(frozen=True, slots=True)
class Dispatched:
    """A message we sent and are still waiting on (from the delivery result's detail)."""

    mesh_message_id: str
    local_id: str | None = None
    base_url: str | None = None


class MeshEventHandler(Protocol):
    """Records MESH events, and names the messages whose transport receipt is still awaited."""

    async def __call__(self, event: MeshEvent, /) -> None:
        """Record one event durably; raising leaves the inbox message for the next poll."""
        ...

    async def pending(self) -> Iterable[Dispatched]:
        """Messages we sent that have no transport receipt yet (to track)."""
        ...


# -- SFTP: receipt files in the partners' outbound directories ------------------------------


@dataclass(frozen=True, slots=True)
class ReceiptFile:
    """A receipt a partner left in its outbound directory: `body` is exactly what it wrote."""

    partner_id: str
    name: str
    message_id: str
    body: bytes


ReceiptVerdict = Literal["accepted", "refused", "retry"]
"""`accepted`: archive the file; `refused`: quarantine it; `retry`: leave it for next time."""


class ReceiptFileHandler(Protocol):
    """Takes receipt files, and names the SFTP partners whose directories to look in."""

    async def __call__(self, file: ReceiptFile, /) -> ReceiptVerdict:
        """Take one receipt file; our own faults come back as `retry`, never raised."""
        ...

    def partners(self) -> Iterable[tuple[str, Mapping[str, Any]]]:
        """Every SFTP partner in force, with its channel settings."""
        ...


# -- Email: replies in the council's receipts mailbox --------------------------------------


@dataclass(frozen=True, slots=True)
class ReceiptReply:
    """A mail holding one receipt; `answers`: disclosure ids its headers say it replies to."""

    token: bytes
    answers: frozenset[str]


@dataclass(frozen=True, slots=True)
class Disposition:
    """An MDN: which message of ours it is about, and what the recipient's client did.

    `verified`: it came signed, and the signature verified against one of the partner's
    registered S/MIME certificates; an unsigned MDN proves nothing.
    """

    disclosure_id: str
    disposition: str
    verified: bool = False


@dataclass(frozen=True, slots=True)
class RefusedMail:
    """A mail to quarantine untaken: `reason` is a stable code."""

    reason: str


@dataclass(frozen=True, slots=True)
class MailDeferred:
    """Reading the mail needed something of ours that failed (`error_type`): try next poll."""

    error_type: str


InboundMail = ReceiptReply | Disposition | RefusedMail | MailDeferred
MailVerdict = Literal["accepted", "acknowledged", "ignored", "refused", "retry"]
"""`accepted`, `acknowledged`, `ignored`: archive the mail; `refused`: quarantine it; `retry`:
leave it in the inbox for the next poll."""


class MailHandler(Protocol):
    """Takes mails from the receipts mailbox, and says who may sign an MDN."""

    async def __call__(self, mail: InboundMail, /) -> MailVerdict:
        """Take one mail; our own faults come back as `retry`, never raised."""
        ...

    async def signers(self, disclosure_id: str) -> Sequence[bytes] | None:
        """The certificates (PEM) that may sign an MDN about this disclosure: its partner's
        registered ones in force; None when Gatehouse sent no such disclosure."""
        ...

    def unreachable(self, reason: str) -> None:
        """The mailbox could not be read this time; `reason` is a stable code."""
        ...


# -- Every channel ---------------------------------------------------------------------------

Handler_contra = TypeVar("Handler_contra", contravariant=True)


class InboundPoller(Protocol[Handler_contra]):
    """A channel's way back in, read once per call by the delivery engine's loop."""

    async def poll_once(self, handler: Handler_contra, /) -> Mapping[str, int]:
        """One look; counts by verdict. The channel's own faults are logged, never raised."""
        ...
