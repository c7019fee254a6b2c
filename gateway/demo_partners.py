"""The demo's simulated partners: webhook ones, one receiving by email and one by SFTP.

All run in the demo's own process on loopback, so `make demo` needs nothing installed: the email
partner is an aiosmtpd server requiring STARTTLS (with its own throwaway CA, which the council
trusts through GATEWAY_SMTP_CA_BUNDLE) that posts its receipts to the council's API; the SFTP
partner is asyncssh's SFTP server, accepting the council's SSH key and leaving receipts in its
outbound directory for the council's poller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.partner_sim import FaultRates, PartnerConfig, PartnerSimulator, ReceiptMode
from gateway.partner_sim.mail_server import PartnerMailServer
from gateway.partner_sim.sftp_dropbox import HOST_KEY_FILE, SftpDropBox
from gateway.partner_sim.tls_identity import TlsIdentity, load_or_create_tls_identity

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Simulated:
    """How one simulated partner behaves and receives."""

    behaviour: str
    receipts: ReceiptMode = ReceiptMode.SYNC
    faults: FaultRates = field(default_factory=FaultRates)
    channel: str = "webhook"


SIMULATED = {
    "medway-homecare": Simulated("reliable"),
    "rochester-care": Simulated("flaky: 503 on half its calls", faults=FaultRates(fail_rate=0.5)),
    "kent-cc": Simulated("answers 202, receipts later", ReceiptMode.ASYNC),
    "kent-police": Simulated("reliable"),
    "probation-kss": Simulated("by email (STARTTLS), receipts to the API", channel="email"),
    "dfe": Simulated("by SFTP, receipts in its outbound folder", channel="sftp"),
}
# Catalog SFTP partners not simulated: their servers do not exist, so nothing to poll.
UNPOLLED = {"dbs": {"receipts_path": None}}


class DemoPartners:
    """Every simulated partner and the server each receives on; `start`, later `stop`."""

    def __init__(self, root: Path, *, council_url: str, council_id: str, council_ssh: str) -> None:
        """`council_ssh`: the council's SSH public key line, which the SFTP partner accepts."""
        self.root, self.council_ssh = root, council_ssh
        self.sims = {
            pid: PartnerSimulator(
                PartnerConfig(
                    partner_id=pid,
                    council_id=council_id,
                    council_jwks=f"{council_url}/.well-known/jwks.json",
                    receipts=how.receipts,
                    faults=how.faults,
                    seed=7,
                    async_receipt_url=f"{council_url}/v1/receipts",
                    receipt_delay_s=0.5,
                )
            )
            for pid, how in SIMULATED.items()
        }
        self.mail: PartnerMailServer | None = None
        self.mail_identity: TlsIdentity | None = None
        self.dropbox: SftpDropBox | None = None

    async def start(self) -> dict[str, dict[str, Any]]:
        """Start every partner; returns each one's channel settings for partners.yaml."""
        channels: dict[str, dict[str, Any]] = dict(UNPOLLED)
        for pid, sim in self.sims.items():
            how = SIMULATED[pid].channel
            if how == "email":
                self.mail_identity = load_or_create_tls_identity(self.root / "partner-mail", pid)
                self.mail = PartnerMailServer(sim, self.mail_identity)
                await self.mail.start(LOOPBACK)
                channels[pid] = {"type": "email", "address": f"{pid}@localhost"}
            elif how == "sftp":
                self.dropbox = SftpDropBox(
                    sim,
                    self.root / "partner-sftp",
                    authorized_key=self.council_ssh,
                    host_key_file=self.root / "partner-sftp-keys" / HOST_KEY_FILE,
                )
                port = await self.dropbox.start(LOOPBACK)
                channels[pid] = {
                    "type": "sftp", "host": LOOPBACK, "port": port, "path": "/inbound",
                    "receipts_path": "/outbound", "host_key": self.dropbox.host_key_line,
                    "manifest": True,
                }  # fmt: skip
            else:
                endpoint = await sim.start() + "/in"
                channels[pid] = {"type": "webhook", "endpoint": endpoint}
        return channels

    def smtp_settings(self) -> dict[str, Any]:
        """The council's GATEWAY_SMTP_* settings to send to the email partner."""
        assert self.mail is not None
        assert self.mail_identity is not None
        return {
            "smtp_host": "localhost",
            "smtp_port": self.mail.port,
            "smtp_ca_bundle": str(self.mail_identity.ca_cert),
            "smtp_from": "disclosures@medway-council.example",
        }

    async def stop(self) -> None:
        """Stop every server and simulator."""
        if self.mail is not None:
            await self.mail.stop()
        if self.dropbox is not None:
            await self.dropbox.stop()
        for sim in self.sims.values():
            await sim.stop()
