"""RFC 9457 problem+json responses: a stable code, a title, never a personal value."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import ValidationError

PROBLEM_TYPE_BASE = "https://gatehouse.example/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5  # an outage or a full house: long enough not to hammer, short to recover


def problem(
    status: int,
    code: str,
    title: str,
    *,
    detail: str | None = None,
    reasons: Sequence[str] | None = None,
    errors: Sequence[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    """Build a problem+json response; `code` is the stable reason code callers switch on."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    if reasons is not None:
        body["reasons"] = list(reasons)
    if errors is not None:
        body["errors"] = list(errors)
    body.update(extra or {})
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def unavailable(code: str, title: str) -> web.Response:
    """503 with Retry-After: nothing was recorded, the same request (same key) may come again."""
    return problem(503, code, title, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Name each bad field and what is wrong with it, never echoing the value sent."""
    out = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        out.append(
            {
                "field": ".".join(str(part) for part in error["loc"]) or "(body)",
                "code": error["type"],
                "message": error["msg"],
            }
        )
    return out
