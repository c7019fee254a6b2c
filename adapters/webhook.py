"""The webhook channel: HTTPS POST of the sealed envelope to the partner's endpoint.

One pooled aiohttp session per address policy; per-partner TLS (CA bundle, client certificate
for mutual TLS) with one cached SSLContext per partner configuration; every partner fault comes
back as a `DeliveryResult` with a stable reason code, never as an exception. The receipt in a
synchronous `200 application/jose` answer is returned as bytes: verifying it is the gateway's job.

Where an envelope may go: an https endpoint must resolve to public (global unicast) addresses
unless the partner's catalog entry says `allow_private_address: true`; plain http only to
loopback under GATEWAY_ALLOW_INSECURE_LOOPBACK. The check is in the session's resolver, so the
addresses checked are the addresses connected to: a name cannot resolve once for the check and
again, elsewhere, for the connection.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from adapters.retry_after import parse_retry_after
from gateway.application.channel import DeliveryOutcome, DeliveryResult, Envelope

JOSE = "application/jose"
# From this size a body goes in slices of a view: whole, aiohttp (on Python before 3.12.9)
# joins it with the headers into one more copy.
SLICED_BODY = 1024 * 1024
SLICE = 256 * 1024


def _now() -> datetime:
    return datetime.now(UTC)


def _result(outcome: DeliveryOutcome, reason: str | None = None, **detail: Any) -> DeliveryResult:
    return DeliveryResult(outcome=outcome, reason=reason, detail=detail)


def outcome_for_status(
    status: int, receipt: bytes | None, retry_after: float | None
) -> DeliveryResult:
    """Map a partner's HTTP answer to an outcome (pure, so every status is easy to test)."""
    if 200 <= status < 300:
        if status == 200 and receipt:
            return DeliveryResult(
                DeliveryOutcome.RECEIPTED, receipt=receipt, detail={"status": status}
            )
        return _result(DeliveryOutcome.DISPATCHED, None, status=status)
    if status == 408:
        return _result(DeliveryOutcome.TRANSIENT, "partner_timeout", status=status)
    if status == 429:
        return DeliveryResult(
            DeliveryOutcome.TRANSIENT,
            "partner_throttled",
            detail={"status": status},
            retry_after=retry_after,
        )
    if status >= 500:
        return DeliveryResult(
            DeliveryOutcome.TRANSIENT,
            "partner_server_error",
            detail={"status": status},
            retry_after=retry_after if status == 503 else None,
        )
    # 4xx, and 1xx/3xx: redirects are not followed, an envelope goes only where it was addressed.
    return _result(DeliveryOutcome.PERMANENT, "partner_refused", status=status)


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: the only hosts plain http may ever reach.

    `*.localhost` is not: nothing makes every resolver keep such names on this machine.
    """
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AddressPolicy(enum.Enum):
    """Which resolved addresses a delivery may connect to."""

    PUBLIC = "public"  # https: global unicast addresses only
    ANY = "any"  # https to a partner whose catalog entry allows private addresses
    LOOPBACK = "loopback"  # plain http under GATEWAY_ALLOW_INSECURE_LOOPBACK


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_allowed(address: IPAddress, policy: AddressPolicy) -> bool:
    """May a delivery under `policy` connect to `address`?"""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    if policy is AddressPolicy.LOOPBACK:
        return address.is_loopback
    if policy is AddressPolicy.ANY:
        return not (address.is_unspecified or address.is_multicast)
    return address.is_global and not address.is_multicast


class AddressRefusedError(OSError):
    """Every address of the endpoint is one its policy does not allow."""


class CheckedResolver(AbstractResolver):
    """Resolve once and keep only the addresses the policy allows: aiohttp connects to exactly
    what this returns, so a name cannot be re-resolved to somewhere else after the check."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of `host`; AddressRefusedError when there are none."""
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if address_allowed(_ip(r["host"]), self.policy)]
        if not allowed:
            raise AddressRefusedError(
                f"no address of the endpoint is allowed ({self.policy.value})"
            )
        return allowed

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()


def _ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id


def _literal(host: str) -> IPAddress | None:
    try:
        return _ip(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """One partner's webhook settings, read from the agreement's transport section."""

    endpoint: URL
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    connect_timeout: float | None = None
    total_timeout: float | None = None
    allow_private_address: bool = False

    @classmethod
    def from_mapping(cls, target: Mapping[str, Any]) -> WebhookTarget | str:
        """Read the settings; a problem comes back as the name of the faulty setting."""
        endpoint = target.get("endpoint") or target.get("url")
        if not isinstance(endpoint, str) or not endpoint:
            return "endpoint"
        try:
            url = URL(endpoint)
        except ValueError:
            return "endpoint"
        if not url.host or url.scheme not in {"http", "https"}:
            return "endpoint"
        values: dict[str, Any] = {}
        for name in ("ca_bundle", "client_cert", "client_key"):
            value = target.get(name)
            if value is not None and not isinstance(value, str | os.PathLike):
                return name
            values[name] = None if value is None else os.fspath(value)
        for name in ("connect_timeout", "total_timeout"):
            value = target.get(name)
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                return name
            values[name] = None if value is None else float(value)
        if values["client_key"] and not values["client_cert"]:
            return "client_cert"
        allow_private = target.get("allow_private_address", False)
        if not isinstance(allow_private, bool):
            return "allow_private_address"
        return cls(endpoint=url, allow_private_address=allow_private, **values)

    @property
    def address_policy(self) -> AddressPolicy:
        """Where this endpoint's addresses may be (http is loopback-only, when allowed at all)."""
        if self.endpoint.scheme != "https":
            return AddressPolicy.LOOPBACK
        return AddressPolicy.ANY if self.allow_private_address else AddressPolicy.PUBLIC

    @property
    def tls_key(self) -> tuple[str | None, str | None, str | None]:
        """What makes two partners' TLS settings the same (and so share one SSLContext)."""
        return (self.ca_bundle, self.client_cert, self.client_key)


class WebhookChannel:
    """Deliver envelopes by HTTPS POST; implements `adapters.channel.Channel`."""

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        total_timeout: float = 30.0,
        allow_insecure_loopback: bool = False,
        max_receipt_bytes: int = 64 * 1024,
        user_agent: str = "Gatehouse webhook channel",
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._total_timeout = total_timeout
        self._allow_insecure_loopback = allow_insecure_loopback
        self._max_receipt_bytes = max_receipt_bytes
        self._user_agent = user_agent
        self._clock = clock
        self._sessions: dict[AddressPolicy, aiohttp.ClientSession] = {}
        self._tls: dict[tuple[Any, ...], ssl.SSLContext] = {}

    def _client(self, policy: AddressPolicy) -> aiohttp.ClientSession:
        """One session per policy: a DNS cache never serves one policy's answers to another."""
        session = self._sessions.get(policy)
        if session is None or session.closed:
            # No connection cap of its own (0 = none): the delivery engine bounds requests per
            # partner (GATEWAY_PARTNER_CONCURRENCY); a hidden cap here would undercut it.
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=0, resolver=CheckedResolver(policy)
            )
            session = self._sessions[policy] = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self._user_agent},
                trust_env=False,
            )
        return session

    def tls_context(self, target: WebhookTarget) -> ssl.SSLContext:
        """The partner's SSLContext, built once per configuration (and again if a file changes)."""
        stamps = tuple(
            os.stat(path).st_mtime_ns if path else None for path in target.tls_key
        )  # a renewed certificate on disk gets a fresh context without a restart
        key = (*target.tls_key, *stamps)
        context = self._tls.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=target.ca_bundle)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if target.client_cert:
                context.load_cert_chain(target.client_cert, target.client_key)
            self._tls[key] = context
        return context

    def _refuse_endpoint(self, target: WebhookTarget) -> DeliveryResult | None:
        if target.endpoint.scheme == "https":
            return None
        if self._allow_insecure_loopback and is_loopback(target.endpoint.host):
            return None
        return _result(
            DeliveryOutcome.PERMANENT, "endpoint_not_https", scheme=target.endpoint.scheme
        )

    async def deliver(self, envelope: Envelope, target: Mapping[str, Any]) -> DeliveryResult:
        """POST the envelope once; every partner or network fault comes back as a result."""
        parsed = WebhookTarget.from_mapping(target)
        if isinstance(parsed, str):
            return _result(DeliveryOutcome.PERMANENT, "channel_misconfigured", setting=parsed)
        refused = self._refuse_endpoint(parsed)
        if refused is not None:
            return refused
        literal = _literal(parsed.endpoint.host or "")
        # aiohttp connects to an address literal without asking the resolver: check it here.
        if literal is not None and not address_allowed(literal, parsed.address_policy):
            return _refused_address(parsed)
        tls: ssl.SSLContext | bool = True
        if parsed.endpoint.scheme == "https":
            try:
                tls = self.tls_context(parsed)
            except (OSError, ssl.SSLError, ValueError):
                return _result(DeliveryOutcome.PERMANENT, "channel_misconfigured", setting="tls")
        return await self._post(envelope, parsed, tls)

    async def _post(
        self, envelope: Envelope, target: WebhookTarget, tls: ssl.SSLContext | bool
    ) -> DeliveryResult:
        timeout = aiohttp.ClientTimeout(
            total=target.total_timeout or self._total_timeout,
            sock_connect=target.connect_timeout or self._connect_timeout,
        )
        headers = {
            "Content-Type": envelope.content_type,
            "X-Gatehouse-Message-Id": envelope.message_id,
            "X-Gatehouse-Attempt": str(envelope.attempt),
        }
        body: bytes | AsyncIterator[memoryview] = envelope.body
        if len(envelope.body) >= SLICED_BODY:
            headers["Content-Length"] = str(len(envelope.body))  # sent whole, not chunked
            body = _slices(memoryview(envelope.body))
        try:
            async with self._client(target.address_policy).post(
                target.endpoint,
                data=body,
                headers=headers,
                timeout=timeout,
                ssl=tls,
                allow_redirects=False,
            ) as response:
                receipt = await self._receipt(response)
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
                return outcome_for_status(response.status, receipt, retry_after)
        except TimeoutError as exc:
            phase = "connect" if isinstance(exc, aiohttp.ConnectionTimeoutError) else "response"
            return _result(DeliveryOutcome.TRANSIENT, "partner_timeout", phase=phase)
        except aiohttp.ClientSSLError as exc:
            return _result(
                DeliveryOutcome.TRANSIENT, "partner_tls_failed", error_type=type(exc).__name__
            )
        except aiohttp.ClientConnectorError as exc:  # after TLS: its errors are one too
            if isinstance(exc.os_error, AddressRefusedError):
                return _refused_address(target)
            return _result(
                DeliveryOutcome.TRANSIENT, "partner_unreachable", error_type=type(exc).__name__
            )
        except (aiohttp.ClientError, OSError) as exc:
            return _result(
                DeliveryOutcome.TRANSIENT, "partner_unreachable", error_type=type(exc).__name__
            )

    async def _receipt(self, response: aiohttp.ClientResponse) -> bytes | None:
        """The synchronous receipt, if the answer is `200 application/jose` of a sane size."""
        if response.status != 200 or response.content_type != JOSE:
            return None
        limit = self._max_receipt_bytes
        if response.content_length is not None and response.content_length > limit:
            return None
        body = bytearray()
        async for chunk in response.content.iter_chunked(16 * 1024):
            body += chunk
            if len(body) > limit:
                return None  # delivered, but no usable receipt: wait for one by POST /v1/receipts
        return bytes(body).strip() or None

    async def close(self) -> None:
        """Close pooled connections."""
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


def _refused_address(target: WebhookTarget) -> DeliveryResult:
    """Permanent: retrying will not move the partner's endpoint onto an allowed address."""
    return _result(
        DeliveryOutcome.PERMANENT, "endpoint_address_refused", policy=target.address_policy.value
    )


async def _slices(view: memoryview) -> AsyncIterator[memoryview]:
    for start in range(0, len(view), SLICE):
        yield view[start : start + SLICE]
