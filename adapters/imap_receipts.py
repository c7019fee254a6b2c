"""The council's receipts mailbox, read over IMAP with implicit TLS (`aioimaplib`).

Partners reply to the council's mail with their signed receipt attached. Each poll logs in
(the server's certificate verified; `aioimaplib` has no STARTTLS, so the port is imaps), reads
every mail in the inbox without marking it seen, hands what it holds (`adapters.inbound_mail`)
to the handler, and moves it by the handler's verdict: taken ones (`accepted`, `acknowledged`,
`ignored`) to the archive folder, `refused` ones to the quarantine folder (so each is looked at
once, by a person, not every poll), `retry` ones stay for the next poll. A mail larger than the
limit is quarantined unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aioimaplib import IMAP4, AioImapException

from adapters.inbound_mail import read_mail
from gateway.application.inbound import InboundMail, MailHandler, MailVerdict, RefusedMail

log = structlog.get_logger(__name__)

_TAKEN: frozenset[MailVerdict] = frozenset({"accepted", "acknowledged", "ignored"})
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


class MailboxError(Exception):
    """The mailbox could not be read this time (`reason` is a stable code)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ImapOptions:
    """The council's receipts mailbox (GATEWAY_IMAP_* settings)."""

    host: str
    username: str
    password: str
    port: int = 993
    ca_bundle: str | None = None  # None: the system's trusted CAs
    inbox: str = "INBOX"
    archive: str = "Archive"
    quarantine: str = "Quarantine"
    timeout: float = 30.0
    max_message_bytes: int = 1024 * 1024
    batch: int = 200  # mails taken per poll; the rest wait for the next


class ImapReceiptMailbox:
    """Polls the receipts mailbox; one IMAP session per poll."""

    def __init__(self, options: ImapOptions) -> None:
        self.options = options
        self._tls: ssl.SSLContext | None = None

    def tls_context(self) -> ssl.SSLContext:
        """Verified TLS 1.2 or later, against the configured CA bundle or the system's."""
        if self._tls is None:
            context = ssl.create_default_context(cafile=self.options.ca_bundle)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._tls = context
        return self._tls

    async def poll_once(self, handle: MailHandler) -> dict[str, int]:
        """`poll`, a mailbox that cannot be read reported to `handle` and counted `unreachable`."""
        try:
            return await self.poll(handle)
        except MailboxError as exc:
            handle.unreachable(exc.reason)
            return {"unreachable": 1}

    async def poll(self, handle: MailHandler) -> dict[str, int]:
        """One pass over the inbox; counts by verdict. MailboxError when it cannot be read."""
        counts = dict.fromkeys(("accepted", "acknowledged", "ignored", "refused", "retry"), 0)
        options = self.options
        client: IMAP4 | None = None
        reason = "imap_unreachable"
        try:
            # aioimaplib leaves a command waiting out its timeout when the server drops the
            # connection; the deadline, brought forward on the drop, ends that wait at once.
            # (IMAP4 given a TLS context is implicit TLS; IMAP4_SSL takes no conn_lost_cb.)
            async with asyncio.timeout(None) as dropped:
                client = IMAP4(
                    options.host,
                    options.port,
                    timeout=options.timeout,
                    ssl_context=self.tls_context(),
                    conn_lost_cb=_ends_now(dropped),
                )
                await client.wait_hello_from_server()
                reason = "imap_failed"
                await self._session(client, handle, counts)
        except (OSError, TimeoutError, AioImapException) as exc:
            if isinstance(exc, ssl.SSLError) and reason == "imap_unreachable":
                reason = "imap_tls_failed"
            raise MailboxError(reason) from exc
        finally:
            if client is not None:
                await _logout(client)
        return counts

    async def _session(self, client: IMAP4, handle: MailHandler, counts: dict[str, int]) -> None:
        options = self.options
        if (await client.login(options.username, options.password)).result != "OK":
            raise MailboxError("imap_auth_failed")
        for folder in (options.archive, options.quarantine):
            await client.create(folder)  # NO [ALREADYEXISTS] after the first time
        if (await client.select(options.inbox)).result != "OK":
            raise MailboxError("imap_inbox_missing")
        sizes = await self._sizes(client)
        for uid, size in sizes[: options.batch]:
            mail: InboundMail
            if size > options.max_message_bytes:
                mail = RefusedMail("mail_too_large")  # not even fetched
            else:
                raw = await self._fetch(client, uid)
                if raw is None:
                    continue  # another worker process took it meanwhile
                mail = await read_mail(raw, handle.signers)
            verdict = await handle(mail)
            counts[verdict] += 1
            if verdict != "retry":
                folder = options.archive if verdict in _TAKEN else options.quarantine
                await _move(client, uid, folder)

    async def _sizes(self, client: IMAP4) -> list[tuple[str, int]]:
        response = await client.uid("fetch", "1:*", "(UID RFC822.SIZE)")
        if response.result != "OK":
            return []  # an empty mailbox answers `1:*` with nothing, or NO on some servers
        found: list[tuple[str, int]] = []
        for line in response.lines:
            uid, size = _UID.search(bytes(line)), _SIZE.search(bytes(line))
            if uid is not None and size is not None:
                found.append((uid.group(1).decode(), int(size.group(1))))
        return sorted(found, key=lambda pair: int(pair[0]))

    async def _fetch(self, client: IMAP4, uid: str) -> bytes | None:
        response = await client.uid("fetch", uid, "BODY.PEEK[]")
        if response.result != "OK":
            return None
        literals = [bytes(line) for line in response.lines if isinstance(line, bytearray)]
        return literals[0] if literals else None


async def _move(client: IMAP4, uid: str, folder: str) -> None:
    """MOVE (RFC 6851) where offered, else copy, flag deleted and expunge that one mail."""
    if client.has_capability("MOVE"):
        response = await client.uid("move", uid, folder)
    else:
        response = await client.uid("copy", uid, folder)
        if response.result == "OK":
            await client.uid("store", uid, "+FLAGS.SILENT", r"(\Deleted)")
            response = await client.uid("expunge", uid)
    if response.result != "OK":
        raise MailboxError("imap_move_failed")


def _ends_now(deadline: asyncio.Timeout) -> Callable[[Exception | None], None]:
    """A connection-lost callback that makes `deadline` expire now, if it is still running."""

    def lost(_exc: Exception | None) -> None:
        if deadline.expired():
            return
        with contextlib.suppress(RuntimeError):  # the session already over
            deadline.reschedule(asyncio.get_running_loop().time())

    return lost


async def _logout(client: IMAP4) -> None:
    """Say goodbye if the session got that far; a broken one is simply dropped."""
    transport = client.protocol.transport
    if transport is None or transport.is_closing():
        return  # the server went away: a LOGOUT would only wait out the timeout
    try:
        await client.logout()
    except (OSError, TimeoutError, AioImapException) as exc:
        log.debug("imap_logout_failed", error_type=type(exc).__name__)
