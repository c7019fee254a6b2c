"""S/MIME signatures on mail from partners, checked with OpenSSL's `cms` command.

`cryptography` can build S/MIME but cannot verify it, so OpenSSL does. The signer must be one of
the partner's registered certificates (`-nointern -certfile`: certificates carried in the mail
itself are not trusted), which pins the partner rather than any CA's customer; the chain is not
walked (`-noverify`) because the pin is the stronger check.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Sequence

import structlog

log = structlog.get_logger(__name__)

OPENSSL = "openssl"
TIMEOUT = 10.0


async def _openssl(args: Sequence[str], data: bytes) -> tuple[int, bytes]:
    process = await asyncio.create_subprocess_exec(
        OPENSSL,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(data), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, b""
    return process.returncode or 0, out


async def signed_content(raw: bytes) -> bytes | None:
    """What a signed mail says, its signature NOT checked: only to find whose it claims to be."""
    code, out = await _openssl(["cms", "-verify", "-noverify", "-nosigs", "-inform", "SMIME"], raw)
    return out if code == 0 else None


async def verified_content(raw: bytes, certificates: Sequence[bytes]) -> bytes | None:
    """The signed content when one of `certificates` (PEM) signed `raw`, else None."""
    if not certificates:
        return None
    fd, path = tempfile.mkstemp(prefix="gatehouse-signers-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(b"\n".join(certificates))
        code, out = await _openssl(
            ["cms", "-verify", "-noverify", "-nointern", "-certfile", path, "-inform", "SMIME"],
            raw,
        )
    finally:
        os.unlink(path)
    if code != 0:
        log.info("smime_signature_refused", exit_code=code)
        return None
    return out
