"""Messages/s through the email channel beside a bare aiosmtplib send of the same bytes.

EmailChannel.deliver (render the fields, attach the signed JWT, and for an S/MIME partner sign
and envelope it, then send) to aiosmtpd with STARTTLS on loopback, against aiosmtplib sending
bytes built once beforehand (STARTTLS, verified), in the same run, for the TLS-only baseline
and for S/MIME (council RSA-2048 signature, RSA-2048 partner certificate, AES-256-CBC). The
disclosures are signed beforehand, as at submission.

Usage: .venv/bin/python benchmarks/bench_email.py [--messages 300]
Each figure is the best of three alternated rounds. Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = "bookings@hoo-short-breaks.example"
SENDER = "disclosures@medway-council.example"
ROUNDS = 3


def _quiet_logs() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


class _Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def signed_envelope(key: Any) -> Any:
    """A council-signed JWT of a full sample record, as the worker hands it over."""
    from agreements.samples import child_record
    from gateway.application.channel import SIGNED_JWT, Envelope
    from gateway.jose import b64url_digest
    from gateway.sealing import EnvelopeAgreement, EnvelopeClaims, sign_jwt
    from gateway.signer import FileSigner

    disclosure_id = str(uuid.uuid4())
    claims = EnvelopeClaims(
        iss="medway-council", aud="hoo-short-breaks", jti=disclosure_id, iat=datetime.now(UTC),
        agreement=EnvelopeAgreement("KM-RSP-008", 1), purpose="direct_care",
        subject={"local_id": "MC-C-000123"}, data=child_record(), retain_until=date(2030, 1, 1),
        onward_sharing="prohibited",
    )  # fmt: skip
    token = sign_jwt(claims.to_jwt(), FileSigner("council-1", key)).encode("ascii")
    return Envelope(
        disclosure_id, "hoo-short-breaks", token, b64url_digest(token), content_type=SIGNED_JWT
    )


async def rate(one: Callable[[], Awaitable[None]], messages: int) -> float:
    """Messages/s of `messages` calls run together (each holds its own concurrency gate)."""
    await one()  # warm: connections, caches
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(messages)))
    return messages / (time.perf_counter() - started)


@dataclass(frozen=True)
class Rig:
    """The loopback server's port and CA, the council's signers, the partner's certificate."""

    port: int
    ca_bundle: str
    smime: Any
    partner_pem: str
    council_key: Any


async def measure(rig: Rig, form: str, concurrency: int, messages: int) -> tuple[int, float, float]:
    """(message bytes, bare sends/s, EmailChannel deliveries/s) for one form and concurrency."""
    import aiosmtplib

    from adapters.email import EmailChannel, SmtpOptions
    from adapters.email_message import build_message
    from gateway.application.channel import DeliveryOutcome

    target: dict[str, Any] = {"address": ADDRESS}
    if form == "smime":
        target.update(smime_certificate=rig.partner_pem, smime_fingerprint="bench")
    options = SmtpOptions(
        host="localhost", port=rig.port, council="medway-council", from_address=SENDER,
        ca_bundle=rig.ca_bundle, sends_at_once=concurrency, smime=rig.smime,
    )  # fmt: skip
    channel = EmailChannel(options)
    signer = (rig.smime, rig.partner_pem) if form == "smime" else None
    data = build_message(
        signed_envelope(rig.council_key), ADDRESS, options.sender, smime=signer
    ).data
    gate = asyncio.Semaphore(concurrency)
    # Signed beforehand: the JWT is signed at submission, not by the channel.
    ready = [signed_envelope(rig.council_key) for _ in range(ROUNDS * (messages + 1))]

    async def bare() -> None:
        async with gate:
            await aiosmtplib.send(
                data, sender=SENDER, recipients=[ADDRESS], hostname="localhost", port=rig.port,
                start_tls=True, tls_context=channel.tls_context(),
            )  # fmt: skip

    async def ours() -> None:
        result = await channel.deliver(ready.pop(), target)
        if result.outcome is not DeliveryOutcome.DISPATCHED:
            raise RuntimeError(f"delivery failed: {result.reason}")

    # Alternated, best of ROUNDS each: the loopback server shares the machine.
    bare_rate = our_rate = 0.0
    for _ in range(ROUNDS):
        bare_rate = max(bare_rate, await rate(bare, messages))
        our_rate = max(our_rate, await rate(ours, messages))
    return len(data), bare_rate, our_rate


async def run(messages: int) -> None:
    from aiosmtpd.controller import Controller
    from joserfc.jwk import ECKey

    from gateway.council_smime import install_council_smime
    from tests.mesh_sandbox import free_port, make_test_pki
    from tests.smime_pki import make_partner_cert

    with tempfile.TemporaryDirectory() as tmp:
        pki = make_test_pki(Path(tmp) / "pki")
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(pki.server_cert, pki.server_key)
        port = free_port()
        controller = Controller(
            _Sink(), hostname="127.0.0.1", port=port, tls_context=server_tls, require_starttls=True
        )
        controller.start()
        # RSA-2048, the usual size of a CA-issued S/MIME certificate.
        council = make_partner_cert(mailbox=SENDER)
        smime = install_council_smime(
            council.cert_pem, council.key_pem, Path(tmp) / "smime-cert.pem",
            Path(tmp) / "smime-key.pem", now=datetime.now(UTC),
        )  # fmt: skip
        rig = Rig(
            port, str(pki.ca_cert), smime, make_partner_cert().cert_pem.decode(),
            ECKey.generate_key("P-256"),
        )  # fmt: skip
        size = len(signed_envelope(rig.council_key).body)
        print(f"aiosmtpd with STARTTLS on loopback; {messages} messages; signed JWT {size} bytes")
        print(f"{'client':44} {'in flight':>9} {'bytes':>7} {'per second':>11} {'of bare':>8}")
        try:
            for form in ("tls", "smime"):
                for concurrency in (1, 4):
                    length, bare, ours = await measure(rig, form, concurrency, messages)
                    label = f"bare aiosmtplib send ({form} bytes)"
                    print(f"{label:44} {concurrency:>9} {length:>7} {bare:>11.0f}")
                    label = f"EmailChannel.deliver ({form})"
                    print(
                        f"{label:44} {concurrency:>9} {length:>7} {ours:>11.0f} {ours / bare:>8.0%}"
                    )
        finally:
            controller.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    _quiet_logs()
    asyncio.run(run(args.messages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
