"""The SFTP channel against a real OpenSSH sshd on loopback (see tests/sshd.py)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.sftp import (
    CLIENT_KEY_FILE,
    SftpChannel,
    SftpOptions,
    SftpReceiptPoller,
    load_or_create_ssh_key,
    public_key_line,
)
from gateway.application.channel import DeliveryOutcome, Envelope
from gateway.application.inbound import ReceiptFile, ReceiptVerdict
from gateway.jose import b64url_digest
from tests.sshd import IS_ROOT, Sshd, host_key_pair, require_root, running_sshd


@pytest.fixture
def client_key(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / CLIENT_KEY_FILE
    load_or_create_ssh_key(path)
    return path


@pytest.fixture
def sshd(tmp_path: Path, client_key: Path) -> Iterator[Sshd]:
    line = public_key_line(load_or_create_ssh_key(client_key))
    with running_sshd(tmp_path / "sshd", line) as server:
        yield server


def _channel(client_key: Path, sshd: Sshd) -> SftpChannel:
    return SftpChannel(
        SftpOptions(
            client_key=client_key, username=sshd.user, connect_timeout=5, transfer_timeout=30
        )
    )


@pytest.fixture
async def channel(client_key: Path, sshd: Sshd) -> AsyncIterator[SftpChannel]:
    chan = _channel(client_key, sshd)
    yield chan
    await chan.close()


@dataclass
class OnePartner:
    """A `ReceiptFileHandler` naming one partner; `take` answers for each receipt file."""

    partner_id: str
    target: Mapping[str, Any]
    take: Callable[[ReceiptFile], Awaitable[ReceiptVerdict]]

    def partners(self) -> list[tuple[str, Mapping[str, Any]]]:
        return [(self.partner_id, self.target)]

    async def __call__(self, file: ReceiptFile) -> ReceiptVerdict:
        return await self.take(file)


def target(sshd: Sshd, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "type": "sftp",
        "host": "127.0.0.1",
        "port": sshd.port,
        "path": sshd.remote("inbound"),
        "host_key": sshd.host_key_line,
        "receipts_path": sshd.remote("outbound"),
        "partner_id": "dfe",
    }
    values.update(overrides)
    return values


def envelope(body: bytes | None = None, message_id: str | None = None) -> Envelope:
    data = body if body is not None else b"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9." + b"x" * 2000
    return Envelope(
        message_id=message_id or str(uuid.uuid4()),
        partner_id="dfe",
        body=data,
        digest=b64url_digest(data),
    )


def inbound(sshd: Sshd) -> list[str]:
    return sorted(os.listdir(sshd.local(sshd.remote("inbound"))))


async def test_envelope_arrives_under_its_final_name_and_nothing_else(
    channel: SftpChannel, sshd: Sshd
) -> None:
    sent = envelope()
    result = await channel.deliver(sent, target(sshd))
    assert result.outcome is DeliveryOutcome.DISPATCHED, result
    assert inbound(sshd) == [f"{sent.message_id}.jwe"]
    assert (sshd.local(sshd.remote("inbound", f"{sent.message_id}.jwe"))).read_bytes() == sent.body
    if IS_ROOT:  # written as the partner's chrooted account, not as root
        stat = sshd.local(sshd.remote("inbound", f"{sent.message_id}.jwe")).stat()
        assert stat.st_uid == sshd.uid
    # A second envelope reuses the connection.
    assert (await channel.deliver(envelope(), target(sshd))).outcome is DeliveryOutcome.DISPATCHED
    assert len(inbound(sshd)) == 2


async def test_without_fsync_the_envelope_still_arrives_whole(client_key: Path, sshd: Sshd) -> None:
    chan = SftpChannel(
        SftpOptions(client_key=client_key, username=sshd.user, fsync=False, connect_timeout=5)
    )
    sent = envelope()
    try:
        assert (await chan.deliver(sent, target(sshd))).outcome is DeliveryOutcome.DISPATCHED
    finally:
        await chan.close()
    assert inbound(sshd) == [f"{sent.message_id}.jwe"]
    assert sshd.local(sshd.remote("inbound", f"{sent.message_id}.jwe")).read_bytes() == sent.body


async def test_manifest_beside_the_envelope_when_the_partner_asks(
    channel: SftpChannel, sshd: Sshd
) -> None:
    sent = envelope()
    result = await channel.deliver(sent, target(sshd, manifest=True))
    assert result.outcome is DeliveryOutcome.DISPATCHED
    manifest = json.loads(
        sshd.local(sshd.remote("inbound", f"{sent.message_id}.manifest.json")).read_text()
    )
    assert manifest == {
        "message_id": sent.message_id,
        "file": f"{sent.message_id}.jwe",
        "bytes": len(sent.body),
        "digest": sent.digest,
        "content_type": "application/jose",
    }
    assert inbound(sshd) == [f"{sent.message_id}.jwe", f"{sent.message_id}.manifest.json"]


async def test_changed_host_key_is_permanent_and_nothing_is_sent(
    channel: SftpChannel, sshd: Sshd, tmp_path: Path
) -> None:
    _path, other = host_key_pair(tmp_path, "impostor")
    result = await channel.deliver(envelope(), target(sshd, host_key=other))
    assert result.outcome is DeliveryOutcome.PERMANENT
    assert result.reason == "sftp_host_key_mismatch"
    assert inbound(sshd) == []
    # The pinned key still works: the refusal did not poison the connection pool.
    assert (await channel.deliver(envelope(), target(sshd))).outcome is DeliveryOutcome.DISPATCHED


async def test_key_not_authorised_by_the_partner_is_permanent(
    channel: SftpChannel, sshd: Sshd, tmp_path: Path
) -> None:
    other = load_or_create_ssh_key(tmp_path / "someone-else")
    sshd.authorize(public_key_line(other))
    result = await channel.deliver(envelope(), target(sshd))
    assert result.outcome is DeliveryOutcome.PERMANENT
    assert result.reason == "sftp_auth_failed"


async def test_directory_the_account_may_not_write_is_permission_denied(
    channel: SftpChannel, sshd: Sshd
) -> None:
    locked = sshd.make_dir("locked", owner_is_user=False, mode=0o555)
    result = await channel.deliver(envelope(), target(sshd, path=locked))
    assert result.outcome is DeliveryOutcome.PERMANENT
    assert result.reason == "sftp_permission_denied"
    assert os.listdir(sshd.local(locked)) == []


async def test_missing_inbound_directory_is_permanent(channel: SftpChannel, sshd: Sshd) -> None:
    result = await channel.deliver(envelope(), target(sshd, path=sshd.remote("no-such-dir")))
    assert result.outcome is DeliveryOutcome.PERMANENT
    assert result.reason == "sftp_path_missing"


async def test_full_disk_is_transient_and_leaves_no_file(channel: SftpChannel, sshd: Sshd) -> None:
    require_root("mounting a tiny tmpfs as the partner's full disk")
    full = sshd.mount_tmpfs("full", "16k")
    too_big = envelope(secrets.token_bytes(256 * 1024))
    result = await channel.deliver(too_big, target(sshd, path=full))
    assert result.outcome is DeliveryOutcome.TRANSIENT
    assert result.reason == "sftp_write_failed"
    assert os.listdir(sshd.local(full)) == []  # the part file was removed as well
    small = envelope()
    assert (await channel.deliver(small, target(sshd, path=full))).outcome is (
        DeliveryOutcome.DISPATCHED
    )
    assert os.listdir(sshd.local(full)) == [f"{small.message_id}.jwe"]


async def test_connection_dropped_mid_upload_leaves_nothing_under_the_final_name(
    channel: SftpChannel, sshd: Sshd
) -> None:
    big = envelope(secrets.token_bytes(96 * 1024 * 1024))
    part = sshd.local(sshd.remote("inbound", f".{big.message_id}.jwe.part"))
    final = sshd.local(sshd.remote("inbound", f"{big.message_id}.jwe"))
    task = asyncio.create_task(channel.deliver(big, target(sshd)))
    for _ in range(2000):
        if part.exists() and part.stat().st_size > 0:
            break
        await asyncio.sleep(0.005)
    assert part.exists(), "the upload never started"
    sshd.drop_connections()
    result = await task
    assert result.outcome is DeliveryOutcome.TRANSIENT, result
    assert result.reason == "partner_unreachable"
    assert not final.exists()
    assert part.stat().st_size < len(big.body)

    retried = await channel.deliver(big, target(sshd))  # reconnects, truncates the part file
    assert retried.outcome is DeliveryOutcome.DISPATCHED
    assert final.read_bytes() == big.body
    assert not part.exists()


async def test_delivery_resumes_after_the_partner_server_restarts(
    channel: SftpChannel, sshd: Sshd
) -> None:
    assert (await channel.deliver(envelope(), target(sshd))).outcome is DeliveryOutcome.DISPATCHED
    sshd.stop()
    down = await channel.deliver(envelope(), target(sshd))
    assert down.outcome is DeliveryOutcome.TRANSIENT
    assert down.reason == "partner_unreachable"
    sshd.start()
    again = envelope()
    assert (await channel.deliver(again, target(sshd))).outcome is DeliveryOutcome.DISPATCHED
    assert f"{again.message_id}.jwe" in inbound(sshd)


async def test_a_gateway_restarted_after_the_rename_does_not_send_twice(
    channel: SftpChannel, sshd: Sshd, client_key: Path
) -> None:
    sent = envelope()
    assert (await channel.deliver(sent, target(sshd))).outcome is DeliveryOutcome.DISPATCHED
    restarted = _channel(client_key, sshd)  # its answer was lost: the queue tries again
    try:
        again = await restarted.deliver(sent, target(sshd))
        assert again.outcome is DeliveryOutcome.DISPATCHED
        assert again.detail["already_sent"] is True
        other = envelope(b"y" * len(sent.body), message_id=sent.message_id)
        clash = await restarted.deliver(other, target(sshd))
        assert clash.outcome is DeliveryOutcome.PERMANENT
        assert clash.reason == "sftp_name_conflict"
    finally:
        await restarted.close()
    assert inbound(sshd) == [f"{sent.message_id}.jwe"]


async def test_receipts_are_collected_then_archived_or_quarantined(
    channel: SftpChannel, sshd: Sshd
) -> None:
    outbound = sshd.local(sshd.remote("outbound"))
    verdicts: dict[str, ReceiptVerdict] = {"good": "accepted", "bad": "refused", "later": "retry"}
    for name in verdicts:
        (outbound / f"{name}.receipt.jwt").write_bytes(f"token-{name}\n".encode())
    (outbound / "notes.txt").write_text("not a receipt")
    (outbound / "huge.receipt.jwt").write_bytes(b"x" * (channel.options.max_receipt_bytes + 1))
    seen: list[ReceiptFile] = []

    async def handle(file: ReceiptFile) -> ReceiptVerdict:
        seen.append(file)
        return verdicts[file.message_id]

    counts = await SftpReceiptPoller(channel).poll_once(OnePartner("dfe", target(sshd), handle))
    assert counts == {"accepted": 1, "refused": 2, "retry": 1, "unreachable": 0}
    assert {(f.partner_id, f.message_id, f.body) for f in seen} == {
        ("dfe", name, f"token-{name}".encode()) for name in verdicts
    }
    assert sorted(os.listdir(outbound)) == [
        "archive", "later.receipt.jwt", "notes.txt", "quarantine"
    ]  # fmt: skip
    assert os.listdir(outbound / "archive") == ["good.receipt.jwt"]
    assert sorted(os.listdir(outbound / "quarantine")) == ["bad.receipt.jwt", "huge.receipt.jwt"]


async def test_poll_of_an_unreachable_partner_is_counted_not_raised(
    channel: SftpChannel, sshd: Sshd
) -> None:
    async def handle(file: ReceiptFile) -> ReceiptVerdict:
        raise AssertionError("nothing to read")

    sshd.stop()
    counts = await SftpReceiptPoller(channel).poll_once(OnePartner("dfe", target(sshd), handle))
    assert counts["unreachable"] == 1


async def test_receipt_taken_by_another_worker_meanwhile_is_skipped(
    channel: SftpChannel, sshd: Sshd
) -> None:
    outbound = sshd.local(sshd.remote("outbound"))
    (outbound / "raced.receipt.jwt").write_bytes(b"token")
    (outbound / "kept.receipt.jwt").write_bytes(b"token")

    async def handle(file: ReceiptFile) -> ReceiptVerdict:
        if file.message_id == "raced":
            (outbound / file.name).unlink()  # as another process archiving it first would
        return "accepted"

    counts = await SftpReceiptPoller(channel).poll_once(OnePartner("dfe", target(sshd), handle))
    assert counts == {"accepted": 1, "refused": 0, "retry": 0, "unreachable": 0}
    assert os.listdir(outbound / "archive") == ["kept.receipt.jwt"]
