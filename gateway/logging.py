"""structlog set-up with a redaction processor: field names may be logged, values never.

Libraries log through the standard library (aio-pika, asyncio, aiohttp, gunicorn, SQLAlchemy):
their records go through the same processors and renderer by `ProcessorFormatter`, so every
line on stderr is one JSON object and is redacted like our own.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from types import TracebackType
from typing import Any, Literal

import orjson
import structlog

REDACTED = "[redacted]"

# Keys whose values are safe to log: ids, codes, counts, names of fields. Anything else that is
# not a plain number or boolean is redacted, so a future `log.info(..., record=record)` leaks
# nothing.
SAFE_KEYS = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "logger",
        "exc_info",
        "exception",
        "disclosure_id",
        "message_id",
        "agreement",
        "agreement_version",
        "partner",
        "purpose",
        "status",
        "outcome",
        "reason",
        "reasons",
        "warnings",
        "client",
        "method",
        "path",
        "route",
        "status_code",
        "duration_ms",
        "fields_sent",
        "fields_removed",
        "kid",
        "attempt",
        "attempts",
        "role",
        "actor",
        "action",
        "count",
        "queue",
        "channel",
        "delay_s",
        "workers",
        "host",
        "port",
        "url_host",
        "setting",
        "code",
        "version",
        "receipt_id",
        "seq",
        "mesh_message_id",
        "batch",
        "depth",
        "error_type",
        "signal",
        "database",
        "broker",
    }
)
# Keys that are never logged, whatever their type.
SECRET_KEYS = frozenset(
    {
        "record",
        "data",
        "subject",
        "nhs_number",
        "local_id",
        "token",
        "authorization",
        "password",
        "secret",
        "key",
        "private_key",
        "body",
        "envelope",
        "claims",
        "headers",
    }
)
_NHS_NUMBER = re.compile(r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b")
# PostgreSQL names the offending value in a constraint error: `Key (col)=(value) already exists`.
_KEY_VALUE = re.compile(r"\)=\((?:[^()]|\([^()]*\))*\)")
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-]{32,}")
# Disclosure and message ids are UUIDs: ids, not secrets, and the on-call engineer needs them.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _token_or_id(match: re.Match[str]) -> str:
    return match.group(0) if _UUID.fullmatch(match.group(0)) else REDACTED


_SHORTEST_MATCH = 10  # an NHS number's ten digits; a token-like run needs 32 characters


def _scrub_text(text: str) -> str:
    if len(text) < _SHORTEST_MATCH:  # most values logged (methods, codes, names): nothing to find
        return text
    text = _KEY_VALUE.sub(f")=({REDACTED})", text)
    return _TOKEN_LIKE.sub(_token_or_id, _NHS_NUMBER.sub(REDACTED, text))


def _safe_value(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, list | tuple):
        return [_safe_value(item) for item in value]
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor: keep safe keys (scrubbed), plain numbers and booleans; redact the rest."""
    for key in list(event_dict):
        value = event_dict[key]
        if key in SECRET_KEYS:
            event_dict[key] = REDACTED
        elif key in SAFE_KEYS:
            event_dict[key] = value if key == "exc_info" else _safe_value(value)
        elif isinstance(value, bool | int | float) or value is None:
            continue
        else:
            event_dict[key] = REDACTED
    return event_dict


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time (test runners swap it out)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _json_line(event_dict: Any, **dumps_kw: Any) -> str:
    """One JSON log line by orjson (structlog's own advice for speed), as text."""
    return orjson.dumps(event_dict, default=dumps_kw.get("default")).decode()


class LibraryHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler for the standard library's records; one per process."""


# A connection the network or the server took away is an expected event: the library's line
# says so; a traceback through its reader adds some 30 lines and nothing an operator can use.
_CONNECTION_FAULTS: tuple[type[BaseException], ...] = (ConnectionError, EOFError, TimeoutError)
_CONNECTION_FAULT_NAMES = frozenset(
    {"AMQPConnectionError", "ConnectionClosed", "ChannelInvalidStateError", "IncompleteReadError"}
)


def _is_connection_fault(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, _CONNECTION_FAULTS) or type(exc).__name__ in _CONNECTION_FAULT_NAMES:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _echoes_a_lost_connection(message: str) -> bool:
    """aio-pika's "Callback ... error: <type>: <text>" about a connection or channel gone."""
    _, found, error = message.partition(" error: ")
    if not found:
        return False
    kind = error.partition(":")[0]
    return (
        error.endswith(" closed")
        or kind in _CONNECTION_FAULT_NAMES
        or kind.endswith(("ConnectionError", "ResetError", "RefusedError", "ChannelClosed"))
    )


class ConnectionFaultLines(logging.Filter):
    """One line per connection event from a library: the exception's type and message instead
    of its traceback, and none of the follow-on complaints about callbacks on the closed
    connection (aio-pika logs one per channel, at error, after it has said it lost it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Shorten a connection fault's record; drop the echoes of one already logged."""
        if record.name == "aio_pika.tools" and _echoes_a_lost_connection(record.getMessage()):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _is_connection_fault(exc):
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _shared_processors() -> list[Any]:
    # Exceptions are rendered to text first, so the redaction sees (and scrubs) the traceback.
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]


def _route_library_logs(renderer: Any, level: int) -> None:
    """Send every standard-library record through structlog's processors to stderr."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_shared_processors(),
            renderer,
        ],
    )
    handler = LibraryHandler(_CurrentStderr())
    handler.setFormatter(formatter)
    handler.addFilter(ConnectionFaultLines())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, LibraryHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries' debug lines (aiosqlite logs every statement) stay out even at debug level.
    root.setLevel(max(level, logging.INFO))


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    structlog.get_logger("gateway").critical("uncaught_exception", exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    *,
    cache_loggers: bool = False,
) -> None:
    """Configure structlog once at start-up: JSON when not on a terminal, key-value otherwise.

    `cache_loggers` is for a process that configures logging once (`gateway serve`): each
    module's logger is then built on its first use instead of on every call, and warnings and
    uncaught exceptions become log lines too. Not in tests, which configure logging again and
    again in one process.
    """
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*_shared_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        # One write per line (print() writes the newline apart): lines from several processes
        # sharing a file never interleave.
        logger_factory=structlog.WriteLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=cache_loggers,
    )
    _route_library_logs(renderer, numeric_level)
    if cache_loggers:
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread


def bound_context(values: Mapping[str, Any]) -> None:
    """Bind request-scoped ids (disclosure_id, client) to every log line of this task."""
    structlog.contextvars.bind_contextvars(**values)
