"""MTA-STS (RFC 8461): a partner domain's published rule that its mail servers take TLS.

The domain publishes a TXT record `_mta-sts.<domain>` (`v=STSv1; id=...`) and a policy at
`https://mta-sts.<domain>/.well-known/mta-sts.txt`, fetched over HTTPS with the certificate
verified for that name and no redirects. In `enforce` mode mail goes only to an MX host the
policy's `mx` patterns match; `testing` and `none` only report. Policies are cached for their
`max_age` and used while cached when the TXT record or the fetch fails, as the RFC asks; a new
`id` in the TXT record fetches the policy again. Our own rule is stricter than any mode:
STARTTLS with a verified certificate, always.

The policy format is a few `key: value` lines; the one PyPI package that parses it is a Postfix
daemon whose resolver cannot be pointed at given name servers or CA bundles, so it is parsed
here, to the RFC's grammar.
"""

from __future__ import annotations

import asyncio
import enum
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 section 3.3: senders may limit the policy's size
MAX_AGE_LIMIT = 31_557_600  # RFC 8461 section 3.2: at most a year
_MAX_AGE = re.compile(r"[0-9]{1,10}")  # sts-policy-max-age-value = 1*10DIGIT
_STS_VERSION = re.compile(r"v=STSv1[ \t]*;")  # RFC 8461 section 3.1: "v=STSv1;" begins it
_POLICY_ID = re.compile(r"[A-Za-z0-9]{1,32}")  # sts-id-value = 1*32(ALPHA / DIGIT)


class StsMode(enum.StrEnum):
    """What the domain asks of senders."""

    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


class MtaStsError(Exception):
    """No usable policy could be had: the TXT record or policy file is malformed, or unfetchable."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class StsPolicy:
    """A domain's MTA-STS policy, as published."""

    mode: StsMode
    mx: tuple[str, ...]
    max_age: int

    def allows(self, host: str) -> bool:
        """Whether mail may go to MX `host` under this policy (only `enforce` forbids)."""
        return self.mode is not StsMode.ENFORCE or mx_matches(host, self.mx)


def parse_policy(text: str) -> StsPolicy:
    """The policy file's fields (RFC 8461 section 3.2); `mta_sts_policy_invalid` otherwise."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise MtaStsError("mta_sts_policy_invalid")
        key, value = key.strip(), value.strip()
        if key == "mx":
            mx.append(value.lower().rstrip("."))
        else:
            fields.setdefault(key, value)  # the first of a repeated key counts
    if fields.get("version") != "STSv1":
        raise MtaStsError("mta_sts_policy_invalid")
    try:
        mode = StsMode(fields.get("mode", ""))
    except ValueError:
        raise MtaStsError("mta_sts_policy_invalid") from None
    if not _MAX_AGE.fullmatch(fields.get("max_age", "")):  # int() would take +5, 1_000
        raise MtaStsError("mta_sts_policy_invalid")
    max_age = int(fields["max_age"])
    if not 0 <= max_age <= MAX_AGE_LIMIT or (mode is not StsMode.NONE and not mx):
        raise MtaStsError("mta_sts_policy_invalid")
    return StsPolicy(mode, tuple(mx), max_age)


def parse_record(texts: list[str]) -> str | None:
    """The policy id from the TXT records (`v=STSv1; id=...`); None unless exactly one is an
    STS record with an id."""
    records = [t for t in texts if _STS_VERSION.match(t)]  # not v=STSv10, v=STSv1x
    if len(records) != 1:
        return None
    fields = dict(
        part.strip().partition("=")[::2] for part in records[0].split(";") if part.strip()
    )
    found = fields.get("id", "")
    return found if _POLICY_ID.fullmatch(found) else None


def mx_matches(host: str, patterns: tuple[str, ...]) -> bool:
    """RFC 8461 section 4.1: an exact name, or `*.` standing for exactly one leftmost label."""
    name = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            label, dot, rest = name.partition(".")
            if dot and label and rest == pattern[2:]:
                return True
        elif name == pattern:
            return True
    return False


TxtLookup = Callable[[str], Awaitable[list[str] | None]]
"""The TXT strings at a name (None: no such record), raising MtaStsError when DNS fails."""
AddressLookup = Callable[[str], Awaitable[list[str]]]
"""The IP addresses of a host name."""


@dataclass(frozen=True, slots=True)
class _Cached:
    policy_id: str
    policy: StsPolicy
    until: float


class StsPolicies:
    """Each partner domain's policy, fetched when its id changes, kept for its max_age."""

    def __init__(
        self,
        *,
        txt: TxtLookup,
        addresses: AddressLookup,
        tls: ssl.SSLContext,
        port: int = 443,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._txt, self._addresses, self._tls = txt, addresses, tls
        self._port, self._timeout, self._clock = port, timeout, clock
        self._cached: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def policy(self, domain: str) -> StsPolicy | None:
        """The domain's policy in force, or None when it publishes none we could fetch."""
        lock = self._locks.setdefault(domain, asyncio.Lock())
        async with lock:  # one fetch per domain at a time
            return await self._policy(domain)

    async def _policy(self, domain: str) -> StsPolicy | None:
        cached = self._cached.get(domain)
        if cached is not None and cached.until <= self._clock():
            cached = None
        try:
            texts = await self._txt(f"_mta-sts.{domain}")
        except MtaStsError:
            texts = None if cached is None else [f"v=STSv1; id={cached.policy_id}"]
        policy_id = parse_record(texts or [])
        if policy_id is None:  # no record (any more): a cached policy stays in force until due
            return cached.policy if cached is not None else None
        if cached is not None and cached.policy_id == policy_id:
            return cached.policy
        try:
            policy = parse_policy(await self._fetch(domain))
        except MtaStsError:
            return cached.policy if cached is not None else None
        self._cached[domain] = _Cached(policy_id, policy, self._clock() + policy.max_age)
        return policy

    async def _fetch(self, domain: str) -> str:
        """The policy file over HTTPS, verified for `mta-sts.<domain>`, without redirects."""
        host = f"mta-sts.{domain}"
        addresses = await self._addresses(host)
        if not addresses:
            raise MtaStsError("mta_sts_fetch_failed")
        address = addresses[0]
        authority = f"[{address}]" if ":" in address else address
        url = f"https://{authority}:{self._port}/.well-known/mta-sts.txt"
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(
                    url,
                    ssl=self._tls,
                    server_hostname=host,  # the certificate must be for this name
                    headers={"Host": host},
                    allow_redirects=False,
                ) as response,
            ):
                content_type = response.headers.get("Content-Type", "")
                if response.status != 200 or not content_type.startswith("text/plain"):
                    raise MtaStsError("mta_sts_fetch_failed")
                body = await response.content.read(MAX_POLICY_BYTES + 1)
        except (aiohttp.ClientError, OSError, TimeoutError):
            raise MtaStsError("mta_sts_fetch_failed") from None
        if len(body) > MAX_POLICY_BYTES:
            raise MtaStsError("mta_sts_policy_invalid")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise MtaStsError("mta_sts_policy_invalid") from None
