"""The external anchor: every signed audit checkpoint is also appended to a file outside the
database (`GATEWAY_AUDIT_ANCHOR`), optionally with an RFC 3161 time-stamp over it whose
certificate chain is checked against `GATEWAY_AUDIT_TSA_CA` when stamped and when verified.

Someone who can rewrite the database but not that file (append-only, another host, WORM
storage) can no longer cut the chain back and rewind its head: `audit verify --anchors` finds
checkpoints in the anchor that the database no longer has. Lines are JSON, one checkpoint
each, appended after the checkpoint committed, so the anchor never names one the database
rolled back.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from gateway.errors import GatewayError
from gateway.store import audit_log as sql
from gateway.store.database import Store

log = structlog.get_logger("gateway.audit")
_TAIL_BYTES = 64 * 1024  # more than one line: a checkpoint token and a time-stamp reply


class AnchorError(GatewayError):
    """The anchor file cannot be read or written, or a time-stamp authority refused."""

    code = "audit_anchor_failed"


@dataclass(frozen=True, slots=True)
class AnchoredCheckpoint:
    """One signed checkpoint as the anchor holds it; `timestamp` is the raw RFC 3161 reply."""

    seq: int
    hash: str
    at: datetime
    kid: str
    token: str
    timestamp: bytes | None = None

    def to_line(self) -> bytes:
        """One JSON line."""
        value: dict[str, Any] = {
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at.isoformat(),
            "kid": self.kid,
            "token": self.token,
        }
        if self.timestamp is not None:
            value["rfc3161"] = base64.b64encode(self.timestamp).decode("ascii")
        return json.dumps(value, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes, number: int) -> AnchoredCheckpoint:
        """Parse one line; `audit_anchor_invalid` names the line, not its contents."""
        try:
            value = json.loads(line)
            stamp = value.get("rfc3161")
            return cls(
                seq=int(value["seq"]),
                hash=str(value["hash"]),
                at=datetime.fromisoformat(value["at"]),
                kid=str(value["kid"]),
                token=str(value["token"]),
                timestamp=base64.b64decode(stamp, validate=True) if stamp else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AnchorError(
                f"anchor line {number} is not a checkpoint", code="audit_anchor_invalid"
            ) from None


def read_anchor(path: Path) -> list[AnchoredCheckpoint]:
    """Every checkpoint in an anchor file, in the order appended."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise AnchorError(f"cannot read the anchor file ({exc.strerror})") from None
    return [AnchoredCheckpoint.from_line(line, n) for n, line in enumerate(lines, 1) if line]


class AnchorFile:
    """The anchor file, only ever opened to append (so `chattr +a` does not get in the way)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append_after(self, records: Sequence[AnchoredCheckpoint]) -> int:
        """Append the records past the last seq already anchored; returns how many.

        Under an exclusive lock, so two gateway processes never anchor the same checkpoint twice.
        """
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        with self._locked(os.open(self.path, flags, 0o600)) as fd:
            last = self.last_seq()
            fresh = [r for r in records if r.seq > last]
            if fresh:
                os.write(fd, b"".join(r.to_line() for r in fresh))
                os.fsync(fd)
            return len(fresh)

    def last_seq(self) -> int:
        """The seq of the last checkpoint anchored, 0 when there is none."""
        try:
            with self.path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - _TAIL_BYTES))
                tail = handle.read().splitlines()
        except FileNotFoundError:
            return 0
        for line in reversed(tail):
            if line.strip():
                return AnchoredCheckpoint.from_line(line, 0).seq
        return 0

    @staticmethod
    @contextmanager
    def _locked(fd: int) -> Iterator[int]:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing releases the lock


class TsaTrust:
    """The certificates a time-stamp must chain to (GATEWAY_AUDIT_TSA_CA): self-signed ones are
    roots, the rest intermediates; a certificate for time-stamping in the bundle pins the TSA."""

    def __init__(self, bundle: bytes) -> None:
        try:
            certificates = x509.load_pem_x509_certificates(bundle)
        except ValueError:
            raise AnchorError("the TSA CA bundle holds no PEM certificate") from None
        builder = VerifierBuilder()
        for certificate in certificates:
            if certificate.issuer == certificate.subject:
                builder = builder.add_root_certificate(certificate)
            else:
                builder = builder.add_intermediate_certificate(certificate)
        self._verifier = builder.build()

    @classmethod
    def from_file(cls, path: Path) -> TsaTrust:
        """The bundle in `path`; `audit_anchor_failed` if it cannot be read."""
        try:
            return cls(path.read_bytes())
        except OSError as exc:
            raise AnchorError(f"cannot read the TSA CA bundle ({exc.strerror})") from None

    def verifies(self, response: TimeStampResponse, data: bytes) -> bool:
        """The time-stamp is over `data` and signed by a certificate that chains to the bundle."""
        try:
            return bool(self._verifier.verify_message(response, data))
        except (ValueError, VerificationError):
            return False


class TimeStampAuthority:
    """An RFC 3161 time-stamp authority over HTTP (rfc3161-client builds and reads the DER);
    each reply is checked against the authority's CA before it is anchored."""

    def __init__(self, url: str, trust: TsaTrust, *, timeout: float = 10.0) -> None:
        self.url, self._trust = url, trust
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def stamp(self, data: bytes) -> bytes:
        """The authority's signed reply over SHA-256(data), checked to be for exactly that."""
        builder = TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA256)
        # The reply carries the signing certificate, so the chain can be checked from the bundle.
        request = builder.nonce(nonce=True).cert_request(cert_request=True).build()
        headers = {"Content-Type": "application/timestamp-query"}
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as session:
                post = session.post(self.url, data=request.as_bytes(), headers=headers)
                async with post as reply:
                    reply.raise_for_status()
                    body = await reply.read()
            response = decode_timestamp_response(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AnchorError(f"time-stamp authority failed ({type(exc).__name__})") from None
        if PKIStatus(response.status) != PKIStatus.GRANTED:
            raise AnchorError("time-stamp authority refused the request")
        if response.tst_info.nonce != request.nonce or not _imprint_matches(response, data):
            raise AnchorError("time-stamp reply is for another request")
        if not self._trust.verifies(response, data):
            raise AnchorError("time-stamp reply does not chain to GATEWAY_AUDIT_TSA_CA")
        return body


def timestamp_matches(anchor: AnchoredCheckpoint, trust: TsaTrust | None = None) -> bool:
    """The time-stamp is over this checkpoint's token (and, given the TSA's CA bundle, signed
    by a certificate that chains to it)."""
    if anchor.timestamp is None:
        return False
    token = anchor.token.encode("ascii")
    try:
        response = decode_timestamp_response(anchor.timestamp)
    except ValueError:
        return False
    if trust is not None and not trust.verifies(response, token):
        return False
    return _imprint_matches(response, token)


def _imprint_matches(response: TimeStampResponse, data: bytes) -> bool:
    return bool(response.tst_info.message_imprint.message == hashlib.sha256(data).digest())


class CheckpointAnchor:
    """Appends checkpoints the database has and the anchor not yet, time-stamped if configured."""

    def __init__(self, anchor: AnchorFile, tsa: TimeStampAuthority | None = None) -> None:
        self._file, self._tsa = anchor, tsa
        self._lock = asyncio.Lock()

    async def catch_up(self, store: Store) -> int:
        """Anchor every checkpoint past the anchor's last; returns how many were appended."""
        async with self._lock:
            last = await asyncio.to_thread(self._file.last_seq)
            async with store.read() as conn:
                rows = await sql.read_checkpoints(conn, after=last)
            records = []
            for row in rows:
                stamp = None
                if self._tsa is not None:
                    try:
                        stamp = await self._tsa.stamp(row.token.encode("ascii"))
                    except AnchorError as exc:
                        # Verify requires a stamp on every line: anchor up to here, and try
                        # this checkpoint again at the next catch-up.
                        log.warning("audit_timestamp_failed", seq=int(row.seq), code=exc.code)
                        break
                records.append(
                    AnchoredCheckpoint(int(row.seq), row.hash, row.at, row.kid, row.token, stamp)
                )
            return await asyncio.to_thread(self._file.append_after, records)
