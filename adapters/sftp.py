"""The SFTP channel: upload the sealed envelope into the partner's inbound directory.

Authenticates with the council's SSH key and pins the partner's host key from partners.yaml: an
unknown or changed host key is a permanent failure, logged as an alert and never accepted. Each
envelope is written under a temporary dot-name, flushed, then renamed to `<disclosure-id>.jwe`
in the same directory, so a partner never sees a partial file under the final name. One SSH
connection per partner server is kept and shared by its uploads (at most `uploads_per_partner`
at once). Receipts come back through `SftpReceiptPoller`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncssh
import structlog

from gateway.application.channel import DeliveryOutcome, DeliveryResult, Envelope
from gateway.application.inbound import ReceiptFile, ReceiptFileHandler, ReceiptVerdict

log = structlog.get_logger(__name__)

CLIENT_KEY_FILE = "sftp-client.ed25519"
RECEIPT_SUFFIX = ".receipt.jwt"
DEFAULT_PORT = 22
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def load_or_create_ssh_key(path: Path) -> asyncssh.SSHKey:
    """An ed25519 SSH key (OpenSSH format, mode 0600), created on first use like other keys."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="gatehouse-sftp")
        # O_EXCL: two processes starting together never overwrite each other's new key.
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(key.export_private_key("openssh"))
    return asyncssh.read_private_key(path)


def public_key_line(key: asyncssh.SSHKey) -> str:
    """The `authorized_keys` line a partner installs for the council."""
    return key.export_public_key("openssh").decode("ascii").strip()


@dataclass(frozen=True, slots=True)
class SftpOptions:
    """The council's side of every SFTP connection (GATEWAY_SFTP_* settings)."""

    client_key: Path
    username: str
    connect_timeout: float = 10.0
    transfer_timeout: float = 60.0
    uploads_per_partner: int = 4
    max_receipt_bytes: int = 64 * 1024
    fsync: bool = True  # flush each file on the partner's disk before it is renamed into view


@dataclass(frozen=True, slots=True)
class SftpTarget:
    """Where and how one partner receives over SFTP (from its `partners.yaml` channel)."""

    host: str
    port: int
    username: str | None
    path: str
    host_keys: tuple[str, ...]
    receipts_path: str | None = None
    manifest: bool = False

    @classmethod
    def from_mapping(cls, target: Mapping[str, Any]) -> SftpTarget | str:
        """Read the settings; a problem comes back as the name of the faulty setting."""
        host, path = target.get("host"), target.get("path")
        if not isinstance(host, str) or not host:
            return "host"
        if not isinstance(path, str) or not path.startswith("/"):
            return "path"
        port = target.get("port", DEFAULT_PORT)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            return "port"
        username = target.get("username")
        if username is not None and (not isinstance(username, str) or not username):
            return "username"
        keys = target.get("host_key")
        lines = tuple(line.strip() for line in str(keys or "").splitlines() if line.strip())
        if not lines:
            return "host_key"
        try:
            for line in lines:
                asyncssh.import_public_key(line)
        except (asyncssh.KeyImportError, ValueError):
            return "host_key"
        receipts = target.get("receipts_path")
        if receipts is not None and (not isinstance(receipts, str) or not receipts.startswith("/")):
            return "receipts_path"
        manifest = target.get("manifest", False)
        if not isinstance(manifest, bool):
            return "manifest"
        return cls(host, port, username, path, lines, receipts, manifest)

    @property
    def server(self) -> tuple[str, int, str | None, tuple[str, ...]]:
        """What makes two partners share one connection: same server, account and pinned key."""
        return (self.host, self.port, self.username, self.host_keys)

    @property
    def archive_path(self) -> str | None:
        """Verified receipts are moved here."""
        return None if self.receipts_path is None else posixpath.join(self.receipts_path, "archive")

    @property
    def quarantine_path(self) -> str | None:
        """Receipts that were refused are moved here, out of the next poll's way."""
        if self.receipts_path is None:
            return None
        return posixpath.join(self.receipts_path, "quarantine")


def _result(outcome: DeliveryOutcome, reason: str | None = None, **detail: Any) -> DeliveryResult:
    return DeliveryResult(outcome=outcome, reason=reason, detail=detail)


def classify(exc: BaseException) -> tuple[DeliveryOutcome, str]:
    """The outcome and stable reason for an SSH or SFTP fault (pure, so easy to test)."""
    permanent, transient = DeliveryOutcome.PERMANENT, DeliveryOutcome.TRANSIENT
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return permanent, "sftp_host_key_mismatch"
    if isinstance(exc, asyncssh.PermissionDenied):
        return permanent, "sftp_auth_failed"
    if isinstance(exc, asyncssh.SFTPPermissionDenied | asyncssh.SFTPWriteProtect):
        return permanent, "sftp_permission_denied"
    if isinstance(exc, asyncssh.SFTPNoSuchFile | asyncssh.SFTPNoSuchPath):
        return permanent, "sftp_path_missing"
    if isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection):
        return transient, "partner_unreachable"
    if isinstance(exc, asyncssh.SFTPError):
        # Disk full, quota, a server refusing the write for its own reasons: it may clear.
        return transient, "sftp_write_failed"
    if isinstance(exc, TimeoutError | asyncssh.TimeoutError):
        return transient, "partner_timeout"
    return transient, "partner_unreachable"


def _connection_fault(exc: BaseException) -> bool:
    """True when the SSH connection itself failed; an SFTP status (a full disk) leaves it usable."""
    if isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection):
        return True
    return not isinstance(exc, asyncssh.SFTPError)


@dataclass(slots=True)
class _Link:
    connection: asyncssh.SSHClientConnection
    sftp: asyncssh.SFTPClient


@dataclass(slots=True)
class _Server:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))
    link: _Link | None = None


class SftpChannel:
    """Deliver envelopes by SFTP upload; implements the application's `Channel`."""

    def __init__(self, options: SftpOptions) -> None:
        self.options = options
        self._key: asyncssh.SSHKey | None = None
        self._servers: dict[tuple[Any, ...], _Server] = {}

    def client_key(self) -> asyncssh.SSHKey:
        """The council's SSH key, read (or created) once."""
        if self._key is None:
            self._key = load_or_create_ssh_key(self.options.client_key)
        return self._key

    def _server(self, target: SftpTarget) -> _Server:
        server = self._servers.get(target.server)
        if server is None:
            server = self._servers[target.server] = _Server(
                slots=asyncio.Semaphore(self.options.uploads_per_partner)
            )
        return server

    async def _connect(self, target: SftpTarget) -> _Link:
        trusted = [asyncssh.import_public_key(line) for line in target.host_keys]
        connection = await asyncssh.connect(
            target.host,
            target.port,
            username=target.username or self.options.username,
            client_keys=[self.client_key()],
            known_hosts=(trusted, [], []),
            config=None,  # never the process owner's ~/.ssh/config
            agent_path=None,
            preferred_auth="publickey",
            connect_timeout=self.options.connect_timeout,
            login_timeout=self.options.connect_timeout,
            keepalive_interval=30,
        )
        try:
            sftp = await connection.start_sftp_client()
        except BaseException:
            connection.abort()
            raise
        return _Link(connection, sftp)

    async def session(self, target: SftpTarget) -> asyncssh.SFTPClient:
        """The partner server's SFTP session, connecting (once, whoever asks first) if needed."""
        server = self._server(target)
        async with server.lock:
            link = server.link
            if link is None or link.connection.is_closed():
                link = server.link = await self._connect(target)
            return link.sftp

    def drop(self, target: SftpTarget, broken: asyncssh.SFTPClient | None = None) -> None:
        """Forget the partner server's connection: the one `broken` ran on, if given (another
        upload may have made a new one meanwhile, which stays)."""
        server = self._servers.get(target.server)
        if server is None or server.link is None:
            return
        if broken is None or server.link.sftp is broken:
            server.link.connection.abort()
            server.link = None

    async def deliver(self, envelope: Envelope, target: Mapping[str, Any]) -> DeliveryResult:
        """Upload the envelope once; every partner or network fault comes back as a result."""
        parsed = SftpTarget.from_mapping(target)
        if isinstance(parsed, str):
            return _result(DeliveryOutcome.PERMANENT, "channel_misconfigured", setting=parsed)
        context = {"disclosure_id": envelope.message_id, "partner": envelope.partner_id}
        used: list[asyncssh.SFTPClient] = []
        try:
            async with self._server(parsed).slots:
                result = await asyncio.wait_for(
                    self._upload(envelope, parsed, used), self.options.transfer_timeout
                )
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            outcome, reason = classify(exc)
            if _connection_fault(exc):
                self.drop(parsed, used[0] if used else None)  # a broken one is never reused
            if reason == "sftp_host_key_mismatch":
                log.error("sftp_host_key_mismatch", alert=True, host=parsed.host, **context)
            else:
                log.warning(
                    "sftp_delivery_failed",
                    outcome=str(outcome),
                    reason=reason,
                    error_type=type(exc).__name__,
                    **context,
                )
            return _result(outcome, reason, error_type=type(exc).__name__)
        log.info("sftp_dispatched", **context, **result.detail)
        return result

    async def _upload(
        self, envelope: Envelope, target: SftpTarget, used: list[asyncssh.SFTPClient]
    ) -> DeliveryResult:
        sftp = await self.session(target)
        used.append(sftp)
        name = f"{envelope.message_id}.jwe"
        fsync = self.options.fsync
        placed = await place(sftp, posixpath.join(target.path, name), envelope.body, fsync=fsync)
        if placed == "different":
            return _result(DeliveryOutcome.PERMANENT, "sftp_name_conflict", file=name)
        if target.manifest:
            manifest = {
                "message_id": envelope.message_id,
                "file": name,
                "bytes": len(envelope.body),
                "digest": envelope.digest,
                "content_type": envelope.content_type,
            }
            path = posixpath.join(target.path, f"{envelope.message_id}.manifest.json")
            await place(sftp, path, json.dumps(manifest, sort_keys=True).encode(), fsync=fsync)
        if placed == "same":
            # An earlier attempt got as far as the rename, then its answer was lost.
            return _result(DeliveryOutcome.DISPATCHED, None, file=name, already_sent=True)
        return _result(DeliveryOutcome.DISPATCHED, None, file=name)

    async def close(self) -> None:
        """Close every partner connection."""
        for server in self._servers.values():
            if server.link is not None:
                server.link.connection.close()
                with contextlib.suppress(Exception):
                    await server.link.connection.wait_closed()
                server.link = None


async def place(
    sftp: asyncssh.SFTPClient, final: str, body: bytes, *, fsync: bool = True
) -> Literal["sent", "same", "different"]:
    """Put `body` at `final` unless a file is there already: then say whether it is the same.

    The rename never replaces a file, so the usual path costs no look-up first; only when it
    fails is the final name read, to tell a retry of ours from a clash.
    """
    try:
        await put_atomically(sftp, final, body, fsync=fsync)
    except (asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists) as failure:
        try:
            attrs = await sftp.stat(final)
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
            attrs = None
        if attrs is None:
            raise failure from None  # not about the name (a full disk, say)
        if attrs.size != len(body):
            return "different"
        async with sftp.open(final, "rb", encoding=None) as file:
            held: bytes | str = await file.read()
        return "same" if held == body else "different"
    return "sent"


async def put_atomically(
    sftp: asyncssh.SFTPClient, final: str, body: bytes, *, fsync: bool = True
) -> None:
    """Write `body` under a temporary dot-name beside `final`, flush it, rename it into place.

    The rename is SFTP's own, which never replaces an existing file (OpenSSH links, then
    unlinks). The temporary name is fixed per file, so an attempt cut off mid-upload leaves at
    most one stale part file, which the next attempt truncates and reuses.
    """
    folder, name = posixpath.split(final)
    temporary = posixpath.join(folder, f".{name}.part")
    try:
        async with sftp.open(temporary, "wb", encoding=None) as file:
            await file.write(body)
            if fsync:
                with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                    await file.fsync()  # fsync@openssh.com: on disk before it is visible
        await sftp.rename(temporary, final)
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(sftp.remove(temporary))
        raise


class SftpReceiptPoller:
    """Collects `<disclosure-id>.receipt.jwt` files from each SFTP partner's outbound directory.

    Each goes to the handler; an accepted one is moved to `archive/`, a refused one to
    `quarantine/` (so it is looked at once, not every poll), one to retry stays where it is.
    """

    def __init__(self, channel: SftpChannel) -> None:
        self.channel = channel

    async def poll_once(self, handle: ReceiptFileHandler) -> dict[str, int]:
        """One pass over every partner `handle` names with a receipts directory; counts by
        verdict."""
        counts = {"accepted": 0, "refused": 0, "retry": 0, "unreachable": 0}
        for partner_id, mapping in handle.partners():
            target = SftpTarget.from_mapping(mapping)
            if isinstance(target, str) or target.receipts_path is None:
                continue
            try:
                await self._poll_partner(partner_id, target, handle, counts)
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                if _connection_fault(exc):
                    self.channel.drop(target)
                counts["unreachable"] += 1
                log.warning(
                    "sftp_receipts_poll_failed",
                    partner=partner_id,
                    reason=classify(exc)[1],
                    error_type=type(exc).__name__,
                )
        return counts

    async def _poll_partner(
        self,
        partner_id: str,
        target: SftpTarget,
        handle: ReceiptFileHandler,
        counts: dict[str, int],
    ) -> None:
        assert target.receipts_path is not None
        sftp = await self.channel.session(target)
        for entry in await sftp.readdir(target.receipts_path):
            name = str(entry.filename)
            regular = entry.attrs.type == asyncssh.FILEXFER_TYPE_REGULAR
            if not regular or not name.endswith(RECEIPT_SUFFIX):
                continue
            try:
                verdict = await self._take(sftp, partner_id, target, entry, handle)
            except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
                continue  # another worker process took this file first
            counts[verdict] += 1

    async def _take(
        self,
        sftp: asyncssh.SFTPClient,
        partner_id: str,
        target: SftpTarget,
        entry: asyncssh.SFTPName,
        handle: ReceiptFileHandler,
    ) -> ReceiptVerdict:
        assert target.receipts_path is not None
        name = str(entry.filename)
        source = posixpath.join(target.receipts_path, name)
        message_id = name.removesuffix(RECEIPT_SUFFIX)
        too_big = (entry.attrs.size or 0) > self.channel.options.max_receipt_bytes
        if too_big or not _SAFE_NAME.match(message_id):
            verdict: ReceiptVerdict = "refused"
            log.warning("sftp_receipt_unreadable", partner=partner_id, too_big=too_big)
        else:
            async with sftp.open(source, "rb", encoding=None) as file:
                body = await file.read(self.channel.options.max_receipt_bytes + 1)
            data = body if isinstance(body, bytes) else body.encode()
            verdict = await handle(ReceiptFile(partner_id, name, message_id, data.strip()))
        if verdict != "retry":
            folder = target.archive_path if verdict == "accepted" else target.quarantine_path
            assert folder is not None
            await _move(sftp, source, posixpath.join(folder, name))
        return verdict


async def _move(sftp: asyncssh.SFTPClient, source: str, destination: str) -> None:
    """Move a receipt file, making its folder on first use."""
    with contextlib.suppress(asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists):
        await sftp.mkdir(posixpath.dirname(destination))
    try:
        await sftp.posix_rename(source, destination)
    except asyncssh.SFTPOpUnsupported:
        await sftp.rename(source, destination)
