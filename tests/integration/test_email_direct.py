"""Direct delivery to the partner's own mail servers: MX from DNS, MTA-STS respected, TLS
verified for the MX host name, against a DNS server, a policy host over HTTPS and aiosmtpd with
STARTTLS, all on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from dnslib import MX, TXT, A
from dnslib.server import DNSServer
from joserfc.jwk import ECKey

from adapters.email import EmailChannel, SmtpOptions
from gateway.application.channel import DeliveryOutcome, DeliveryResult
from tests.integration.test_email_disclosure import RawMta, signed_disclosure
from tests.mesh_sandbox import free_port
from tests.partner_mail_domain import DomainCa, PolicyHost, Zone, start_dns, stop_dns

DOMAIN = "partner.example"
ADDRESS = f"referrals@{DOMAIN}"
ENFORCE = "version: STSv1\r\nmode: enforce\r\nmx: *.partner.example\r\nmax_age: 86400\r\n"


@dataclass
class PartnerDomain:
    """The partner's DNS, policy host and MTA, and the council's channel pointed at them."""

    zone: Zone
    policy: PolicyHost
    mta: RawMta
    ca: DomainCa
    dns_port: int
    mta_port: int
    policy_port: int
    key: ECKey

    def channel(self) -> EmailChannel:
        return EmailChannel(
            SmtpOptions(
                host="",
                from_address="disclosures@medway-council.example",
                council="medway-council",
                ca_bundle=str(self.ca.bundle),
                timeout=5.0,
                direct=True,
                direct_port=self.mta_port,
                dns_servers=("127.0.0.1",),
                dns_port=self.dns_port,
                mta_sts_port=self.policy_port,
            )
        )

    def publish(self, policy: str, policy_id: str = "20261204") -> None:
        self.policy.policy = policy
        self.zone.records[(f"_mta-sts.{DOMAIN}", "TXT")] = [TXT(f"v=STSv1; id={policy_id};")]

    async def send(self, channel: EmailChannel | None = None) -> DeliveryResult:
        return await (channel or self.channel()).deliver(
            signed_disclosure(self.key), {"address": ADDRESS}
        )


def mta_controller(handler: RawMta, port: int, context: ssl.SSLContext | None) -> Controller:
    return Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=context is not None,
    )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[PartnerDomain]:
    ca = DomainCa(tmp_path / "ca")
    zone = Zone()
    zone.records[(DOMAIN, "MX")] = [MX("mx1.partner.example", 10)]
    zone.records[("mx1.partner.example", "A")] = [A("127.0.0.1")]
    zone.records[(f"mta-sts.{DOMAIN}", "A")] = [A("127.0.0.1")]
    dns: DNSServer
    dns, dns_port = start_dns(zone)
    policy = PolicyHost()
    runner, policy_port = await policy.start(ca.server_context(f"mta-sts.{DOMAIN}"))
    mta, mta_port = RawMta(), free_port()
    controller = mta_controller(mta, mta_port, ca.server_context("mx1.partner.example"))
    controller.start()
    try:
        yield PartnerDomain(
            zone, policy, mta, ca, dns_port, mta_port, policy_port, ECKey.generate_key("P-256")
        )
    finally:
        controller.stop()
        await runner.cleanup()
        stop_dns(dns)


async def test_without_mta_sts_mail_goes_to_the_mx_over_verified_tls(world: PartnerDomain) -> None:
    result = await world.send()
    assert result.outcome is DeliveryOutcome.DISPATCHED, result
    assert (result.detail["mx"], result.detail["mta_sts"]) == ("mx1.partner.example", "none")
    assert len(world.mta.raw) == 1
    assert world.policy.fetches == 0  # no TXT record: no policy to fetch


async def test_an_enforced_policy_that_names_the_mx_lets_mail_go_and_is_cached(
    world: PartnerDomain,
) -> None:
    world.publish(ENFORCE)
    channel = world.channel()
    for _ in range(2):
        result = await world.send(channel)
        assert result.outcome is DeliveryOutcome.DISPATCHED, result
        assert result.detail["mta_sts"] == "enforce"
    assert len(world.mta.raw) == 2
    assert world.policy.fetches == 1  # cached for max_age while the id stays the same

    # A new id fetches the policy again, and a policy naming other servers stops the mail.
    world.publish(ENFORCE.replace("*.partner.example", "mail.elsewhere.example"), "20261205")
    result = await world.send(channel)
    assert (result.outcome, result.reason) == (DeliveryOutcome.TRANSIENT, "mta_sts_mx_mismatch")
    assert world.policy.fetches == 2
    assert len(world.mta.raw) == 2


async def test_a_cached_policy_holds_while_the_policy_host_is_unreachable(
    world: PartnerDomain,
) -> None:
    world.publish(ENFORCE.replace("*.partner.example", "mail.elsewhere.example"))
    channel = world.channel()
    assert (await world.send(channel)).reason == "mta_sts_mx_mismatch"
    # An attacker who strips the TXT record and blocks the policy host gains nothing.
    del world.zone.records[(f"_mta-sts.{DOMAIN}", "TXT")]
    world.zone.records[(f"mta-sts.{DOMAIN}", "A")] = [A("127.0.0.9")]
    assert (await world.send(channel)).reason == "mta_sts_mx_mismatch"
    assert world.mta.raw == []


async def test_testing_mode_only_reports(world: PartnerDomain) -> None:
    world.publish(ENFORCE.replace("enforce", "testing").replace("*.partner", "mx.other"))
    result = await world.send()
    assert result.outcome is DeliveryOutcome.DISPATCHED, result
    assert result.detail["mta_sts"] == "testing"


async def test_an_mx_whose_certificate_is_for_another_name_gets_nothing(
    world: PartnerDomain,
) -> None:
    world.zone.records[(DOMAIN, "MX")] = [MX("mx2.partner.example", 10)]
    world.zone.records[("mx2.partner.example", "A")] = [A("127.0.0.1")]  # cert is for mx1
    result = await world.send()
    assert (result.outcome, result.reason) == (DeliveryOutcome.TRANSIENT, "smtp_tls_failed")
    assert world.mta.raw == []


async def test_an_unreachable_mx_gives_way_to_the_next(world: PartnerDomain) -> None:
    world.zone.records[(DOMAIN, "MX")] = [
        MX("mx1.partner.example", 20),
        MX("mx0.partner.example", 10),  # preferred, but nothing listens there
    ]
    world.zone.records[("mx0.partner.example", "A")] = [A("127.0.0.2")]
    result = await world.send()
    assert result.outcome is DeliveryOutcome.DISPATCHED, result
    assert result.detail["mx"] == "mx1.partner.example"


async def test_a_domain_that_does_not_exist_or_takes_no_mail_is_permanent(
    world: PartnerDomain,
) -> None:
    result = await world.channel().deliver(
        signed_disclosure(world.key), {"address": "someone@nowhere.example"}
    )
    assert (result.outcome, result.reason) == (DeliveryOutcome.PERMANENT, "smtp_no_mail_server")
    world.zone.records[(DOMAIN, "MX")] = [MX(".", 0)]  # null MX (RFC 7505)
    result = await world.send()
    assert (result.outcome, result.reason) == (DeliveryOutcome.PERMANENT, "smtp_no_mail_server")
    assert world.mta.raw == []


async def test_an_mx_without_starttls_gets_nothing(world: PartnerDomain, tmp_path: Path) -> None:
    plain, port = RawMta(), free_port()
    controller = mta_controller(plain, port, None)
    controller.start()
    try:
        channel = world.channel()
        channel.options = dataclasses.replace(channel.options, direct_port=port)
        result = await world.send(channel)
    finally:
        controller.stop()
    assert (result.outcome, result.reason) == (DeliveryOutcome.TRANSIENT, "smtp_tls_unavailable")
    assert plain.raw == []


async def test_a_policy_host_without_a_valid_certificate_is_no_policy(world: PartnerDomain) -> None:
    # The policy host presents a certificate for another name: the policy is not believed.
    world.publish(ENFORCE.replace("*.partner.example", "mail.elsewhere.example"))
    impostor = PolicyHost(policy=world.policy.policy)
    runner, port = await impostor.start(world.ca.server_context("www.partner.example"))
    try:
        channel = world.channel()
        channel.options = dataclasses.replace(channel.options, mta_sts_port=port)
        result = await world.send(channel)
    finally:
        await runner.cleanup()
    assert result.outcome is DeliveryOutcome.DISPATCHED, result  # TLS is still verified
    assert result.detail["mta_sts"] == "none"


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _silent_after_greeting(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"220 mx0.partner.example ESMTP\r\n")
    while await reader.read(4096):  # hears EHLO, never answers
        pass


async def _greeting_refused(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"554 5.3.2 not accepting mail\r\n")
    while await reader.read(4096):
        writer.write(b"503 5.5.1 bad sequence\r\n")


def _ehlo_then(starttls_answer: bytes | None) -> Script:
    """EHLO offers STARTTLS; STARTTLS gets `starttls_answer` (None: no answer at all)."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx0.partner.example ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:8].upper()
            if verb.startswith((b"EHLO", b"HELO")):
                writer.write(b"250-mx0.partner.example\r\n250 STARTTLS\r\n")
            elif verb.startswith(b"STARTTLS"):
                if starttls_answer is not None:
                    writer.write(starttls_answer)
                while await reader.read(4096):  # whatever comes next (a TLS hello) goes unheard
                    pass
                return
            else:
                writer.write(b"502 5.5.2 not here\r\n")

    return script


async def _ehlo_refused(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 mx0.partner.example ESMTP\r\n")
    while await reader.readline():
        writer.write(b"421 4.3.2 shutting down\r\n")


@pytest.mark.parametrize(
    "script",
    [
        _silent_after_greeting,
        _greeting_refused,
        _ehlo_refused,
        _ehlo_then(b"454 4.7.0 TLS not available due to local problem\r\n"),
        _ehlo_then(b"220 2.0.0 Ready to start TLS\r\n"),  # then never does the handshake
        _ehlo_then(None),  # hangs on STARTTLS
    ],
    ids=["silent", "greeting-554", "ehlo-421", "starttls-454", "tls-hangs", "starttls-hangs"],
)
async def test_a_preferred_mx_that_fails_before_mail_from_gives_way_to_the_next(
    world: PartnerDomain, script: Script
) -> None:
    world.zone.records[(DOMAIN, "MX")] = [
        MX("mx1.partner.example", 20),
        MX("mx0.partner.example", 10),  # preferred, and broken
    ]
    world.zone.records[("mx0.partner.example", "A")] = [A("127.0.0.2")]
    connections: list[bool] = []

    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(True)
        try:
            await script(reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    # The broken MX on the same port as the good one, at the address mx0 resolves to.
    server = await asyncio.start_server(broken, "127.0.0.2", world.mta_port)
    try:
        channel = world.channel()
        channel.options = dataclasses.replace(channel.options, timeout=1.0)
        result = await world.send(channel)
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)
    assert connections, "the preferred MX was never tried"
    assert result.outcome is DeliveryOutcome.DISPATCHED, result
    assert result.detail["mx"] == "mx1.partner.example"
    assert len(world.mta.raw) == 1


async def test_a_tls_failure_is_not_masked_by_a_later_unreachable_mx(world: PartnerDomain) -> None:
    world.zone.records[(DOMAIN, "MX")] = [
        MX("mx2.partner.example", 10),  # reaches the MTA, whose certificate is for mx1
        MX("mx0.partner.example", 20),  # nothing listens there
    ]
    world.zone.records[("mx2.partner.example", "A")] = [A("127.0.0.1")]
    world.zone.records[("mx0.partner.example", "A")] = [A("127.0.0.2")]
    result = await world.send()
    assert (result.outcome, result.reason) == (DeliveryOutcome.TRANSIENT, "smtp_tls_failed")
    assert world.mta.raw == []


async def test_a_refused_starttls_is_reported_as_tls_unavailable(world: PartnerDomain) -> None:
    world.zone.records[(DOMAIN, "MX")] = [MX("mx0.partner.example", 10)]
    world.zone.records[("mx0.partner.example", "A")] = [A("127.0.0.2")]
    script = _ehlo_then(b"454 4.7.0 TLS not available\r\n")

    async def refusing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(refusing, "127.0.0.2", world.mta_port)
    try:
        result = await world.send()
    finally:
        server.close()
    assert (result.outcome, result.reason) == (DeliveryOutcome.TRANSIENT, "smtp_tls_unavailable")


async def test_mx_hosts_of_equal_preference_come_in_random_order(world: PartnerDomain) -> None:
    world.zone.records[(DOMAIN, "MX")] = [
        MX("mx9.partner.example", 30),
        MX("mxa.partner.example", 10),
        MX("mxb.partner.example", 10),
    ]
    direct = world.channel().direct()
    seen = {tuple(await direct.mail_servers(DOMAIN)) for _ in range(40)}
    assert seen == {
        ("mxa.partner.example", "mxb.partner.example", "mx9.partner.example"),
        ("mxb.partner.example", "mxa.partner.example", "mx9.partner.example"),
    }
