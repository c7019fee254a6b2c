"""How one payload is cut into MESH chunks, and whether they are gzipped: a pure plan."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass

MIB = 1024 * 1024
# MESH: every chunk but the last must be over 5 MB; no chunk may exceed 100 MB.
MIN_CHUNK_BYTES = 5 * MIB
MAX_CHUNK_BYTES = 100 * 1000 * 1000
DEFAULT_CHUNK_BYTES = 20 * MIB
_GZIP_LEVEL = 6


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """The bodies to POST in order (chunk 1 to /outbox, the rest to /outbox/{id}/{n})."""

    chunks: tuple[bytes, ...]
    compressed: bool
    checksum: str

    @property
    def total(self) -> int:
        """Number of chunks, as in mex-Chunk-Range `n:total`."""
        return len(self.chunks)

    def chunk_range(self, number: int) -> str:
        """The mex-Chunk-Range header value for chunk `number` (1-based)."""
        return f"{number}:{self.total}"


def validate_chunk_size(chunk_size: int) -> int:
    """Refuse a chunk size MESH would reject: it must be over 5 MiB and at most 100 MB."""
    if not MIN_CHUNK_BYTES < chunk_size <= MAX_CHUNK_BYTES:
        raise ValueError(
            f"chunk size must be over {MIN_CHUNK_BYTES} and at most {MAX_CHUNK_BYTES} bytes"
        )
    return chunk_size


def content_checksum(payload: bytes) -> str:
    """mex-Content-Checksum: SHA-256 of the payload as sent by us (before transport gzip)."""
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def _split(payload: bytes, chunk_size: int) -> list[bytes]:
    return [payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size)]


def plan_upload(payload: bytes, chunk_size: int, *, gzip_allowed: bool) -> UploadPlan:
    """Split the payload; gzip each chunk (Content-Encoding, as NHS England's client does).

    Compression is used only when it is allowed, actually makes the message smaller, and
    leaves every chunk but the last still over the MESH minimum. The plan is deterministic
    (gzip mtime 0), so a resumed upload re-sends exactly the bytes of the first attempt.
    """
    if not payload:
        raise ValueError("MESH refuses an empty message")
    validate_chunk_size(chunk_size)
    raw = _split(payload, chunk_size)
    checksum = content_checksum(payload)
    if gzip_allowed:
        packed = [gzip.compress(chunk, compresslevel=_GZIP_LEVEL, mtime=0) for chunk in raw]
        smaller = sum(map(len, packed)) < len(payload)
        big_enough = all(len(chunk) > MIN_CHUNK_BYTES for chunk in packed[:-1])
        if smaller and big_enough:
            return UploadPlan(chunks=tuple(packed), compressed=True, checksum=checksum)
    return UploadPlan(chunks=tuple(raw), compressed=False, checksum=checksum)
