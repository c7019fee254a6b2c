"""The MESH `NHSMESH` authorization token: pure, with the clock and the nonce passed in."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

AUTH_SCHEMA = "NHSMESH"


def mesh_timestamp(now: dt.datetime) -> str:
    """MESH wants the token time as yyyymmddHHMM in UTC."""
    return now.astimezone(dt.UTC).strftime("%Y%m%d%H%M")


def auth_token(
    *,
    mailbox: str,
    password: str,
    shared_key: str,
    nonce: str,
    nonce_count: int,
    now: dt.datetime,
) -> str:
    """Build `NHSMESH mailbox:nonce:count:timestamp:hmac`, the HMAC keyed with the shared key.

    The HMAC-SHA256 covers `mailbox:nonce:nonce_count:password:timestamp`, so the password
    itself never travels; only the environment's shared key and the password can produce it.
    """
    timestamp = mesh_timestamp(now)
    private = f"{mailbox}:{nonce}:{nonce_count}:{password}:{timestamp}"
    digest = hmac.new(shared_key.encode(), private.encode(), hashlib.sha256).hexdigest()
    return f"{AUTH_SCHEMA} {mailbox}:{nonce}:{nonce_count}:{timestamp}:{digest}"
