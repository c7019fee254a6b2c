"""The listener's limits: requests in flight per key, and a token bucket per address."""

from __future__ import annotations

from gateway.http.limits import InFlight, TokenBuckets


def test_in_flight_refuses_past_the_limit_and_frees_on_exit() -> None:
    limit = InFlight(2)
    with limit.slot("a") as first, limit.slot("a") as second, limit.slot("a") as third:
        assert (first, second, third) == (True, True, False)
        with limit.slot("b") as other:
            assert other  # another client has its own slots
    with limit.slot("a") as again:
        assert again


def test_token_bucket_allows_the_burst_then_says_how_long_to_wait() -> None:
    now = [100.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("10.0.0.1") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("10.0.0.1") == 1
    assert buckets.take("10.0.0.2") == 0  # per address
    now[0] += 0.5  # one token back at 2/s
    assert buckets.take("10.0.0.1") == 0
    assert buckets.take("10.0.0.1") >= 1


def test_token_buckets_forget_the_oldest_addresses() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, clock=lambda: 0.0, max_keys=2)
    for address in ("a", "b", "c"):
        assert buckets.take(address) == 0
    assert buckets.take("a") == 0  # forgotten, so it starts with a full bucket again
    assert buckets.take("c") == 1
