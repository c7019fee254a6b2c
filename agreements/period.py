"""Calendar periods such as a retention of `P2Y` (ISO 8601 years, months, days)."""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

_PERIOD = re.compile(r"P(?:(?P<years>\d{1,3})Y)?(?:(?P<months>\d{1,4})M)?(?:(?P<days>\d{1,5})D)?")


class Period:
    """A calendar period; unlike timedelta, `P1Y` after 29 February is 28 February."""

    __slots__ = ("days", "months", "years")

    def __init__(self, years: int = 0, months: int = 0, days: int = 0) -> None:
        if min(years, months, days) < 0 or years + months + days == 0:
            raise ValueError("a period must be positive")
        self.years, self.months, self.days = years, months, days

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse `P2Y`, `P18M`, `P1Y6M`, `P30D`."""
        match = _PERIOD.fullmatch(text.strip().upper())
        if match is None or not any(match.groupdict().values()):
            raise ValueError("must be an ISO 8601 period such as P2Y, P6M or P30D")
        parts = {key: int(value) for key, value in match.groupdict().items() if value}
        return cls(**parts)

    def after(self, start: date) -> date:
        """The date this period after `start` (clamped to the month's last day)."""
        month_index = start.month - 1 + self.months + 12 * self.years
        year, month = start.year + month_index // 12, month_index % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        return date(year, month, day) + timedelta(days=self.days)

    def __str__(self) -> str:
        text = "P"
        for value, unit in ((self.years, "Y"), (self.months, "M"), (self.days, "D")):
            if value:
                text += f"{value}{unit}"
        return text

    def __repr__(self) -> str:
        return f"Period({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Period):
            return NotImplemented
        return (self.years, self.months, self.days) == (other.years, other.months, other.days)

    def __hash__(self) -> int:
        return hash((self.years, self.months, self.days))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validate from a string (or a Period); serialise back to the ISO string."""

        def validate(value: Any) -> Period:
            if isinstance(value, Period):
                return value
            if isinstance(value, str):
                return cls.parse(value)
            raise ValueError("must be an ISO 8601 period such as P2Y")

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
            json_schema_input_schema=core_schema.str_schema(),
        )
