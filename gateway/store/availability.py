"""Tell a database outage from a programming error, and log an outage once, not per request."""

from __future__ import annotations

import sqlite3
import time

import structlog
from sqlalchemy import exc as sa_exc

log = structlog.get_logger("gateway.store")

# SQLSTATE classes and codes that mean "the server is away or full", not "your SQL is wrong":
# connection exceptions, too many connections / out of resources, shutdown and start-up.
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P")
# SQLite: another process holds the lock past the busy timeout, the file or disk is unusable.
_UNAVAILABLE_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR")


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be used right now (retrying later may work)."""
    if isinstance(exc, OSError | TimeoutError | sa_exc.TimeoutError):
        return True  # refused, reset, unreachable; a statement or a pool wait ran out of time
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        if isinstance(orig, OSError | TimeoutError):
            return True
        if isinstance(orig, sqlite3.Error):
            return str(getattr(orig, "sqlite_errorname", "")).startswith(_UNAVAILABLE_SQLITE)
        sqlstate = getattr(orig, "sqlstate", None) or ""
        return str(sqlstate).startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)
    return False


class Availability:
    """Whether the database answered last time; logs the change, once each way."""

    def __init__(self, dialect: str) -> None:
        self._dialect = dialect
        self._down_since: float | None = None
        self._refused = 0

    @property
    def down(self) -> bool:
        """The last use of the database failed for an outage."""
        return self._down_since is not None

    def failed(self, exc: BaseException) -> None:
        """An outage: one warning when it begins, then only counted."""
        self._refused += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "database_unavailable", database=self._dialect, error_type=type(exc).__name__
            )

    def answered(self) -> None:
        """The database answered: if it was away, one line saying it is back and for how long."""
        if self._down_since is None:
            return
        duration_ms = round((time.monotonic() - self._down_since) * 1000)
        log.warning(
            "database_available",
            database=self._dialect,
            duration_ms=duration_ms,
            count=self._refused,
        )
        self._down_since, self._refused = None, 0
