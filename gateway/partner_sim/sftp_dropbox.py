"""The partner simulator as an SFTP partner: an in-process SFTP server and its pick-up job.

asyncssh serves SFTP from a root directory (`/inbound` and `/outbound` inside it) to the
council's key only, with a host key of its own that the council pins. The pick-up job plays
the partner's side: every `poll_s` it takes each complete `<id>.jwe` from `inbound/` (dot-named
part files are not finished yet), opens it like a webhook body, moves it to `inbound/processed/`
and, with sync receipts, writes `<id>.receipt.jwt` into `outbound/` (temporary name, then
rename) for the gateway's receipt poller; async receipts go to the gateway's /v1/receipts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from pathlib import Path

import asyncssh
import structlog

from adapters.sftp import load_or_create_ssh_key, public_key_line
from gateway.partner_sim.council_jwks import CouncilJwksError
from gateway.partner_sim.faults import Fault
from gateway.partner_sim.simulator import PartnerSimulator

log = structlog.get_logger("gateway.partner_sim")

HOST_KEY_FILE = "sftp-host.ed25519"
ENVELOPE_SUFFIX = ".jwe"


class SftpDropBox:
    """Serve SFTP for one simulated partner and pick up what the council uploads."""

    def __init__(
        self,
        simulator: PartnerSimulator,
        root: Path,
        *,
        authorized_key: str,
        host_key_file: Path,
        poll_s: float = 0.2,
    ) -> None:
        self.simulator, self.root, self.poll_s = simulator, root, poll_s
        self.inbound, self.outbound = root / "inbound", root / "outbound"
        self._authorized = asyncssh.import_authorized_keys(authorized_key)
        self._host_key = load_or_create_ssh_key(host_key_file)
        self._server: asyncssh.SSHAcceptor | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.port: int | None = None

    @property
    def host_key_line(self) -> str:
        """The line the council pins as this partner's `host_key`."""
        return public_key_line(self._host_key)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen (0: any free port) and start picking up; returns the port."""
        for folder in (self.inbound, self.outbound):
            folder.mkdir(parents=True, exist_ok=True)
        self._server = await asyncssh.listen(
            host,
            port,
            server_host_keys=[self._host_key],
            authorized_client_keys=self._authorized,
            sftp_factory=functools.partial(asyncssh.SFTPServer, chroot=os.fsencode(self.root)),
            allow_scp=False,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._sweeper = asyncio.create_task(self._run(), name="partner-sim-sftp")
        log.info("partner_sim_sftp_started", partner=self.simulator.config.partner_id, port=port)
        return self.port

    async def stop(self) -> None:
        """Stop picking up and serving."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except (OSError, CouncilJwksError) as exc:  # try again next time
                log.warning("partner_sim_sftp_sweep_failed", error_type=type(exc).__name__)
            await asyncio.sleep(self.poll_s)

    async def sweep(self) -> int:
        """Pick up every complete envelope now; returns how many were taken in."""
        taken = 0
        for path in sorted(self.inbound.glob(f"*{ENVELOPE_SUFFIX}")):
            if path.name.startswith("."):
                continue
            message_id = path.name.removesuffix(ENVELOPE_SUFFIX)
            decision = self.simulator.faults.next()
            if decision.fault is Fault.FAIL:
                continue  # "down": left where it is for a later sweep
            body = path.read_bytes()
            result = await self.simulator.take_in(body, message_id, decision.fault)
            processed = self.inbound / "processed"
            processed.mkdir(exist_ok=True)
            path.replace(processed / path.name)
            taken += 1
            if result is not None and result.receipt is not None:
                self._write_receipt(result.entry.message_id, result.receipt.token)
        return taken

    def _write_receipt(self, message_id: str, token: bytes) -> None:
        part = self.outbound / f".{message_id}.receipt.jwt.part"
        part.write_bytes(token)
        part.replace(self.outbound / f"{message_id}.receipt.jwt")
