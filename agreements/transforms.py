"""Field transforms applied on the way out; each refuses (returns REMOVE) rather than leak."""

from __future__ import annotations

import hmac
import re
from datetime import date, datetime
from typing import Any, Final

from agreements.model import Transform


class _Remove:
    """Sentinel: the value cannot be sent (dropped, or not in the shape the transform needs)."""

    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Final = _Remove()

_POSTCODE = re.compile(r"([A-Z]{1,2}[0-9][0-9A-Z]?)([0-9][A-Z]{2})")
_WHITESPACE = re.compile(r"\s+")
_AGE_BANDS: Final = (
    (0, 4),
    (5, 9),
    (10, 15),
    (16, 17),
    (18, 24),
    (25, 34),
    (35, 44),
    (45, 54),
    (55, 64),
    (65, 74),
    (75, 84),
)


def as_date(value: Any) -> date | None:
    """A date from a date, datetime or ISO 8601 string; None if it is not one."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def year_only(value: Any) -> int | _Remove:
    """Only the year of a date: enough for most statistics, far less identifying."""
    when = as_date(value)
    return REMOVE if when is None else when.year


def age_band(value: Any, today: date) -> str | _Remove:
    """The age band of a date of birth on `today` (children's bands finer than adults')."""
    born = as_date(value)
    if born is None or born > today:
        return REMOVE
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    for low, high in _AGE_BANDS:
        if low <= age <= high:
            return f"{low}-{high}"
    return "85+"


def postcode_district(value: Any) -> str | _Remove:
    """The outward code of a UK postcode (`ME7 1AB` -> `ME7`); anything else is removed."""
    if not isinstance(value, str):
        return REMOVE
    match = _POSTCODE.fullmatch(re.sub(r"\s+", "", value.upper()))
    return REMOVE if match is None else match.group(1)


def pseudonymise(value: Any, key: bytes, scope: str) -> str | _Remove:
    """A keyed HMAC-SHA256 pseudonym, scoped so two agreements' pseudonyms do not link."""
    if value is None or isinstance(value, dict | list):
        return REMOVE
    normalised = _WHITESPACE.sub("", str(value)).upper()
    message = f"{scope}\x1f{normalised}".encode()
    return hmac.digest(key, message, "sha256").hex()  # one-shot HMAC-SHA256, as hmac.new


def is_scalar(value: Any) -> bool:
    """True for a JSON scalar that may be sent as it is."""
    return value is None or isinstance(value, str | int | float | bool)


def apply(transform: Transform, value: Any, *, key: bytes, scope: str, today: date) -> Any:
    """Apply one transform to one leaf value; REMOVE when it must not be sent."""
    if transform == Transform.KEEP:
        if isinstance(value, date):
            return value.isoformat()
        return value if is_scalar(value) else REMOVE
    if transform == Transform.YEAR_ONLY:
        return year_only(value)
    if transform == Transform.AGE_BAND:
        return age_band(value, today)
    if transform == Transform.POSTCODE_DISTRICT:
        return postcode_district(value)
    if transform == Transform.PSEUDONYMISE:
        return pseudonymise(value, key, scope)
    return REMOVE  # Transform.DROP, and default deny for anything new
