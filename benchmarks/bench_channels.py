"""Messages/s through the SFTP channel beside its bare library in the same run.

SftpChannel to a real OpenSSH sshd, against a bare asyncssh upload of the same bytes. The email
channel has its own benchmark, benchmarks/bench_email.py.

Usage: .venv/bin/python benchmarks/bench_channels.py [--messages 500] [--size 4000]
Needs /usr/sbin/sshd (Debian's openssh-server); as root it uses a chrooted account, as
tests/sshd.py describes. Prints figures; asserts nothing about speed.

The bare figure writes the same bytes under their final name over one asyncssh SFTP session;
the channel writes a temporary name, fsyncs it (most of the difference: a disk flush on the
partner's server per file) and renames it into place.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _quiet_logs() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


async def channel_rate(
    key: Path, sshd: Any, body: bytes, messages: int, concurrency: int, *, fsync: bool
) -> float:
    """Deliveries/s through SftpChannel.deliver with `concurrency` in flight."""
    from adapters.sftp import SftpChannel, SftpOptions
    from gateway.application.channel import DeliveryOutcome, Envelope

    channel = SftpChannel(
        SftpOptions(
            client_key=key, username=sshd.user, uploads_per_partner=concurrency, fsync=fsync
        )
    )
    target = {
        "host": "127.0.0.1", "port": sshd.port, "path": sshd.remote("inbound"),
        "host_key": sshd.host_key_line,
    }  # fmt: skip
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            envelope = Envelope(str(uuid.uuid4()), "bench-partner", body, "-")
            result = await channel.deliver(envelope, target)
            if result.outcome is not DeliveryOutcome.DISPATCHED:
                raise RuntimeError(f"delivery failed: {result.reason}")

    try:
        await one()  # connect once, outside the timing
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(messages)))
        return messages / (time.perf_counter() - started)
    finally:
        await channel.close()


async def bare_rate(key: Path, sshd: Any, body: bytes, messages: int, concurrency: int) -> float:
    """Uploads/s of the same bytes with asyncssh alone: open, write, close under the final name."""
    import asyncssh

    from adapters.sftp import load_or_create_ssh_key

    trusted = [asyncssh.import_public_key(sshd.host_key_line)]
    async with asyncssh.connect(
        "127.0.0.1", sshd.port, username=sshd.user, client_keys=[load_or_create_ssh_key(key)],
        known_hosts=(trusted, [], []), config=None, agent_path=None,
    ) as conn, conn.start_sftp_client() as sftp:  # fmt: skip
        gate = asyncio.Semaphore(concurrency)
        folder = sshd.remote("inbound")

        async def one() -> None:
            async with gate, sftp.open(f"{folder}/{uuid.uuid4()}.jwe", "wb", encoding=None) as f:
                await f.write(body)

        await one()
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(messages)))
        return messages / (time.perf_counter() - started)


async def run(messages: int, size: int) -> None:
    from adapters.sftp import load_or_create_ssh_key, public_key_line
    from tests.sshd import IS_ROOT, running_sshd

    body = secrets.token_urlsafe(size)[:size].encode()
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "council-ssh"
        with running_sshd(Path(tmp) / "sshd", public_key_line(load_or_create_ssh_key(key))) as s:
            where = "chrooted account" if IS_ROOT else "own account, no chroot"
            print(f"OpenSSH sshd on loopback ({where}); {messages} uploads of {size} bytes")
            print(f"{'client':44} {'in flight':>9} {'per second':>11} {'of bare':>8}")
            for concurrency in (1, 4):
                bare = await bare_rate(key, s, body, messages, concurrency)
                print(f"{'bare asyncssh upload':44} {concurrency:>9} {bare:>11.0f}")
                for fsync, name in ((True, "part, fsync, rename"), (False, "part, rename")):
                    ours = await channel_rate(key, s, body, messages, concurrency, fsync=fsync)
                    shown = f"SftpChannel.deliver ({name})"
                    print(f"{shown:44} {concurrency:>9} {ours:>11.0f} {ours / bare:>8.0%}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--size", type=int, default=4000)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    _quiet_logs()
    asyncio.run(run(args.messages, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
