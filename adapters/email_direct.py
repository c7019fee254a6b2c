"""Direct delivery to a partner's own mail servers: its MX from DNS, MTA-STS respected.

For a council without a submission server that relays onward over TLS. The partner's domain
(from its address) names its mail servers (MX records, by preference; the domain itself when it
has none, RFC 5321 section 5.1; none at all for a null MX, RFC 7505). Where the domain
publishes an MTA-STS policy in `enforce` mode, only the MX hosts its patterns match are used
(`mta_sts_mx_mismatch` when none is). Whatever the policy, each server must offer STARTTLS and
present a certificate that verifies for its MX host name: never plain text, never an
unverified certificate. Hosts of equal preference are tried in random order. A server that
cannot be reached, times out, or fails the greeting, EHLO or STARTTLS gives way to the next
address and host; once TLS is up, its answers to MAIL FROM, RCPT and DATA stand. When every
server fails, the most telling failure is reported: a TLS failure before a refusal, a refusal
before a timeout, a timeout before an unreachable server.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import ssl
from dataclasses import dataclass

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.resolver

from adapters.mta_sts import MtaStsError, StsPolicies
from gateway.application.channel import DeliveryOutcome

_SHUFFLE = random.SystemRandom()


class DirectDeliveryError(Exception):
    """Not sent, for a reason found before any server took the message."""

    def __init__(self, outcome: DeliveryOutcome, code: str) -> None:
        super().__init__(code)
        self.outcome, self.code = outcome, code


@dataclass(frozen=True, slots=True)
class Delivered:
    """Which mail server took the message, and the domain's MTA-STS mode (`none` if none)."""

    mx: str
    mta_sts: str


class DirectDelivery:
    """Sends one message straight to the recipient domain's mail servers."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext,
        timeout: float,
        port: int = 25,
        nameservers: tuple[str, ...] = (),
        dns_port: int = 53,
        mta_sts_port: int = 443,
    ) -> None:
        self._tls, self._timeout, self._port = tls, timeout, port
        resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:  # IP addresses, checked with the settings at start-up
            resolver.nameservers = list(nameservers)
            resolver.port = dns_port
        resolver.lifetime = timeout
        self._resolver = resolver
        self.policies = StsPolicies(
            txt=self._txt,
            addresses=self._policy_addresses,
            tls=tls,
            port=mta_sts_port,
            timeout=timeout,
        )

    async def send(self, data: bytes, sender: str, recipient: str) -> Delivered:
        """Deliver to the first mail server that takes it over verified TLS."""
        domain = recipient.rpartition("@")[2].lower().rstrip(".")
        hosts = await self.mail_servers(domain)
        policy = await self.policies.policy(domain)
        allowed = [host for host in hosts if policy is None or policy.allows(host)]
        if not allowed:
            raise DirectDeliveryError(DeliveryOutcome.TRANSIENT, "mta_sts_mx_mismatch")
        failure: BaseException | None = None
        for host in allowed:
            try:
                addresses = await self.addresses(host)
            except DirectDeliveryError as exc:
                failure = _telling(failure, exc)
                continue
            for address in addresses:
                try:
                    smtp = await self._session(address, host)
                except (aiosmtplib.SMTPException, ssl.SSLError, OSError, TimeoutError) as exc:
                    failure = _telling(failure, exc)
                    continue
                try:  # the server's answers from MAIL FROM on stand
                    await smtp.sendmail(sender, [recipient], data)
                    with contextlib.suppress(aiosmtplib.SMTPException):  # taken: QUIT is courtesy
                        await smtp.quit()
                finally:
                    smtp.close()
                return Delivered(host, str(policy.mode) if policy else "none")
        if failure is None:  # pragma: no cover - allowed is never empty here
            raise DirectDeliveryError(DeliveryOutcome.TRANSIENT, "partner_unreachable")
        raise failure

    async def mail_servers(self, domain: str) -> list[str]:
        """The domain's MX hosts by preference (RFC 5321 section 5.1)."""
        try:
            answer = await self._resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise DirectDeliveryError(DeliveryOutcome.PERMANENT, "smtp_no_mail_server") from None
        except dns.resolver.NoAnswer:
            return [domain]  # no MX: the domain itself
        except dns.exception.DNSException:
            raise DirectDeliveryError(DeliveryOutcome.TRANSIENT, "smtp_dns_failed") from None
        records = sorted(answer, key=lambda record: int(record.preference))
        hosts: list[str] = []
        for _, same in itertools.groupby(records, key=lambda record: int(record.preference)):
            equals = [record.exchange.to_text(omit_final_dot=True).lower() for record in same]
            _SHUFFLE.shuffle(equals)  # equal preference: spread the load (RFC 5321 section 5.1)
            hosts += equals
        if hosts == ["."] or not hosts:  # null MX (RFC 7505): the domain takes no mail
            raise DirectDeliveryError(DeliveryOutcome.PERMANENT, "smtp_no_mail_server")
        return hosts

    async def addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of a host."""
        found: list[str] = []
        for kind in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(host, kind)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException:
                raise DirectDeliveryError(DeliveryOutcome.TRANSIENT, "smtp_dns_failed") from None
            found += [record.address for record in answer]
        if not found:
            raise DirectDeliveryError(DeliveryOutcome.TRANSIENT, "smtp_dns_failed")
        return found

    async def _txt(self, name: str) -> list[str] | None:
        try:
            answer = await self._resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException:
            raise MtaStsError("mta_sts_dns_failed") from None
        return [b"".join(record.strings).decode("ascii", "replace") for record in answer]

    async def _policy_addresses(self, host: str) -> list[str]:
        try:
            return await self.addresses(host)
        except DirectDeliveryError:
            raise MtaStsError("mta_sts_fetch_failed") from None

    async def _session(self, address: str, host: str) -> aiosmtplib.SMTP:
        """A session with the server at `address` over TLS verified for `host`, ready for
        MAIL FROM; any failure up to here lets the next server try."""
        smtp = aiosmtplib.SMTP(
            hostname=address, port=self._port, timeout=self._timeout, start_tls=False
        )
        try:
            await smtp.connect()
            await smtp.ehlo()
            if not smtp.supports_extension("starttls"):
                raise aiosmtplib.SMTPException("STARTTLS not offered")  # never plain text
            try:
                # Verified for the MX host's name, not the address we reached it at.
                await smtp.starttls(server_hostname=host, tls_context=self._tls)
            except aiosmtplib.SMTPResponseException as exc:  # e.g. 454: no TLS, so no mail
                raise aiosmtplib.SMTPException(f"STARTTLS refused: {exc.code}") from None
        except BaseException:
            smtp.close()
            raise
        return smtp


def _tls_fault(exc: BaseException) -> bool:
    return (
        isinstance(exc, ssl.SSLError)
        or isinstance(exc.__cause__, ssl.SSLError)
        or "STARTTLS" in str(exc)
    )


def _telling(known: BaseException | None, new: BaseException) -> BaseException:
    """The more telling of two failures; the first (more preferred host) when they tie."""
    return new if known is None or _weight(new) > _weight(known) else known


def _weight(exc: BaseException) -> int:
    if _tls_fault(exc):
        return 4
    if isinstance(exc, aiosmtplib.SMTPResponseException):  # a refused greeting or EHLO
        return 3
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return 2
    if isinstance(exc, DirectDeliveryError):  # the host's addresses could not be looked up
        return 0
    return 1
