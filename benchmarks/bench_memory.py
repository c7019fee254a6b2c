"""Peak memory of POST /v1/disclosures for a ~9 MB record, as a multiple of the record's size.

The API runs in this process (aiohttp on loopback, the embedded SQLite store, or PostgreSQL
with `--postgres`); blocking clients in threads send bodies encoded before the measurement
starts, so the figure is the server's path: read, parse, decide, minimise, sign, encrypt, store.
Two record shapes:

- large text: the size is in long case notes (the case the design bounds: < 4x);
- many fields: 10,000 small fields of about the same total size.

Peak is measured two ways: tracemalloc (Python allocations, exact, includes freed copies) and
the process's peak RSS (VmHWM, reset before each run). Beside them, the bare baseline in the
same process: `orjson.loads` then `orjson.dumps` of the same bytes. Asserts nothing.

    .venv/bin/python benchmarks/bench_memory.py [--size-mb 9] [--concurrent 6] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import http.client
import sys
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_support import free_port, fresh_postgres, seed

from agreements.samples import child_record
from gateway.http.app import create_app
from gateway.logging import configure_logging
from gateway.service import Gateway

MB = 1024 * 1024
SMALL_FIELDS = 10_000
NOTE_CHARACTERS = 9_900


def _body(record: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "agreement": "KM-KCC-OOH-009",
            "purpose": "safeguarding_children",
            "subject": {"nhs_number": "9990000018", "local_id": "MC-C-000123"},
            "record": record,
            "requested_by": {"user": "sw-0099", "role": "social_worker"},
            "reason": "Memory benchmark (synthetic)",
        }
    )


def large_text_body(size: int) -> bytes:
    """A child's record whose size is in case notes of long free text (each just under the
    dictionary's 10,000-character limit for one free-text field; synthetic filler)."""
    record = child_record()
    words = "The visit went ahead as planned and the plan was reviewed. "
    text = (words * (NOTE_CHARACTERS // len(words) + 1))[:NOTE_CHARACTERS]
    record["case_notes"] = [
        {"date": "2026-09-02", "kind": "conversation", "text": text}
        for _ in range(max(1, size // NOTE_CHARACTERS))
    ]
    return _body(record)


def many_fields_body(size: int) -> bytes:
    """A child's record whose size is in 10,000 small fields (5,000 notes of date and text)."""
    record = child_record()
    notes = SMALL_FIELDS // 2
    text = ("Visit note. " * (size // (notes * 12) + 1))[: size // notes - 40]
    record["case_notes"] = [{"date": "2026-09-02", "text": f"{i} {text}"} for i in range(notes)]
    return _body(record)


def _post(port: int, token: str, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request("POST", "/v1/disclosures", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    # Resets VmHWM to the current RSS (Linux); elsewhere the rss column means nothing.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _fixed_malloc_thresholds() -> None:
    """glibc raises its mmap threshold after a large free, so later large blocks stay in the
    heap after use and RSS shows only the first run's growth: fix it (mallopt) at 128 KiB."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD


class Peak:
    """Peak growth over the current state: tracemalloc bytes and RSS bytes."""

    def __enter__(self) -> Peak:
        gc.collect()
        self.traced_before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        _reset_peak_rss()
        self.rss_before = _rss_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc: object) -> None:
        self.traced = tracemalloc.get_traced_memory()[1] - self.traced_before
        self.rss = _rss_kib("VmHWM") * 1024 - self.rss_before


def baseline(body: bytes) -> Peak:
    """orjson.loads then orjson.dumps of the same bytes: the least any JSON service holds."""
    with Peak() as peak:
        parsed = orjson.loads(body)
        again = orjson.dumps(parsed)
        del parsed, again
    return peak


async def through_api(port: int, token: str, body: bytes, concurrent: int) -> Peak:
    """POST the body `concurrent` times at once; every answer must be 202."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(concurrent) as pool, Peak() as peak:
        answers = await asyncio.gather(
            *(loop.run_in_executor(pool, _post, port, token, body) for _ in range(concurrent))
        )
    if set(answers) != {202}:
        raise SystemExit(f"the gateway answered {answers}")
    return peak


def _row(name: str, size: int, concurrent: int, peak: Peak, bare: Peak) -> str:
    per = concurrent * size
    return (
        f"{name:<12} {concurrent:>3} {peak.traced / per:>8.2f}x {peak.rss / per:>8.2f}x"
        f" {bare.traced / size:>8.2f}x {bare.rss / size:>8.2f}x"
        f" {peak.traced / MB:>9.0f} {peak.rss / MB:>9.0f}"
    )


async def main(size_mb: float, concurrent: int, postgres: bool) -> None:
    _fixed_malloc_thresholds()
    database_url, drop = await fresh_postgres() if postgres else (None, None)
    seeded = await seed(database_url=database_url, max_inflight_bytes=64 * MB)
    configure_logging("console", "warning")
    gateway = await Gateway.open(seeded.settings)
    runner = web.AppRunner(create_app(gateway), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    size = int(size_mb * MB)
    shapes: list[tuple[str, Callable[[int], bytes]]] = [
        ("large text", large_text_body),
        ("many fields", many_fields_body),
    ]
    print(
        f"record about {size_mb:g} MB, {'PostgreSQL' if postgres else 'SQLite'}; peak growth per"
        " in-flight record, as a multiple of the request body's size"
    )
    print(
        f"{'record':<12} {'n':>3} {'traced':>9} {'rss':>9} {'bare tr.':>9} {'bare rss':>9}"
        f" {'traced MB':>9} {'rss MB':>9}"
    )
    try:
        tracemalloc.start()
        await through_api(port, seeded.token, large_text_body(MB), 1)  # warm up
        for name, make in shapes:
            body = make(size)
            bare = baseline(body)
            for n in sorted({1, concurrent}):
                peak = await through_api(port, seeded.token, body, n)
                print(_row(name, len(body), n, peak, bare))
            del body
    finally:
        tracemalloc.stop()
        await runner.cleanup()
        await gateway.close()
        if drop is not None:
            await drop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=float, default=9.0)
    parser.add_argument("--concurrent", type=int, default=6)
    parser.add_argument("--postgres", action="store_true", help="the PostgreSQL store")
    args = parser.parse_args()
    asyncio.run(main(args.size_mb, args.concurrent, args.postgres))
