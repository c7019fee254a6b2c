"""Walk the audit chain and its checkpoints and report the first broken link.

Catches an edited entry (its hash no longer matches), a deleted entry (a gap in seq), an
inserted or reordered entry (seq or prev_hash no longer line up), a chain rewritten from some
point on (a signed checkpoint no longer matches), and a truncated tail (the head row, or a
checkpoint, points past the end). Runs in one snapshot, in pages, in constant memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.audit_entry import (
    CHECKPOINT_TYP,
    GENESIS,
    CheckpointVerifier,
    Head,
    checkpoint_payload,
    entry_hash,
)
from gateway.store import audit_log as sql
from gateway.store.database import Store

PAGE = 5000


@dataclass(frozen=True, slots=True)
class Break:
    """The first broken link: a stable code, the seq where it shows, and what it means."""

    code: str
    seq: int
    message: str


@dataclass(slots=True)
class VerifyReport:
    """What `audit verify` found; `ok` only when the chain and every checkpoint hold."""

    entries: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    checkpoints: int = 0
    last_checkpoint_seq: int = 0
    signatures_checked: bool = False
    pending: int = 0
    oldest_pending_at: datetime | None = None
    broken: Break | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is broken."""
        return self.broken is None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for `--json`."""
        data = asdict(self)
        data["ok"] = self.ok
        at = self.oldest_pending_at
        data["oldest_pending_at"] = at.isoformat() if at else None
        return data


class JwksCheckpointVerifier:
    """A CheckpointVerifier over a JWKS of the council's public signing keys."""

    def __init__(self, jwks: Mapping[str, Any], algorithms: tuple[str, ...] = ("ES256", "EdDSA")):
        self._keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        self._algorithms = list(algorithms)

    def verify_compact(self, token: str) -> bytes:
        """The verified payload of a checkpoint token; raises JoseError otherwise."""
        result = jws.deserialize_compact(token, self._keys, algorithms=self._algorithms)
        if result.headers().get("typ") != CHECKPOINT_TYP:
            raise ValueError("not an audit checkpoint token")
        return result.payload


async def verify(store: Store, verifier: CheckpointVerifier | None = None) -> VerifyReport:
    """Check the whole chain and every checkpoint; a verifier also checks their signatures."""
    report = VerifyReport(signatures_checked=verifier is not None)
    async with sql.snapshot(store) as conn:
        head = await sql.read_head(conn)
        report.pending, report.oldest_pending_at = await sql.pending_summary(conn)
        hashes: dict[int, str] = {}
        checkpoints = await sql.read_checkpoints(conn)
        wanted = {int(cp.seq) for cp in checkpoints}
        seq, prev = 0, GENESIS
        while report.broken is None:
            page = await sql.read_entries(conn, seq, PAGE)
            if not page:
                break
            for row in page:
                report.broken = _check_link(row, seq + 1, prev)
                if report.broken is not None:
                    break
                seq, prev = int(row.seq), str(row.hash)
                if seq in wanted:
                    hashes[seq] = prev
        report.entries = seq
    report.head_seq, report.head_hash = head.seq, head.hash
    if report.broken is None:
        report.broken = _check_head(head, seq, prev)
    for cp in checkpoints:
        problem = _check_checkpoint(cp, hashes, verifier)
        report.broken = report.broken or problem
        if problem is None:
            report.checkpoints += 1
            report.last_checkpoint_seq = int(cp.seq)
    if report.head_seq > report.last_checkpoint_seq:
        report.notes.append(
            f"entries after seq {report.last_checkpoint_seq} are not yet under a signed checkpoint"
        )
    return report


def _check_link(row: Any, expected_seq: int, prev: str) -> Break | None:
    seq = int(row.seq)
    if seq > expected_seq:
        return Break("entry_missing", expected_seq, f"entry {expected_seq} is missing")
    if row.prev_hash != prev:
        return Break("chain_broken", seq, f"entry {seq} does not follow entry {seq - 1}")
    fields = {k: getattr(row, k) for k in ("at", "actor_kind", "actor_name", "action")}
    recomputed = entry_hash(
        seq=seq, prev_hash=prev, targets=row.targets, details=row.details, **fields
    )
    if recomputed != row.hash:
        return Break("entry_altered", seq, f"entry {seq} was changed after it was written")
    return None


def _check_head(head: Head, last_seq: int, last_hash: str) -> Break | None:
    if head.seq > last_seq:
        return Break(
            "chain_truncated",
            last_seq + 1,
            f"the head says {head.seq} but the chain ends at {last_seq}",
        )
    if head.seq < last_seq:
        return Break("entry_inserted", head.seq + 1, f"entries after the head ({head.seq})")
    if head.hash != last_hash:
        return Break("head_mismatch", head.seq, "the head hash differs from the last entry")
    return None


def _check_checkpoint(
    cp: Any, hashes: Mapping[int, str], verifier: CheckpointVerifier | None
) -> Break | None:
    seq = int(cp.seq)
    if seq not in hashes:
        return Break("checkpoint_beyond_chain", seq, f"checkpoint {seq} names a missing entry")
    if hashes[seq] != cp.hash:
        return Break("checkpoint_mismatch", seq, f"entry {seq} differs from its checkpoint")
    if verifier is None:
        return None
    try:
        payload = verifier.verify_compact(cp.token)
        signed = json.loads(payload)
    except (JoseError, ValueError):
        return Break("checkpoint_signature_invalid", seq, f"checkpoint {seq} signature fails")
    if payload != checkpoint_payload(seq, cp.hash, cp.at) or signed.get("hash") != hashes[seq]:
        return Break("checkpoint_mismatch", seq, f"checkpoint {seq} signs something else")
    return None
