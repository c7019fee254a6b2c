"""GATEWAY_SMTP_DNS_SERVERS is checked at start-up: IP addresses, one port for all."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigurationError
from gateway.name_servers import NameServers
from gateway.settings import load_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", NameServers((), 53)),
        ("192.0.2.53", NameServers(("192.0.2.53",), 53)),
        ("192.0.2.53:5353, 192.0.2.54:5353", NameServers(("192.0.2.53", "192.0.2.54"), 5353)),
        ("2001:db8::53", NameServers(("2001:db8::53",), 53)),
        ("[2001:DB8::53]:5353", NameServers(("2001:db8::53",), 5353)),
        ("[2001:db8::53], 192.0.2.53:53", NameServers(("2001:db8::53", "192.0.2.53"), 53)),
        (" 192.0.2.53 ,, ", NameServers(("192.0.2.53",), 53)),
    ],
)
def test_addresses_and_their_port_are_parsed(text: str, expected: NameServers) -> None:
    assert load_settings(smtp_dns_servers=text).smtp_name_servers == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("dns.example", "host names are not taken"),
        ("dns.example:53", "not an IPv4 address"),
        ("10.0.0.1:abc", "not a port"),
        ("10.0.0.1:", "not a port"),
        ("10.0.0.1:0", "not a port"),
        ("10.0.0.1:65536", "not a port"),
        ("10.0.0.1:+53", "not a port"),
        ("10.0.0.1:5353,10.0.0.2", "same port, not 53, 5353"),
        ("[2001:db8::1]:5353,[2001:db8::2]:53", "same port, not 53, 5353"),
        ("[2001:db8::1]:", "not a port"),
        ("[2001:db8::1]53", "not address"),
        ("[2001:db8::1", "not address"),
        ("[192.0.2.53]:53", "not an IPv6 address"),
        ("2001:db8::zz", "not an IP address"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_setting(text: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^GATEWAY_SMTP_DNS_SERVERS: ") as refused:
        load_settings(smtp_dns_servers=text)
    assert why in str(refused.value)
