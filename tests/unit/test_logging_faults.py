"""A library's connection fault is one line without a traceback; any other error keeps it."""

from __future__ import annotations

import asyncio
import logging
import sys

from gateway.logging import ConnectionFaultLines


def _record(
    name: str, msg: str, exc: BaseException | None, level: int = logging.WARNING
) -> logging.LogRecord:
    exc_info = None
    if exc is not None:
        try:
            raise exc
        except BaseException:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, level, __file__, 1, msg, None, exc_info)


def _chained_connection_fault() -> BaseException:
    try:
        try:
            raise asyncio.IncompleteReadError(b"", 1)
        except asyncio.IncompleteReadError as inner:
            raise RuntimeError("reader exited") from inner
    except RuntimeError as outer:
        return outer


def test_a_connection_fault_loses_its_traceback_and_keeps_its_type() -> None:
    record = _record("aiormq.connection", "Cancelling cause %s", ConnectionResetError(104, "reset"))
    record.args = ("reader exited abnormally",)
    assert ConnectionFaultLines().filter(record)
    assert record.exc_info is None
    assert record.getMessage() == (
        "Cancelling cause reader exited abnormally: ConnectionResetError: [Errno 104] reset"
    )


def test_a_fault_caused_by_a_lost_connection_counts_as_one() -> None:
    record = _record("aiormq.connection", "reader failed", _chained_connection_fault())
    assert ConnectionFaultLines().filter(record)
    assert record.exc_info is None


def test_any_other_error_keeps_its_traceback() -> None:
    record = _record("aiohttp.server", "Error handling request", ValueError("a bug"))
    assert ConnectionFaultLines().filter(record)
    assert record.exc_info is not None  # the filter could have dropped it: it did not


def test_echoes_of_a_closed_connection_are_dropped_and_others_kept() -> None:
    echo = _record(
        "aio_pika.tools", 'Callback x error: RuntimeError: <Connection: "a"> closed', None
    )
    other = _record("aio_pika.tools", "Callback x error: ValueError: bad", None, logging.ERROR)
    channel = _record(
        "aio_pika.tools",
        "Callback <cb=_on_close> error: ChannelInvalidStateError: No active transport",
        None,
    )
    assert not ConnectionFaultLines().filter(echo)
    assert not ConnectionFaultLines().filter(channel)
    assert ConnectionFaultLines().filter(other)
