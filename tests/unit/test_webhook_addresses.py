"""Where the webhook channel may connect: public addresses for https, loopback for http, and
private ones only for a partner whose catalog entry allows them."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from adapters.webhook import (
    AddressPolicy,
    AddressRefusedError,
    CheckedResolver,
    address_allowed,
    is_loopback,
)
from agreements.model import ChannelSpec

UNSPECIFIED = str(ipaddress.IPv4Address(0))
PRIVATE = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    UNSPECIFIED,
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "224.0.0.1",
    "192.0.2.1",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", PRIVATE)
def test_https_never_reaches_a_private_address_by_default(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address), AddressPolicy.PUBLIC)


@pytest.mark.parametrize("address", PUBLIC)
def test_https_reaches_public_addresses(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address), AddressPolicy.PUBLIC)
    assert not address_allowed(ipaddress.ip_address(address), AddressPolicy.LOOPBACK)


def test_an_allowed_partner_reaches_private_but_not_unspecified_or_multicast() -> None:
    assert address_allowed(ipaddress.ip_address("10.1.2.3"), AddressPolicy.ANY)
    assert not address_allowed(ipaddress.ip_address(UNSPECIFIED), AddressPolicy.ANY)
    assert not address_allowed(ipaddress.ip_address("224.0.0.1"), AddressPolicy.ANY)


def test_dot_localhost_is_not_loopback() -> None:
    assert is_loopback("localhost")
    assert not is_loopback("partner.localhost")
    assert not is_loopback("localhost.")


class _Answers(AbstractResolver):
    """A fake DNS answer (a unit test of the filter; the real resolver runs in tests/security)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_the_resolver_returns_only_the_checked_addresses() -> None:
    resolver = CheckedResolver(AddressPolicy.PUBLIC, _Answers("10.0.0.5", "93.184.216.34"))
    assert [r["host"] for r in await resolver.resolve("partner.example", 443)] == ["93.184.216.34"]
    rebinding = CheckedResolver(AddressPolicy.PUBLIC, _Answers("169.254.169.254"))
    with pytest.raises(AddressRefusedError):
        await rebinding.resolve("partner.example", 443)


def test_the_catalog_allowance_is_for_webhooks_only() -> None:
    assert ChannelSpec(
        type="webhook", endpoint="https://hub.council.internal/in", allow_private_address=True
    ).allow_private_address
    with pytest.raises(ValueError, match="webhook channels only"):
        ChannelSpec(type="mesh", mailbox="X26ABC1", workflow_id="WF_1", allow_private_address=True)
    with pytest.raises(ValueError, match="https"):
        ChannelSpec(type="webhook", endpoint="http://partner.localhost/in")
