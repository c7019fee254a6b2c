"""Walk the audit chain and its checkpoints and report the first broken link.

Catches an edited entry (its hash no longer matches), a deleted entry (a gap in seq), an
inserted or reordered entry (seq or prev_hash no longer line up), a chain rewritten from some
point on (a signed checkpoint no longer matches), a truncated tail (the head row, or a
checkpoint, points past the end), deleted checkpoints (the sealer signs one every
CHECKPOINT_EVERY entries and whenever the oldest unsigned entry is CHECKPOINT_MAX_AGE old, so
a missing one is a break), and, given the external anchor, a truncated tail with a rewound
head (the anchor holds checkpoints past the end). Runs in one snapshot, in pages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gateway import jose
from gateway.audit_anchor import AnchoredCheckpoint, TsaTrust, timestamp_matches
from gateway.audit_entry import (
    CHECKPOINT_EVERY,
    CHECKPOINT_MAX_AGE,
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
    anchors_checked: int = 0
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

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._jwks = dict(jwks)

    def verify_compact(self, token: str) -> bytes:
        """The verified payload of a checkpoint token; raises JoseFailure or ValueError."""
        if jose.read_header(token, 3).get("typ") != CHECKPOINT_TYP:
            raise ValueError("not an audit checkpoint token")
        return jose.verify_compact(token, self._jwks, algorithms=jose.COUNCIL_SIGNING_ALGS)


CHECKPOINT_GRACE = timedelta(minutes=5)  # a sealer a little behind is late, not missing


async def verify(
    store: Store,
    verifier: CheckpointVerifier | None = None,
    *,
    now: datetime,
    every: int = CHECKPOINT_EVERY,
    max_age: timedelta = CHECKPOINT_MAX_AGE,
    anchors: Sequence[AnchoredCheckpoint] | None = None,
    tsa: TsaTrust | None = None,
) -> VerifyReport:
    """Check the whole chain, that every checkpoint the sealer promises is there, and each
    checkpoint; a verifier also checks their signatures, `anchors` the external anchor."""
    report = VerifyReport(signatures_checked=verifier is not None)
    overdue = now - max_age - CHECKPOINT_GRACE
    async with sql.snapshot(store) as conn:
        head = await sql.read_head(conn)
        report.pending, report.oldest_pending_at = await sql.pending_summary(conn)
        checkpoints = await sql.read_checkpoints(conn)
        activity = await sql.latest_activity_before(conn, overdue)
        wanted = {int(cp.seq) for cp in checkpoints} | {a.seq for a in anchors or ()}
        starts = {1} | {int(cp.seq) + 1 for cp in checkpoints}
        hashes, times, seq, prev = await _walk(conn, report, wanted, starts)
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
    report.broken = report.broken or _check_due(
        checkpoints, times, seq, every=every, overdue=overdue, activity=activity
    )
    report.notes += _late_checkpoints(checkpoints, times, max_age + CHECKPOINT_GRACE)
    if anchors is not None:
        report.anchors_checked = len(anchors)
        problem = check_anchors(anchors, hashes, seq, checkpoints, verifier=verifier, tsa=tsa)
        report.broken = report.broken or problem
    if report.head_seq > report.last_checkpoint_seq:
        report.notes.append(
            f"entries after seq {report.last_checkpoint_seq} are not yet under a signed checkpoint"
        )
    return report


async def _walk(
    conn: Any, report: VerifyReport, wanted: set[int], starts: set[int]
) -> tuple[dict[int, str], dict[int, datetime], int, str]:
    """Walk the chain in pages: the hashes at `wanted` seqs and the times at `starts`."""
    hashes: dict[int, str] = {}
    times: dict[int, datetime] = {}
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
            if seq in starts:
                times[seq] = row.at
    return hashes, times, seq, prev


def _check_due(
    checkpoints: Sequence[Any],
    times: Mapping[int, datetime],
    last_seq: int,
    *,
    every: int,
    overdue: datetime,
    activity: datetime | None,
) -> Break | None:
    """A checkpoint the sealer promised is missing: at a multiple of `every`, over entries
    older than the maximum age, or over disclosure activity older than that."""
    signed = {int(cp.seq) for cp in checkpoints}
    for seq in range(every, last_seq + 1, every) if every else ():
        if seq not in signed:
            return Break("checkpoint_missing", seq, f"no signed checkpoint at seq {seq}")
    newest = max(checkpoints, key=lambda cp: int(cp.seq), default=None)
    covered = int(newest.seq) if newest is not None else 0
    first = times.get(covered + 1)
    if first is not None and first < overdue:
        return Break(
            "checkpoint_missing",
            covered + 1,
            f"entries from seq {covered + 1} are older than the sealer allows and unsigned",
        )
    if activity is not None and (newest is None or newest.at < activity):
        return Break(
            "checkpoint_missing",
            covered + 1,
            "disclosures were recorded after the newest signed checkpoint, long enough ago "
            "that one should cover them",
        )
    return None


def _late_checkpoints(
    checkpoints: Sequence[Any], times: Mapping[int, datetime], allowed: timedelta
) -> list[str]:
    """Checkpoints signed later than promised (e.g. the service was stopped): noted only."""
    notes, previous = [], 0
    for cp in checkpoints:
        start = times.get(previous + 1)
        if start is not None and cp.at - start > allowed:
            notes.append(f"checkpoint {int(cp.seq)} was signed late (first entry at {start})")
        previous = int(cp.seq)
    return notes


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
    except (jose.JoseFailure, ValueError):
        return Break("checkpoint_signature_invalid", seq, f"checkpoint {seq} signature fails")
    if payload != checkpoint_payload(seq, cp.hash, cp.at) or signed.get("hash") != hashes[seq]:
        return Break("checkpoint_mismatch", seq, f"checkpoint {seq} signs something else")
    return None


def check_anchors(
    anchors: Sequence[AnchoredCheckpoint],
    hashes: Mapping[int, str],
    last_seq: int,
    checkpoints: Sequence[Any],
    *,
    verifier: CheckpointVerifier | None,
    tsa: TsaTrust | None = None,
) -> Break | None:
    """The chain in the database against the checkpoints appended to the external anchor;
    given the TSA's trust, every anchored checkpoint must carry a time-stamp that chains to it."""
    stored = {int(cp.seq) for cp in checkpoints}
    for anchor in anchors:
        seq = anchor.seq
        if seq > last_seq:
            return Break(
                "anchor_beyond_chain", seq, f"the anchor has checkpoint {seq}; the chain ends"
            )
        if hashes.get(seq) != anchor.hash:
            return Break("anchor_mismatch", seq, f"entry {seq} differs from the anchor")
        if seq not in stored:
            return Break("checkpoint_deleted", seq, f"anchored checkpoint {seq} is gone")
        if tsa is not None and anchor.timestamp is None:
            return Break("anchor_timestamp_missing", seq, f"anchor {seq} has no time-stamp")
        if anchor.timestamp is not None and not timestamp_matches(anchor, tsa):
            return Break("anchor_timestamp_invalid", seq, f"anchor {seq} time-stamp fails")
        if verifier is None:
            continue
        try:
            payload = verifier.verify_compact(anchor.token)
        except (jose.JoseFailure, ValueError):
            return Break("anchor_signature_invalid", seq, f"anchor {seq} signature fails")
        if payload != checkpoint_payload(seq, anchor.hash, anchor.at):
            return Break("anchor_mismatch", seq, f"anchor {seq} signs something else")
    return None
