"""The partner simulator's fault policy: pure, seeded, validated."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.partner_sim.faults import (
    Fault,
    FaultConfigError,
    FaultDecision,
    FaultPolicy,
    FaultRates,
    decide,
)


def test_no_rates_means_no_faults() -> None:
    rng = random.Random(1)
    decisions = [decide(FaultRates(), rng) for _ in range(500)]
    assert {d.fault for d in decisions} == {Fault.NONE}
    assert all(d.delay_s == 0 for d in decisions)


def test_a_fail_rate_of_one_fails_everything() -> None:
    rng = random.Random(2)
    assert {decide(FaultRates(fail_rate=1.0), rng).fault for _ in range(200)} == {Fault.FAIL}


def test_the_same_seed_gives_the_same_sequence() -> None:
    rates = FaultRates(fail_rate=0.2, timeout_rate=0.05, reject_rate=0.1, slow_ms=50, slow_rate=0.3)
    a, b = random.Random(42), random.Random(42)
    one = [decide(rates, a) for _ in range(300)]
    two = [decide(rates, b) for _ in range(300)]
    assert one == two
    other = random.Random(43)
    assert one != [decide(rates, other) for _ in range(300)]


def test_the_mix_follows_the_rates() -> None:
    rates = FaultRates(fail_rate=0.2, timeout_rate=0.05, reject_rate=0.1, no_receipt_rate=0.05)
    rng = random.Random(7)
    counts = Counter(decide(rates, rng).fault for _ in range(10_000))
    assert 1_850 <= counts[Fault.FAIL] <= 2_150
    assert 420 <= counts[Fault.TIMEOUT] <= 580
    assert 900 <= counts[Fault.REJECT] <= 1_100
    assert 420 <= counts[Fault.NO_RECEIPT] <= 580
    assert 5_750 <= counts[Fault.NONE] <= 6_250


def test_slow_answers_follow_slow_rate_and_carry_the_delay() -> None:
    rng = random.Random(3)
    decisions = [decide(FaultRates(slow_ms=250, slow_rate=0.5), rng) for _ in range(2_000)]
    slow = [d for d in decisions if d.delay_s > 0]
    assert 900 <= len(slow) <= 1_100
    assert {d.delay_s for d in slow} == {0.25}


def test_changing_a_rate_does_not_shift_later_draws() -> None:
    """Two draws per request whatever the rates: runtime changes keep the RNG in step."""
    calm = FaultPolicy(FaultRates(), random.Random(9))
    stormy = FaultPolicy(FaultRates(), random.Random(9))
    stormy.change(fail_rate=1.0, slow_ms=10)
    for _ in range(5):
        assert stormy.next().fault is Fault.FAIL
        calm.next()
    stormy.change(fail_rate=0.0, reject_rate=0.5, slow_ms=0)
    calm.change(reject_rate=0.5)
    assert [stormy.next() for _ in range(50)] == [calm.next() for _ in range(50)]


def test_policy_counts_what_it_served() -> None:
    policy = FaultPolicy(FaultRates(fail_rate=0.5, slow_ms=5, slow_rate=1.0), random.Random(4))
    decisions = [policy.next() for _ in range(100)]
    summary = policy.summary()
    assert summary["served"]["fail"] == sum(d.fault is Fault.FAIL for d in decisions)
    assert summary["served"]["none"] == sum(d.fault is Fault.NONE for d in decisions)
    assert summary["slow"] == 100
    assert summary["rates"]["fail_rate"] == 0.5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fail_rate": -0.1}, "fail_rate must be between 0 and 1"),
        ({"timeout_rate": 1.5}, "timeout_rate must be between 0 and 1"),
        ({"reject_rate": float("nan")}, "reject_rate must be between 0 and 1"),
        ({"slow_rate": 2}, "slow_rate must be between 0 and 1"),
        ({"fail_rate": True}, "fail_rate must be a number"),
        ({"fail_rate": 0.6, "reject_rate": 0.6}, "add up past 1"),
        ({"slow_ms": -1}, "slow_ms must not be negative"),
        ({"slow_ms": 1.5}, "slow_ms must be a whole number"),
        ({"colour": 1}, "unknown fault setting 'colour'"),
    ],
)
def test_impossible_settings_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(FaultConfigError, match=message) as caught:
        FaultRates().replace(**changes)
    assert caught.value.code == "fault_config_invalid"


def test_a_refused_change_leaves_the_policy_as_it_was() -> None:
    policy = FaultPolicy(FaultRates(fail_rate=0.3), random.Random(0))
    with pytest.raises(FaultConfigError):
        policy.change(fail_rate=0.8, reject_rate=0.8)
    assert policy.rates == FaultRates(fail_rate=0.3)


shares = st.floats(min_value=0.0, max_value=0.25, allow_nan=False)


@given(fail=shares, timeout=shares, reject=shares, silent=shares, seed=st.integers(0, 2**32))
def test_a_fault_is_drawn_only_when_its_rate_is_positive(
    fail: float, timeout: float, reject: float, silent: float, seed: int
) -> None:
    rates = FaultRates(
        fail_rate=fail, timeout_rate=timeout, reject_rate=reject, no_receipt_rate=silent
    )
    decision = decide(rates, random.Random(seed))
    positive = {
        Fault.NONE: True,
        Fault.FAIL: fail > 0,
        Fault.TIMEOUT: timeout > 0,
        Fault.REJECT: reject > 0,
        Fault.NO_RECEIPT: silent > 0,
    }
    assert positive[decision.fault]
    assert decision == FaultDecision(decision.fault, 0.0)
