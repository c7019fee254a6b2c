"""The listener's limits: requests in flight per key, and the receipt rate per address."""

from __future__ import annotations

from gateway.http.limits import InFlight, ReceiptRate


def test_in_flight_refuses_past_the_limit_and_frees_on_exit() -> None:
    limit = InFlight(2)
    with limit.slot("a") as first, limit.slot("a") as second, limit.slot("a") as third:
        assert (first, second, third) == (True, True, False)
        with limit.slot("b") as other:
            assert other  # another client has its own slots
    with limit.slot("a") as again:
        assert again


async def test_the_receipt_rate_allows_the_burst_then_says_how_long_to_wait() -> None:
    rate = ReceiptRate(rate=2.0, burst=3, storage="async+memory://")
    assert rate.window == 2  # 3 receipts in any 2 s
    assert [await rate.take("10.0.0.1") for _ in range(3)] == [0, 0, 0]
    assert 1 <= await rate.take("10.0.0.1") <= rate.window
    assert await rate.take("10.0.0.2") == 0  # per address


async def test_an_unreachable_store_lets_receipts_through() -> None:
    # Nothing listens on port 1: a partner's receipt is not refused for our store's fault.
    rate = ReceiptRate(rate=1.0, burst=1, storage="async+valkey://127.0.0.1:1")
    assert [await rate.take("10.0.0.1") for _ in range(3)] == [0, 0, 0]
