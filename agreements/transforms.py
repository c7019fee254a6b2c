"""Field transforms applied on the way out; each refuses (returns REMOVE) rather than leak."""

from __future__ import annotations

import enum
import hmac
import math
import re
from datetime import date, datetime
from typing import Any, Final

from agreements.dictionary import FieldDefinition, ValueType
from agreements.model import Transform


class _Remove:
    """Sentinel: the value cannot be sent (dropped, or not in the shape the transform needs)."""

    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Final = _Remove()


class FieldRefusal(enum.StrEnum):
    """Why a value in a permitted field was refused (reported with its path, never the value)."""

    TYPE_MISMATCH = "type_mismatch"
    TOO_LONG = "too_long"
    NOT_IN_CODE_LIST = "not_in_code_list"


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?"
)
_NAME_PARTS = re.compile(r"[\s\-]+")
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


def _is_date_text(value: str) -> bool:
    try:
        if _ISO_DATE.fullmatch(value):
            date.fromisoformat(value)
            return True
        if _ISO_DATETIME.fullmatch(value):
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            return True
    except ValueError:
        return False
    return False


def refusal(value: Any, definition: FieldDefinition) -> FieldRefusal | None:
    """Why this value may not go in this field, or None when it has the dictionary's type.

    A null is no value and passes; anything else must be exactly the field's type: a yes/no
    field takes only true or false, a date field only an ISO 8601 date, a number field only a
    finite number, a string field only a string no longer than the field's maximum, a code
    field only one of its list's codes.
    """
    if value is None:
        return None
    kind = definition.type
    if kind is ValueType.STRING:
        if not isinstance(value, str):
            return FieldRefusal.TYPE_MISMATCH
        limit = definition.max_length
        return FieldRefusal.TOO_LONG if limit is not None and len(value) > limit else None
    if kind is ValueType.CODE:
        if not isinstance(value, str):
            return FieldRefusal.TYPE_MISMATCH
        return None if value in definition.codes else FieldRefusal.NOT_IN_CODE_LIST
    if kind is ValueType.BOOLEAN:
        return None if isinstance(value, bool) else FieldRefusal.TYPE_MISMATCH
    if kind is ValueType.NUMBER:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return None if number and math.isfinite(value) else FieldRefusal.TYPE_MISMATCH
    if isinstance(value, date) or (isinstance(value, str) and _is_date_text(value)):
        return None
    return FieldRefusal.TYPE_MISMATCH


def initials(value: Any) -> str | _Remove:
    """The initials of a name (`Jordan Example` -> `JE`): enough to recognise, far less to leak."""
    if not isinstance(value, str):
        return REMOVE
    letters = [part[0].upper() for part in _NAME_PARTS.split(value.strip()) if part]
    return "".join(letters) if letters else REMOVE


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
    if transform == Transform.INITIALS:
        return initials(value)
    return REMOVE  # Transform.DROP, and default deny for anything new
