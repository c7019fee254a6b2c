"""`audit verify` cannot be fooled by deleting checkpoints, emptying the log, or cutting the
tail back and rewinding the head: checkpoints are required where the sealer promises them, and
the external anchor (with an RFC 3161 time-stamp from OpenSSL's TSA) holds what was signed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, update

from gateway import audit
from gateway.audit_anchor import (
    AnchorFile,
    CheckpointAnchor,
    TimeStampAuthority,
    TsaTrust,
    read_anchor,
)
from gateway.audit_verify import verify
from gateway.store.database import Store
from gateway.store.tables import audit_checkpoints, audit_head, audit_log
from tests.integration.store_support import (
    CLIENT,
    T0,
    checkpoint_keys,
    new_disclosure,
    open_store,
    protection,
    record_accepted,
)
from tests.security.support import Tsa, tsa_files

HOUR = timedelta(hours=1)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> Any:
        return self.at


async def write_entries(store: Store, n: int, clock: Clock) -> None:
    """n entries in one unit of work, at the clock's time."""
    entries = [(CLIENT, "x.done", {}, {"n": i}) for i in range(n)]
    await store.write(lambda conn: audit.append_many(conn, entries, at=clock.at))


async def remove_checkpoints(store: Store, after: int = 0) -> None:
    await store.write(
        lambda conn: conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq > after))
    )


async def test_deleted_count_checkpoints_are_missing(database_url: str) -> None:
    """1,001 entries: the sealer signs at 1,000; delete it and verify is broken there."""
    signer, verifier = checkpoint_keys()
    clock = Clock()
    async with open_store(database_url) as store:
        sealer = audit.AuditSealer(store, clock=clock, signer=signer)
        await write_entries(store, 1001, clock)
        await sealer.seal_now()
        assert (await verify(store, verifier, now=T0)).ok
        await remove_checkpoints(store)
        report = await verify(store, verifier, now=T0)
    assert report.broken is not None
    assert (report.broken.code, report.broken.seq) == ("checkpoint_missing", 1000)


async def test_an_hour_old_entry_needs_a_checkpoint(database_url: str) -> None:
    signer, verifier = checkpoint_keys()
    clock = Clock()
    async with open_store(database_url) as store:
        sealer = audit.AuditSealer(store, clock=clock, signer=signer)
        await write_entries(store, 3, clock)
        await sealer.seal_if_due()
        assert (await verify(store, verifier, now=T0 + HOUR / 2)).ok
        unsealed = await verify(store, verifier, now=T0 + 2 * HOUR)
        assert unsealed.broken is not None
        assert (unsealed.broken.code, unsealed.broken.seq) == ("checkpoint_missing", 1)
        clock.at = T0 + HOUR  # the oldest unsigned entry is an hour old: the sealer signs
        await sealer.seal_if_due()
        assert (await verify(store, verifier, now=T0 + 2 * HOUR)).ok
        await remove_checkpoints(store)
        report = await verify(store, verifier, now=T0 + 2 * HOUR)
    assert report.broken is not None
    assert report.broken.code == "checkpoint_missing"


async def test_nothing_is_due_while_nothing_is_written(sqlite_url: str) -> None:
    async with open_store(sqlite_url) as store:
        assert (await verify(store, now=T0 + 1000 * HOUR)).ok


async def test_an_emptied_log_fails_where_checkpoints_were_due(
    database_url: str, tmp_path: Path
) -> None:
    signer, verifier = checkpoint_keys()
    async with open_store(database_url) as store:
        await record_accepted(store, new_disclosure(protection(tmp_path)), at=T0)
        await audit.checkpoint(store, signer, at=T0)
        assert (await verify(store, verifier, now=T0 + 2 * HOUR)).ok

        async def empty(conn: Any) -> None:
            await conn.execute(delete(audit_checkpoints))
            await conn.execute(delete(audit_log))
            await conn.execute(update(audit_head).values(seq=0, hash=audit.GENESIS))

        await store.write(empty)
        report = await verify(store, verifier, now=T0 + 2 * HOUR)
    assert report.entries == 0
    assert report.broken is not None
    assert report.broken.code == "checkpoint_missing"


async def test_the_anchor_catches_a_truncated_tail_with_a_rewound_head(
    database_url: str, tmp_path: Path
) -> None:
    signer, verifier = checkpoint_keys()
    clock = Clock()
    path = tmp_path / "anchor.jsonl"
    anchor = CheckpointAnchor(AnchorFile(path))
    async with open_store(database_url) as store:
        sealer = audit.AuditSealer(store, clock=clock, signer=signer, anchor=anchor)
        await write_entries(store, 4, clock)
        await audit.checkpoint(store, signer, at=clock.at)  # seq 4
        await write_entries(store, 4, clock)
        await audit.checkpoint(store, signer, at=clock.at)  # seq 8
        await sealer.seal_now()  # anchors both, committed
        anchored = read_anchor(path)
        assert [a.seq for a in anchored] == [4, 8]
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        assert (await verify(store, verifier, now=clock.at, anchors=anchored)).ok

        async def cut_back(conn: Any) -> None:
            """Drop entries 5..8 and their checkpoint; rewind the head to entry 4."""
            await conn.execute(delete(audit_log).where(audit_log.c.seq > 4))
            await conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq > 4))
            values = {"seq": 4, "hash": anchored[0].hash}
            await conn.execute(update(audit_head).values(**values))

        await store.write(cut_back)
        fooled = await verify(store, verifier, now=clock.at)
        caught = await verify(store, verifier, now=clock.at, anchors=read_anchor(path))
    assert fooled.ok  # what the database alone can show
    assert caught.broken is not None
    assert (caught.broken.code, caught.broken.seq) == ("anchor_beyond_chain", 8)


async def test_the_anchor_is_appended_once_across_sealers(sqlite_url: str, tmp_path: Path) -> None:
    signer, _ = checkpoint_keys()
    path = tmp_path / "anchor.jsonl"
    async with open_store(sqlite_url) as store:
        await write_entries(store, 2, Clock())
        await audit.checkpoint(store, signer, at=T0)
        first, second = CheckpointAnchor(AnchorFile(path)), CheckpointAnchor(AnchorFile(path))
        assert await first.catch_up(store) == 1
        assert await second.catch_up(store) == 0
    assert [a.seq for a in read_anchor(path)] == [2]


async def test_anchored_checkpoints_carry_an_rfc3161_time_stamp(
    sqlite_url: str, tmp_path: Path, tsa: Tsa
) -> None:
    signer, verifier = checkpoint_keys()
    path = tmp_path / "anchor.jsonl"
    anchor = CheckpointAnchor(AnchorFile(path), TimeStampAuthority(tsa.url, TsaTrust(tsa.ca)))
    async with open_store(sqlite_url) as store:
        await write_entries(store, 2, Clock())
        await audit.checkpoint(store, signer, at=T0, anchor=anchor)
        await write_entries(store, 2, Clock())
        await audit.checkpoint(store, signer, at=T0, anchor=anchor)
        anchored = read_anchor(path)
        assert all(a.timestamp for a in anchored)
        good = await verify(store, verifier, now=T0, anchors=anchored, tsa=TsaTrust(tsa.ca))
        lines = path.read_text().splitlines()
        swapped = [json.loads(line) for line in lines]
        swapped[0]["rfc3161"] = swapped[1]["rfc3161"]  # a genuine stamp, over another checkpoint
        path.write_text("".join(json.dumps(v) + "\n" for v in swapped))
        bad = await verify(store, verifier, now=T0, anchors=read_anchor(path))
    assert good.ok, good.broken
    assert good.anchors_checked == 2
    assert bad.broken is not None
    assert (bad.broken.code, bad.broken.seq) == ("anchor_timestamp_invalid", 2)


async def test_a_stamp_from_another_authority_fails_with_the_tsa_ca(
    sqlite_url: str, tmp_path: Path, tsa: Tsa
) -> None:
    signer, verifier = checkpoint_keys()
    path = tmp_path / "anchor.jsonl"
    other = (tsa_files(tmp_path / "other").parent / "ca.crt").read_bytes()
    async with open_store(sqlite_url) as store:
        await write_entries(store, 2, Clock())
        anchor = CheckpointAnchor(AnchorFile(path), TimeStampAuthority(tsa.url, TsaTrust(tsa.ca)))
        await audit.checkpoint(store, signer, at=T0, anchor=anchor)
        anchored = read_anchor(path)
        report = await verify(store, verifier, now=T0, anchors=anchored, tsa=TsaTrust(other))
    assert report.broken is not None
    assert report.broken.code == "anchor_timestamp_invalid"
