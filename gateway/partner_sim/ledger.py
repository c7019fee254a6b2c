"""What the simulated partner received: ids, digests, counts, times, field NAMES. Never values.

The ledger is how tests and the demo check "delivered exactly once in effect": every message id
with how many times it arrived, the digests of the bytes, and the receipt given, so a duplicate
is recognised and answered with the same receipt again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_FIELD_PATHS = 200


@dataclass(frozen=True, slots=True)
class GivenReceipt:
    """A receipt we signed for one (message id, digest): given again on a duplicate."""

    receipt_id: str
    status: str
    reason: str | None
    token: bytes

    def __repr__(self) -> str:
        return f"GivenReceipt(receipt_id={self.receipt_id!r}, status={self.status!r})"


@dataclass(slots=True)
class LedgerEntry:
    """One message id as the partner saw it."""

    message_id: str
    first_seen: datetime
    last_seen: datetime
    count: int = 0
    digests: list[str] = field(default_factory=list)
    status: str | None = None
    reason: str | None = None
    check: str | None = None  # the exact failing check's code, e.g. envelope_decrypt_failed
    issuer: str | None = None
    agreement: Mapping[str, Any] | None = None
    purpose: str | None = None
    subject_fields: list[str] = field(default_factory=list)
    data_fields: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    receipts: dict[str, GivenReceipt] = field(default_factory=dict)
    async_receipt: dict[str, Any] | None = None

    @property
    def duplicate(self) -> bool:
        """Seen more than once."""
        return self.count > 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ids, digests, counts, times and field names only."""
        return {
            "message_id": self.message_id,
            "count": self.count,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "digests": list(self.digests),
            "status": self.status,
            "reason": self.reason,
            "check": self.check,
            "issuer": self.issuer,
            "agreement": dict(self.agreement) if self.agreement is not None else None,
            "purpose": self.purpose,
            "subject_fields": list(self.subject_fields),
            "data_fields": list(self.data_fields),
            "answers": dict(self.answers),
            "receipt_ids": [r.receipt_id for r in self.receipts.values()],
            "async_receipt": dict(self.async_receipt) if self.async_receipt else None,
        }


class Ledger:
    """Every message id the partner took in, with counts; plus requests it could not identify."""

    def __init__(self) -> None:
        self._entries: dict[str, LedgerEntry] = {}
        self.unidentified = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LedgerEntry]:
        return iter(list(self._entries.values()))

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._entries

    def get(self, message_id: str) -> LedgerEntry | None:
        """The entry of one message id, if it ever arrived."""
        return self._entries.get(message_id)

    def arrived(self, message_id: str, digest: str, now: datetime) -> LedgerEntry:
        """Count one arrival of message_id with these exact bytes."""
        entry = self._entries.get(message_id)
        if entry is None:
            entry = LedgerEntry(message_id=message_id, first_seen=now, last_seen=now)
            self._entries[message_id] = entry
        entry.count += 1
        entry.last_seen = now
        if digest not in entry.digests:
            entry.digests.append(digest)
        return entry

    @property
    def duplicates(self) -> int:
        """Arrivals beyond the first of each message id."""
        return sum(entry.count - 1 for entry in self._entries.values())

    @property
    def arrivals(self) -> int:
        """Every arrival counted, duplicates included."""
        return sum(entry.count for entry in self._entries.values())

    def to_dict(self) -> dict[str, Any]:
        """The ledger as JSON: totals first, then one item per message id."""
        return {
            "messages": len(self._entries),
            "arrivals": self.arrivals,
            "duplicates": self.duplicates,
            "unidentified": self.unidentified,
            "entries": [entry.to_dict() for entry in self._entries.values()],
        }


def field_paths(value: Mapping[str, Any], limit: int = MAX_FIELD_PATHS) -> list[str]:
    """The dotted paths of the leaves of a record (names only; `[]` marks a list)."""
    paths: list[str] = []
    _walk(value, "", paths, limit)
    return sorted(paths)


def _walk(value: Any, prefix: str, paths: list[str], limit: int) -> None:
    if len(paths) >= limit:
        return
    if isinstance(value, Mapping) and value:
        for key in value:
            _walk(value[key], f"{prefix}.{key}" if prefix else str(key), paths, limit)
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        for item in value:
            _walk(item, f"{prefix}[]", paths, limit)
    elif prefix and prefix not in paths:
        paths.append(prefix)
