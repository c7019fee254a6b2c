"""The DNS servers direct email delivery asks (GATEWAY_SMTP_DNS_SERVERS), checked at start-up.

Comma-separated `address[:port]`: `192.0.2.53`, `192.0.2.53:5353`, `2001:db8::53` or
`[2001:db8::53]:5353`. Addresses only, never host names (a name would need a resolver to find
the resolver), and one port for all: the resolver has a single port, so mixed ports are refused
rather than one silently winning.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DNS_PORT = 53
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, slots=True)
class NameServers:
    """The addresses to ask, all on one port; no addresses: the system's resolver."""

    addresses: tuple[str, ...] = ()
    port: int = DNS_PORT


def parse_name_servers(text: str) -> NameServers:
    """The servers in `text`; ValueError names the first bad entry, or the clashing ports."""
    addresses: list[str] = []
    ports: set[int] = set()
    for item in (part.strip() for part in text.split(",")):
        if item:
            address, port = _entry(item)
            addresses.append(address)
            ports.add(port)
    if len(ports) > 1:
        listed = ", ".join(str(port) for port in sorted(ports))
        raise ValueError(f"every name server must use the same port, not {listed}")
    return NameServers(tuple(addresses), ports.pop() if ports else DNS_PORT)


def _entry(item: str) -> tuple[str, int]:
    host, colon, port = item, "", ""
    if item.startswith("["):  # [IPv6] or [IPv6]:port
        host, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"not address[:port]: {item[:60]!r}")
        colon, port = rest[:1], rest[1:]
        if not _is_address(host, version=6):
            raise ValueError(f"not an IPv6 address: {item[:60]!r}")
    elif item.count(":") == 1:  # IPv4:port
        host, colon, port = item.partition(":")
        if not _is_address(host, version=4):
            raise ValueError(f"not an IPv4 address: {item[:60]!r}")
    elif not _is_address(host):  # a bare IPv4 or IPv6 address
        raise ValueError(f"not an IP address (host names are not taken): {item[:60]!r}")
    if not colon:
        return str(ipaddress.ip_address(host)), DNS_PORT
    if not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
        raise ValueError(f"not a port from 1 to 65535: {item[:60]!r}")
    return str(ipaddress.ip_address(host)), int(port)


def _is_address(text: str, version: int | None = None) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or address.version == version
