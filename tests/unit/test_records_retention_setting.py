"""GATEWAY_RECORDS_RETENTION sets the records schedule; the earlier name is still read."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.errors import ConfigurationError
from gateway.settings import load_settings


def test_the_schedule_defaults_to_six_years_and_reads_either_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GATEWAY_RECORDS_RETENTION", raising=False)
    monkeypatch.delenv("GATEWAY_METADATA_RETENTION", raising=False)
    assert load_settings().records_retention == timedelta(days=6 * 365)
    monkeypatch.setenv("GATEWAY_METADATA_RETENTION", "P3650D")
    assert load_settings().records_retention == timedelta(days=3650)
    monkeypatch.setenv("GATEWAY_RECORDS_RETENTION", "P2920D")
    assert load_settings().records_retention == timedelta(days=2920)
    assert load_settings(records_retention=timedelta(days=1)).records_retention.days == 1


def test_a_bad_value_names_the_setting_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_RECORDS_RETENTION", "forever")
    with pytest.raises(ConfigurationError, match=r"^GATEWAY_RECORDS_RETENTION: "):
        load_settings()
