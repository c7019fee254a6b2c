"""X-Forwarded-For counts only from a trusted proxy, and only back to the first untrusted hop."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigurationError
from gateway.settings import load_settings
from gateway.trusted_proxies import client_address, parse_networks

PROXIES = parse_networks("10.0.0.5, 192.168.0.0/24")


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("10.0.0.5", ["203.0.113.7"], ()) == "10.0.0.5"


def test_an_untrusted_peer_cannot_choose_its_address() -> None:
    assert client_address("198.51.100.9", ["203.0.113.7"], PROXIES) == "198.51.100.9"


def test_a_trusted_proxy_names_the_client() -> None:
    assert client_address("10.0.0.5", ["203.0.113.7"], PROXIES) == "203.0.113.7"


def test_the_client_is_the_rightmost_untrusted_hop() -> None:
    # The client sent a forged first hop; the proxies appended what they saw.
    forwarded = ["1.1.1.1, 203.0.113.7, 192.168.0.3"]
    assert client_address("10.0.0.5", forwarded, PROXIES) == "203.0.113.7"
    assert client_address("10.0.0.5", ["1.1.1.1", "203.0.113.7"], PROXIES) == "203.0.113.7"


def test_garbage_or_no_header_stops_at_the_last_good_address() -> None:
    assert client_address("10.0.0.5", [], PROXIES) == "10.0.0.5"
    assert client_address("10.0.0.5", ["not-an-ip"], PROXIES) == "10.0.0.5"
    assert client_address(None, ["203.0.113.7"], PROXIES) == "unknown"


def test_a_bad_proxy_setting_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="GATEWAY_TRUSTED_PROXIES"):
        load_settings(trusted_proxies="10.0.0.5, proxy.example")
    assert load_settings(trusted_proxies="::1, 10.0.0.0/8").trusted_proxy_networks


def test_rate_limit_storage_must_be_async() -> None:
    with pytest.raises(ConfigurationError, match="GATEWAY_RATE_LIMIT_STORAGE"):
        load_settings(rate_limit_storage="memory://")
