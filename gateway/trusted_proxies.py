"""The address a request came from: the peer's, or the one a trusted proxy forwarded.

`X-Forwarded-For` is believed only from a peer in `GATEWAY_TRUSTED_PROXIES`, and then only as
far back as the chain of trusted proxies goes: the client is the rightmost address that is not
itself a trusted proxy, so a client cannot choose its own address by sending the header.
(aiohttp-remotes' filtered mode never checks the peer, and its strict mode refuses every
direct connection, so neither fits a listener that takes both.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_FOR = "X-Forwarded-For"


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR networks; ValueError names the first bad one."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"not an address or network: {item[:60]!r}") from None
    return tuple(networks)


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str | None, forwarded_for: list[str], proxies: Sequence[Network]) -> str:
    """The client's address, given the peer and every `X-Forwarded-For` header value."""
    address = peer or "unknown"
    if not proxies or not _trusted(address, proxies):
        return address
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            return address  # garbage from before the trusted chain: stop at the last good hop
        if not _trusted(address, proxies):
            return address
    return address
