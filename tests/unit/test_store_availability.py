"""Which database errors are an outage (503, retry) and which are ours (500, a bug)."""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc
from structlog.testing import capture_logs

from gateway.store.availability import Availability, is_unavailable


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("x")
        self.sqlstate = sqlstate


def _wrapped(orig: BaseException) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("SELECT 1", {}, orig)  # type: ignore[arg-type]


def _sqlite(name: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("x")
    error.sqlite_errorname = name
    return error


def test_outages_are_unavailable() -> None:
    assert is_unavailable(ConnectionRefusedError())
    assert is_unavailable(TimeoutError())
    assert is_unavailable(sa_exc.TimeoutError())  # the pool had no connection in time
    assert is_unavailable(_wrapped(_PgError("08006")))  # connection failure
    assert is_unavailable(_wrapped(_PgError("53300")))  # too many connections
    assert is_unavailable(_wrapped(_PgError("57P01")))  # admin shutdown
    assert is_unavailable(_wrapped(_sqlite("SQLITE_BUSY")))


def test_our_own_faults_are_not_unavailable() -> None:
    assert not is_unavailable(ValueError())
    assert not is_unavailable(_wrapped(_PgError("23505")))  # unique violation
    assert not is_unavailable(_wrapped(_PgError("42P01")))  # undefined table
    assert not is_unavailable(_wrapped(_sqlite("SQLITE_CONSTRAINT_UNIQUE")))


def test_one_line_when_an_outage_begins_and_one_when_it_ends() -> None:
    availability = Availability("postgresql")
    with capture_logs() as logs:
        for _ in range(50):
            availability.failed(ConnectionRefusedError())
        availability.answered()
        availability.answered()
    assert [entry["event"] for entry in logs] == ["database_unavailable", "database_available"]
    assert logs[1]["count"] == 50
