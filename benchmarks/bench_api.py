"""Accepted disclosures per second through POST /v1/disclosures, 64 keep-alive clients.

The service runs as `gateway serve --role api` on the embedded defaults (SQLite, WAL, logging at
info: its JSON lines go to /dev/null) in its own process; this process is the load generator.
Two loads, over the same keep-alive connections:

- closed loop: each client sends its next request as soon as the last one is answered (the
  throughput ceiling; mean latency is then just clients / throughput, by Little's law);
- open loop (`--rate`): requests are due on a fixed schedule at the offered rate, whatever the
  answers do, and latency runs from the moment a request was due, not from when a free
  connection sent it, so a stall shows in every request it delayed (no coordinated omission).

First the same closed loop runs against `bare_api_server.py` (aiohttp and a seal, nothing else),
so the service's throughput is also given as a share of that bare cost measured in the same run
(the machine's speed moves between and within sessions; a share moves far less).

Prints achieved accepted/s, p50/p99 latency and the server's CPU per request; asserts nothing.
Usage: python benchmarks/bench_api.py [--requests 4000] [--concurrency 64] [--rate 1000]
       [--mode both|closed|open] [--no-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_support import free_port, fresh_postgres, reference_loop_ms, seed

from agreements.samples import adult_record

BODY = {
    "agreement": "KM-DOM-006",
    "purpose": "direct_care",
    "subject": {"nhs_number": "9990000026", "local_id": "MC-A-000456"},
    "record": adult_record(),
    "requested_by": {"user": "sw-0099", "role": "care_manager"},
    "reason": "Benchmark submission (synthetic)",
}
# Encoded once: a real caller runs on another machine, so the load generator should not spend
# the cores it shares with the service on serialising the same body again and again.
PAYLOAD = json.dumps(BODY).encode()
JSON_HEADERS = {"Content-Type": "application/json"}
BARE_SERVER = str(Path(__file__).resolve().parent / "bare_api_server.py")


@dataclass
class Run:
    """One load's outcome: latencies (seconds), accepted count, wall time, server CPU."""

    label: str
    latencies: list[float]
    accepted: int
    elapsed: float
    server_cpu: float
    client_cpu: float

    @property
    def throughput(self) -> float:
        """Accepted per second."""
        return self.accepted / self.elapsed

    def report(self) -> str:
        """Two lines: throughput and latency, then server CPU per request."""
        ordered = sorted(self.latencies)
        p99 = ordered[max(int(len(ordered) * 0.99) - 1, 0)]
        per_request = self.server_cpu / max(len(ordered), 1) * 1e6
        client = self.client_cpu / max(len(ordered), 1) * 1e6
        return (
            f"  {self.label}: {self.accepted}/{len(ordered)} accepted, "
            f"{self.accepted / self.elapsed:,.0f} accepted disclosures/s\n"
            f"    latency p50 {statistics.median(ordered) * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms; "
            f"CPU per request: server {per_request:.0f} µs, load generator {client:.0f} µs"
        )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(int(child)) for child in children)


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


async def _load(
    session: aiohttp.ClientSession, url: str, requests: int, concurrency: int, rate: float | None
) -> tuple[list[float], int, float]:
    """Send `requests` POSTs over `concurrency` connections; closed loop unless `rate` is set.

    In the open loop request i is due at start + i / rate; a client that frees up takes the
    next request due (at once if it is overdue) and its latency counts from that due time.
    """
    latencies: list[float] = []
    accepted = 0
    taken = 0
    start = time.perf_counter() + 0.01

    async def client() -> None:
        nonlocal accepted, taken
        while taken < requests:
            due = start + taken / rate if rate else time.perf_counter()
            taken += 1
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            async with session.post(
                url + "/v1/disclosures", data=PAYLOAD, headers=JSON_HEADERS
            ) as resp:
                await resp.read()
                accepted += resp.status == 202
            latencies.append(time.perf_counter() - due)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, accepted, time.perf_counter() - start


async def _measure(
    url: str, token: str, pid: int, args: argparse.Namespace, rate: float | None
) -> Run:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        await _load(session, url, 200, args.concurrency, None)  # warm-up, opens the connections
        cpu, own = _cpu_seconds(pid), time.process_time()
        latencies, accepted, elapsed = await _load(
            session, url, args.requests, args.concurrency, rate
        )
        cpu, own = _cpu_seconds(pid) - cpu, time.process_time() - own
    label = f"open loop at {rate:,.0f}/s offered" if rate else "closed loop"
    return Run(label, latencies, accepted, elapsed, cpu, own)


async def _stage_means(url: str) -> dict[str, float]:
    """Mean time per pipeline stage, from the /metrics histograms of the operations listener."""
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


async def _bare_baseline(args: argparse.Namespace) -> Run:
    """The same closed loop against bare_api_server.py: aiohttp and a seal, nothing else."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, BARE_SERVER, str(port),
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        await _wait_healthy(url, proc)
        run = await _measure(url, "", proc.pid, args, None)
    finally:
        proc.terminate()
        await proc.wait()
    run.label = "bare aiohttp + seal, closed loop"
    return run


async def main(args: argparse.Namespace) -> None:
    print(f"bench_api: reference loop {reference_loop_ms():.0f} ms (machine speed now)", flush=True)
    bare = None
    if args.baseline:
        bare = await _bare_baseline(args)
        print(bare.report(), flush=True)
    drop = None
    if args.postgres:
        database_url, drop = await fresh_postgres()
        seeded = await seed(database_url=database_url)
    else:
        seeded = await seed()
    url = f"http://127.0.0.1:{seeded.settings.port}"
    gateway_bin = Path(sys.executable).parent / "gateway"
    proc = await asyncio.create_subprocess_exec(
        str(gateway_bin), "serve", "--role", "api", "--processes", str(args.processes),
        env={**os.environ, **seeded.env}, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    print(
        f"bench_api: {args.requests} POST /v1/disclosures per load, {args.concurrency} keep-alive "
        f"clients, {'PostgreSQL' if args.postgres else 'SQLite'}, {args.processes} API "
        f"process(es), server pid {proc.pid}",
        flush=True,
    )
    runs: list[Run] = []
    try:
        await _wait_healthy(url, proc)
        if args.mode in ("both", "closed"):
            runs.append(await _measure(url, seeded.token, proc.pid, args, None))
            print(runs[-1].report(), flush=True)
            if bare is not None:
                share = runs[-1].throughput / bare.throughput * 100
                print(f"    = {share:.0f}% of the bare baseline's throughput", flush=True)
        if args.mode in ("both", "open"):
            runs.append(await _measure(url, seeded.token, proc.pid, args, args.rate))
            print(runs[-1].report(), flush=True)
        stages = await _stage_means(f"http://127.0.0.1:{seeded.settings.ops_port}")
    finally:
        proc.terminate()
        await proc.wait()
        if drop is not None:
            await drop()
    print("  server-side stage means: " + ", ".join(f"{k} {v:.0f} µs" for k, v in stages.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop offered rate, /s")
    parser.add_argument("--mode", choices=("both", "closed", "open"), default="both")
    parser.add_argument("--postgres", action="store_true", help="the store on PostgreSQL")
    parser.add_argument(
        "--no-baseline", dest="baseline", action="store_false",
        help="skip the bare aiohttp + seal baseline (benchmarks/bare_api_server.py)",
    )  # fmt: skip
    asyncio.run(main(parser.parse_args()))
