"""Parsing a disclosure body without stalling the event loop.

A body of many small values costs far more to parse and check than its size suggests. Bodies
above `INLINE_BYTES` are parsed and validated in a worker thread, and a body holding more
than `GATEWAY_MAX_BODY_VALUES` JSON values (object members plus array elements) is refused
before schema validation, and so before the pipeline ever walks it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from gateway.http.problems import validation_errors
from gateway.http.schemas import DisclosureSubmission

INLINE_BYTES = 64 * 1024  # below this, a thread hand-off costs more than the parse


@dataclass(frozen=True, slots=True)
class BodyRefused:
    """Why a body was refused: the problem's status, code, title, detail and field errors."""

    status: int
    code: str
    title: str
    errors: list[dict[str, Any]] | None = None
    detail: str | None = None


def values_at_most(raw: bytes | bytearray) -> int:
    """An upper bound on the JSON values in `raw`: every member has a colon, and an array of
    n elements has n - 1 commas (strings may hold more of either, never fewer)."""
    return raw.count(b":") + raw.count(b",") + raw.count(b"[")


def more_values_than(value: Any, limit: int) -> bool:
    """Whether `value` holds more than `limit` members and elements; stops once past it."""
    seen = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            seen += len(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            seen += len(item)
            pending.extend(item)
        if seen > limit:
            return True
    return False


def parse_submission(raw: bytes | bytearray, max_values: int) -> DisclosureSubmission | BodyRefused:
    """The validated body, or why it is refused; never raises for bad input."""
    try:  # pydantic's parser: faster than json.loads, exact integers, no NaN or lone surrogates
        payload = from_json(raw, allow_inf_nan=False)
    except ValueError:
        return BodyRefused(400, "body_not_json", "Body is not valid JSON")
    # The bound counts bytes of the body: a body no longer than the limit cannot pass it.
    if (
        len(raw) > max_values
        and values_at_most(raw) > max_values
        and more_values_than(payload, max_values)
    ):
        return BodyRefused(
            413,
            "body_too_many_values",
            "Body holds too many JSON values",
            detail=f"limit {max_values} values",
        )
    try:
        return DisclosureSubmission.model_validate(payload)
    except ValidationError as exc:
        return BodyRefused(
            422, "body_invalid", "Body does not match the schema", validation_errors(exc)
        )


async def read_submission(
    raw: bytes | bytearray, max_values: int
) -> DisclosureSubmission | BodyRefused:
    """`parse_submission`, in a worker thread for a large body so other requests go on."""
    if len(raw) <= INLINE_BYTES:
        return parse_submission(raw, max_values)
    return await asyncio.to_thread(parse_submission, raw, max_values)
