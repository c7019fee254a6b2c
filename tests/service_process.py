"""Run `gateway serve` (or any gateway command) as a real subprocess, as an operator would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A loopback port nobody is listening on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """One gateway process with its own environment; start, wait until healthy, stop or kill."""

    def __init__(
        self, env: Mapping[str, str], *, role: str = "all", log: Path, processes: int = 1
    ) -> None:
        self.env = {**os.environ, **env}
        self.role, self.processes = role, processes
        self.log = log
        self.port = int(env.get("GATEWAY_PORT", "0"))
        self.ops_port = int(env.get("GATEWAY_OPS_PORT", "0"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """Base URL of the operations listener (health, readiness, metrics)."""
        return f"http://127.0.0.1:{self.ops_port}"

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        """Start and poll /healthz (API roles) until it answers or the deadline passes."""
        handle = self.log.open("ab")
        command = ["serve", "--role", self.role, "--processes", str(self.processes)]
        self.proc = subprocess.Popen(
            [str(BIN / "gateway"), *command], env=self.env, stdout=handle, stderr=subprocess.STDOUT
        )
        handle.close()
        if self.role == "worker":
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:  # noqa: S310
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"gateway not healthy in {timeout}s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """kill -9: no chance to clean up (crash tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a graceful exit; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode or 0)


def seeded_environment(tmp_path: Path, **extra: str) -> tuple[dict[str, str], str]:
    """A database with the example catalog, partner keys and clients, for a `gateway serve`
    subprocess: returns (its GATEWAY_* environment, the case-system client's token)."""
    import asyncio

    from tests.gateway_support import build_harness, isolated_settings

    settings = isolated_settings(tmp_path)

    async def seed() -> str:
        harness = await build_harness(settings)
        await harness.gateway.close()
        return harness.token()

    token = asyncio.run(seed())
    env = {
        "GATEWAY_DATABASE_URL": settings.resolved_database_url,
        "GATEWAY_KEYS_DIR": str(settings.keys_dir),
        "GATEWAY_PORT": str(free_port()),
        "GATEWAY_OPS_PORT": str(free_port()),
        **extra,
    }
    return env, token
