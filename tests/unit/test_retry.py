"""The retry policy: which delay tier each failed attempt waits in, and when to give up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ConfigurationError
from gateway.queue.retry import (
    DelayTier,
    GiveUp,
    RetryAfter,
    RetryPolicy,
    RetryPolicyError,
    delay_name,
    parse_delay,
    tiers_of,
)


def test_default_policy_walks_the_tiers_then_gives_up() -> None:
    policy = RetryPolicy()
    steps = [policy.next_step(n) for n in range(1, 7)]
    names = [s.tier.name for s in steps if isinstance(s, RetryAfter)]
    assert names == ["5s", "30s", "2m", "10m", "1h"]
    assert [s.attempt for s in steps if isinstance(s, RetryAfter)] == [2, 3, 4, 5, 6]
    assert steps[-1] == GiveUp(attempts=6)


def test_last_delay_repeats_when_attempts_outnumber_delays() -> None:
    policy = RetryPolicy.parse("1s,10s", max_attempts=5)
    delays = [policy.next_step(n) for n in range(1, 5)]
    assert [s.tier.name for s in delays if isinstance(s, RetryAfter)] == ["1s", "10s", "10s", "10s"]
    assert isinstance(policy.next_step(5), GiveUp)
    assert policy.total_delay == timedelta(seconds=31)


def test_one_attempt_means_no_retry() -> None:
    assert RetryPolicy(max_attempts=1).next_step(1) == GiveUp(attempts=1)


def test_retry_after_picks_a_long_enough_tier_but_never_past_the_longest() -> None:
    policy = RetryPolicy()
    step = policy.next_step(1, not_before=45)
    assert isinstance(step, RetryAfter)
    assert step.tier.name == "2m"
    longest = policy.next_step(1, not_before=86_400)
    assert isinstance(longest, RetryAfter)
    assert longest.tier.name == "1h"
    shorter = policy.next_step(3, not_before=1)
    assert isinstance(shorter, RetryAfter)
    assert shorter.tier.name == "2m"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("200ms", timedelta(milliseconds=200)),
        ("5s", timedelta(seconds=5)),
        (" 2m", timedelta(minutes=2)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
    ],
)
def test_parse_delay(text: str, expected: timedelta) -> None:
    assert parse_delay(text) == expected


@pytest.mark.parametrize("text", ["", "5", "five s", "5 weeks", "-5s", "1.5s"])
def test_parse_delay_refuses_nonsense(text: str) -> None:
    with pytest.raises(RetryPolicyError) as caught:
        parse_delay(text)
    assert caught.value.code == "retry_policy_invalid"


@pytest.mark.parametrize(
    ("delays", "attempts"),
    [
        ((), 3),
        ((timedelta(seconds=5),), 0),
        ((timedelta(seconds=30), timedelta(seconds=5)), 3),
        ((timedelta(microseconds=10),), 2),
    ],
)
def test_impossible_policies_are_configuration_errors(
    delays: tuple[timedelta, ...], attempts: int
) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(delays, attempts)


def test_tier_names_are_canonical_and_ttls_exact() -> None:
    assert delay_name(timedelta(milliseconds=1500)) == "1500ms"
    assert delay_name(timedelta(seconds=90)) == "90s"
    assert delay_name(timedelta(minutes=120)) == "2h"
    assert DelayTier("2m", timedelta(minutes=2)).ttl_ms == 120_000


def test_tiers_of_several_policies_is_their_sorted_union() -> None:
    fast = RetryPolicy.parse("200ms,1s")
    slow = RetryPolicy.parse("1s,1m")
    assert [t.name for t in tiers_of([slow, fast])] == ["200ms", "1s", "1m"]


@given(
    millis=st.lists(st.integers(1, 10_000_000), min_size=1, max_size=6),
    max_attempts=st.integers(1, 12),
    not_before=st.none() | st.floats(0, 100_000, allow_nan=False),
)
def test_every_attempt_either_waits_in_a_policy_tier_or_gives_up_at_the_cap(
    millis: list[int], max_attempts: int, not_before: float | None
) -> None:
    policy = RetryPolicy(tuple(timedelta(milliseconds=m) for m in sorted(millis)), max_attempts)
    previous = timedelta()
    for attempt in range(1, max_attempts + 1):
        step = policy.next_step(attempt)
        if attempt == max_attempts:
            assert step == GiveUp(attempts=attempt)
            break
        assert isinstance(step, RetryAfter)
        assert step.attempt == attempt + 1
        assert step.tier in policy.tiers
        assert step.tier.delay >= previous  # delays never shrink
        previous = step.tier.delay
        hinted = policy.next_step(attempt, not_before=not_before)
        assert isinstance(hinted, RetryAfter)
        assert hinted.tier in policy.tiers
        assert hinted.tier.delay >= step.tier.delay
