"""Schemathesis hooks for Gatehouse: a compact JWS/JWE is text sent as application/jose."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("application/jose")
def jose_text(_ctx: Any, value: Any) -> bytes:
    """Generated strings go on the wire as they are; anything else as its text."""
    return value.encode() if isinstance(value, str) else str(value).encode()
