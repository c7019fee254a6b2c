"""Accepted disclosures per second through POST /v1/disclosures, 64 keep-alive clients.

The service runs as `gateway serve --role api` on the embedded defaults (SQLite, WAL) in its own
process; this process is the load generator. Prints throughput and p50/p99 latency.
Usage: python benchmarks/bench_api.py [--requests 4000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_support import seed

from agreements.samples import adult_record

BODY = {
    "agreement": "KM-DOM-006",
    "purpose": "direct_care",
    "subject": {"nhs_number": "9990000026", "local_id": "MC-A-000456"},
    "record": adult_record(),
    "requested_by": {"user": "sw-0099", "role": "care_manager"},
    "reason": "Benchmark submission (synthetic)",
}


async def _wait_healthy(url: str, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise SystemExit("gateway exited during start-up")
            try:
                async with session.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise SystemExit("gateway did not become healthy")


async def _load(url: str, token: str, requests: int, concurrency: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    accepted = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal accepted
            while not queue.empty():
                queue.get_nowait()
                started = time.perf_counter()
                async with session.post(url + "/v1/disclosures", json=BODY) as resp:
                    await resp.read()
                    accepted += resp.status == 202
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, accepted


async def _stage_means(url: str) -> dict[str, float]:
    """Mean time per pipeline stage, from the service's own /metrics histograms."""
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        text = await resp.text()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        for suffix, into in (("_sum", sums), ("_count", counts)):
            prefix = f'gatehouse_pipeline_stage_seconds{suffix}{{stage="'
            if line.startswith(prefix):
                stage = line[len(prefix) :].split('"', 1)[0]
                into[stage] = float(line.rsplit(" ", 1)[1])
    return {k: sums[k] / counts[k] * 1e6 for k in sums if counts.get(k)}


async def main(requests: int, concurrency: int, processes: int) -> None:
    seeded = await seed()
    url = f"http://127.0.0.1:{seeded.settings.port}"
    gateway_bin = Path(sys.executable).parent / "gateway"
    proc = await asyncio.create_subprocess_exec(
        str(gateway_bin), "serve", "--role", "api", "--processes", str(processes),
        env={**os.environ, **seeded.env}, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await _wait_healthy(url, proc)
        await _load(url, seeded.token, 200, concurrency)  # warm-up
        started = time.perf_counter()
        latencies, accepted = await _load(url, seeded.token, requests, concurrency)
        elapsed = time.perf_counter() - started
        stages = await _stage_means(url)
    finally:
        proc.terminate()
        await proc.wait()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"bench_api: {requests} POST /v1/disclosures, {concurrency} keep-alive clients, "
        f"SQLite, {processes} API process(es)"
    )
    print(f"  accepted: {accepted}/{requests}")
    print(f"  throughput: {accepted / elapsed:,.0f} accepted disclosures/s")
    print(f"  latency p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    print("  server-side stage means: " + ", ".join(f"{k} {v:.0f} µs" for k, v in stages.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency, args.processes))
