"""Instructions per accepted POST /v1/disclosures, counted by valgrind: a figure that holds still.

The wall-clock benchmarks (`bench_api.py`) run on a shared virtual machine whose speed moves by
up to 2x within a session, so a 10% saving cannot be seen in them. Callgrind counts executed
instructions instead, the same for the same code and input whatever else the machine is doing.
This runs the API role in-process (SQLite) with an in-process client sending `--requests`
submissions, 16 at a time, and prints the process's instruction total. Run it twice under
callgrind with two request counts; the difference divided by the difference in requests is the
cost of one request: API, submit use case, group commit, audit sealer, and the load generator's
share.
Without `--requests` it does both runs (side by side, one per core; about 3 minutes) and prints
the figure; timers (group commit, audit sealer) make it repeat to about 1%, not exactly.

    .venv/bin/python benchmarks/count_api.py          # or: make count-api
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import JSON_HEADERS, PAYLOAD
from setup_support import seed

from gateway.server import Role, serve


async def main(args: argparse.Namespace) -> None:
    # Logging as bench_api runs it; no policy re-reads, which come per second, not per request
    # (under callgrind a run lasts minutes, and the re-reads would swamp the difference).
    seeded = await seed(log_level="warning", policy_refresh_seconds=3600)
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        serve(seeded.settings, Role.API, stop=stop, started=ready.set_result)
    )
    url = await ready
    headers = {"Authorization": f"Bearer {seeded.token}", **JSON_HEADERS}
    accepted = 0
    remaining = args.requests

    async with aiohttp.ClientSession(headers=headers) as session:

        async def client() -> None:
            nonlocal accepted, remaining
            while remaining > 0:
                remaining -= 1
                async with session.post(url + "/v1/disclosures", data=PAYLOAD) as resp:
                    await resp.read()
                    accepted += resp.status == 202

        await asyncio.gather(*(client() for _ in range(16)))
    stop.set()
    await server
    print(f"count_api: {accepted}/{args.requests} accepted", flush=True)


async def _instructions(requests: int) -> int:
    """Instructions executed by one driver run of `requests` submissions, under callgrind."""
    proc = await asyncio.create_subprocess_exec(
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, __file__, "--requests", str(requests),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out = (await proc.communicate())[0].decode()
    found = re.search(r"Collected : (\d+)", out)
    if proc.returncode != 0 or found is None or f"{requests}/{requests} accepted" not in out:
        raise SystemExit(f"count_api: the run of {requests} failed:\n{out[-2000:]}")
    return int(found.group(1))


async def compare(low: int, high: int) -> None:
    """Both runs at once; the difference is the cost of `high - low` requests."""
    if shutil.which("valgrind") is None:
        raise SystemExit("count_api: valgrind is not installed")
    small, large = await asyncio.gather(_instructions(low), _instructions(high))
    per_request = (large - small) / (high - low)
    print(
        f"count_api: {per_request / 1e6:.2f} M instructions per accepted POST /v1/disclosures "
        f"(API process and in-process client; {low} and {high} requests: "
        f"{small / 1e9:.2f} and {large / 1e9:.2f} G)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, help="one measured run (else: both, compared)")
    args = parser.parse_args()
    if args.requests is None:
        asyncio.run(compare(100, 500))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main(args))
