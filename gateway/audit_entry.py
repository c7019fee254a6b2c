"""An audit entry as it is hashed and signed: who, what, the canonical JSON, the chain links.

Pure: no I/O. Each entry's hash is SHA-256 over a canonical JSON encoding of its seq, time,
actor, action, targets, details and the previous entry's hash, so editing, deleting, inserting
or reordering any entry breaks the chain; checkpoints sign (seq, hash). Details carry names and
codes only, never personal values.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

GENESIS = "0" * 64
CHECKPOINT_EVERY = 1000
# The sealer also signs whenever the oldest entry not under a checkpoint is this old.
CHECKPOINT_MAX_AGE = timedelta(hours=1)
SEAL_BATCH = 5000
CHECKPOINT_TYP = "gatehouse-audit-checkpoint+jws"
MAX_DETAIL_TEXT = 200  # details are codes and names; a long string smells of free text
# Targets and details of one entry together: no request can write more (a backstop: callers
# record names from the catalog and counts, never what a client sent).
MAX_ENTRY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Head:
    """Where the chain ends: the last sealed seq and its hash."""

    seq: int
    hash: str


class ActorKind(enum.StrEnum):
    """Who did it: an internal client system, an admin user, a partner, or the gateway itself."""

    CLIENT = "client"
    ADMIN = "admin"
    PARTNER = "partner"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    """The actor of an audited action (staff and system identifiers, never a data subject)."""

    kind: ActorKind
    name: str


SYSTEM = Actor(ActorKind.SYSTEM, "gatehouse")
PendingEntry = tuple[Actor, str, Mapping[str, str], Mapping[str, Any]]
"""(actor, action, targets, details) for `append_many`."""


class CheckpointSigner(Protocol):
    """Signs checkpoint payloads with the council key (the keyring implements this)."""

    @property
    def kid(self) -> str:
        """The signing key's id."""
        ...

    def sign_compact(self, payload: bytes, *, typ: str | None = ...) -> str:
        """A compact JWS over `payload` with header {alg, kid, typ}."""
        ...


class CheckpointVerifier(Protocol):
    """Verifies a checkpoint's compact JWS against the council's public keys."""

    def verify_compact(self, token: str) -> bytes:
        """The verified payload; raises for a bad signature or an unknown key."""
        ...


_ORJSON_CANONICAL = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def canonical(value: Any) -> str:
    """The one JSON spelling that is hashed: sorted keys, no spaces, ASCII only.

    That spelling is `json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=True)`, which every chain so far was hashed with. orjson writes the same bytes
    ten times faster for what audit entries hold (ASCII names, codes and integers); for anything
    else (non-ASCII text, DEL, integers past 64 bits, keys that are not strings) it differs or
    refuses, and the standard library spells it instead.
    """
    try:
        fast = orjson.dumps(value, option=_ORJSON_CANONICAL)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        pass
    else:
        if fast.isascii() and b"\x7f" not in fast:  # the json module escapes DEL; orjson not
            return fast.decode()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_hash(
    *,
    seq: int,
    at: datetime,
    actor_kind: str,
    actor_name: str,
    action: str,
    targets: str,
    details: str,
    prev_hash: str,
) -> str:
    """SHA-256 over every field of an entry, including the previous entry's hash."""
    fields = [seq, _iso(at), actor_kind, actor_name, action, targets, details, prev_hash]
    return hashlib.sha256(canonical(fields).encode()).hexdigest()


def checkpoint_payload(seq: int, hash_: str, at: datetime) -> bytes:
    """What a checkpoint signs."""
    return canonical(
        {"chain": "gatehouse-audit", "seq": seq, "hash": hash_, "at": _iso(at)}
    ).encode()


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def check_details(value: Any, path: str = "details") -> None:
    """Refuse what cannot be a name or a code, so free text does not slip into the log."""
    # Strings first, and lists of short strings without a call per item: details are mostly
    # lists of field paths and codes, and the Mapping check is the slow one.
    if isinstance(value, str):
        if len(value) > MAX_DETAIL_TEXT:
            raise ValueError(f"audit {path}: text too long for a name or code")
    elif isinstance(value, list | tuple):
        for item in value:
            if not isinstance(item, str) or len(item) > MAX_DETAIL_TEXT:
                check_details(item, path)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_details(item, f"{path}.{key}")
    elif value is not None and not isinstance(value, bool | int):
        raise ValueError(f"audit {path}: only strings, integers, booleans, lists and maps")


def pending_row(
    actor: Actor,
    action: str,
    *,
    at: datetime,
    targets: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An entry's row before it is chained, for callers that batch it with their own inserts."""
    check_details(details or {})
    targets_json, details_json = canonical(dict(targets or {})), canonical(dict(details or {}))
    if len(targets_json) + len(details_json) > MAX_ENTRY_BYTES:
        raise ValueError(f"audit entry {action}: larger than {MAX_ENTRY_BYTES} bytes")
    return {
        "at": at,
        "actor_kind": str(actor.kind),
        "actor_name": actor.name,
        "action": action,
        "targets": targets_json,
        "details": details_json,
    }


_ENTRY_FIELDS = ("at", "actor_kind", "actor_name", "action", "targets", "details")


def link(head: Head, rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], Head]:
    """Chain `rows` after `head`: each gets the next seq, the previous hash and its own hash."""
    seq, prev, links = head.seq, head.hash, []
    for row in rows:
        seq += 1
        fields = {k: row[k] for k in _ENTRY_FIELDS}
        digest = entry_hash(seq=seq, prev_hash=prev, **fields)
        links.append({"seq": seq, **fields, "prev_hash": prev, "hash": digest})
        prev = digest
    return links, Head(seq, prev)
