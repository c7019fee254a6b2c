"""Peak RSS per process for 1 and 6 concurrent ~9 MB records, as a multiple of the body's size,
in the deployed shape: `gateway serve` API and worker processes on PostgreSQL and RabbitMQ.

The chaos rig (tests/chaos/rig.py: 2 API and 2 worker processes, a partner that opens every
envelope and answers a receipt) with one worker stopped, so one worker delivers every record;
every record is posted to the first API process. Before each run every process's peak RSS
(VmHWM) is reset; after the records are receipted it is read against the RSS before. A 1 MB
record first warms every process up. Linux only; needs PostgreSQL and RabbitMQ. Asserts nothing.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_memory_processes.py [--size-mb 9]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.chaos.rig import TERMINAL, Rig, _body, _submit, chaos_rig, large_record, statuses_of
from tests.services import fresh_postgres_database, unique_name

MB = 1024 * 1024
AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def _tree(pid: int) -> list[int]:
    """The process and its descendants (`serve` may run the server in a child)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += _tree(int(child))
    return found


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class Peaks:
    """Peak RSS growth of each named process tree since `__init__` (the largest member's)."""

    def __init__(self, processes: dict[str, subprocess.Popen[bytes] | None]) -> None:
        self.pids = {name: _tree(p.pid) for name, p in processes.items() if p is not None}
        self.before: dict[int, int] = {}
        for pids in self.pids.values():
            for pid in pids:
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
                self.before[pid] = _kib(pid, "VmRSS")

    def growth(self) -> dict[str, int]:
        return {
            name: max(_kib(pid, "VmHWM") - self.before[pid] for pid in pids)
            for name, pids in self.pids.items()
        }


async def _submit_at_once(rig: Rig, count: int, body: bytes) -> None:
    """`count` submissions at once, all to the first API process."""
    headers = {"Authorization": f"Bearer {rig.token}"}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        await asyncio.gather(
            *(_submit(rig, session, unique_name("memory"), 0, body) for _ in range(count))
        )


async def _settled(rig: Rig, within: float = 180.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        statuses = await statuses_of(rig.database_url)
        if all(statuses.get(id_) in TERMINAL for id_ in rig.tally.accepted.values()):
            return
        await asyncio.sleep(0.5)
    raise SystemExit("the records were not receipted in time")


async def main(database_url: str, size_mb: float) -> None:
    settings = {
        "GATEWAY_MAX_INFLIGHT_BYTES": str(64 * MB),
        "GATEWAY_WEBHOOK_TOTAL_TIMEOUT": "60",
    }
    tmp = Path(tempfile.mkdtemp(prefix="gatehouse-memory-"))
    async with chaos_rig(tmp, database_url, AMQP, **settings) as rig:
        await _submit_at_once(rig, 1, _body(large_record(MB)))
        await _settled(rig)
        await asyncio.to_thread(rig.workers[1].stop, 20.0)
        await asyncio.sleep(2)
        body = _body(large_record(int(size_mb * MB)))
        print(
            f"body {len(body) / MB:.1f} MB; peak RSS growth per process, per in-flight record,"
            " as a multiple of the body's size (PostgreSQL, RabbitMQ)"
        )
        print(f"{'n':>3} {'process':<8} {'per rec.':>9} {'MB':>6}")
        for count in (1, 6):
            peaks = Peaks({"api": rig.apis[0].proc, "worker": rig.workers[0].proc})
            await _submit_at_once(rig, count, body)
            await _settled(rig)
            for name, growth in peaks.growth().items():
                print(
                    f"{count:>3} {name:<8} {growth / len(body) / count:>8.2f}x {growth / MB:>6.0f}"
                )
            await asyncio.sleep(2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=float, default=9.0)
    args = parser.parse_args()
    with fresh_postgres_database() as url:
        asyncio.run(main(url, args.size_mb))
