"""What the transport does with a consumer's action, and the headers each copy carries."""

from __future__ import annotations

from datetime import timedelta

from gateway.queue.amqp import outgoing_message, settlement_message
from gateway.queue.messages import (
    Ack,
    Acked,
    DeadLetter,
    DeadLettered,
    Defer,
    Delayed,
    Delivery,
    OutgoingMessage,
    Retry,
    settle,
)
from gateway.queue.retry import DelayTier, RetryPolicy

POLICY = RetryPolicy.parse("5s,30s", max_attempts=3)


def delivery(attempt: int, last_reason: str | None = None) -> Delivery:
    return Delivery("d-1", "kmmh", b"jwe", attempt, last_reason=last_reason, replays=1)


def test_ack_is_acked() -> None:
    assert settle(Ack(), delivery(1), POLICY) == Acked()


def test_defer_waits_in_the_longest_tier_without_spending_the_attempt() -> None:
    # Even on the last attempt: a deferred message is never dead-lettered.
    longest = DelayTier("30s", timedelta(seconds=30))
    assert settle(Defer("handler_error"), delivery(3), POLICY) == Delayed(
        longest, 3, "handler_error"
    )
    own = RetryPolicy.parse("1s,2s", max_attempts=2)
    assert settle(Defer("handler_error", policy=own), delivery(1), POLICY) == Delayed(
        DelayTier("2s", timedelta(seconds=2)), 1, "handler_error"
    )


def test_retry_waits_in_the_next_tier_with_the_next_attempt() -> None:
    assert settle(Retry("partner_server_error"), delivery(1), POLICY) == Delayed(
        DelayTier("5s", timedelta(seconds=5)), 2, "partner_server_error"
    )
    throttled = settle(Retry("partner_throttled", not_before=20), delivery(1), POLICY)
    assert isinstance(throttled, Delayed)
    assert throttled.tier.name == "30s"


def test_retry_past_the_last_attempt_dead_letters_keeping_the_cause() -> None:
    assert settle(Retry("partner_timeout"), delivery(3), POLICY) == DeadLettered(
        "attempts_exhausted", "partner_timeout"
    )


def test_dead_letter_is_immediate() -> None:
    result = settle(DeadLetter("partner_refused"), delivery(1, "partner_timeout"), POLICY)
    assert result == DeadLettered("partner_refused", "partner_timeout")


def test_copies_keep_id_and_body_and_say_why_in_headers() -> None:
    delayed = Delayed(DelayTier("30s", timedelta(seconds=30)), 3, "partner_server_error")
    retry = settlement_message(delayed, delivery(2))
    assert (retry.message_id, retry.body, retry.delivery_mode.value) == ("d-1", b"jwe", 2)
    assert retry.headers == {
        "gatehouse-partner": "kmmh",
        "gatehouse-replays": 1,
        "gatehouse-retry-tier": "30s",
        "gatehouse-attempt": 3,
        "gatehouse-reason": "partner_server_error",
    }
    dead = settlement_message(DeadLettered("attempts_exhausted", "partner_timeout"), delivery(3))
    assert dead.headers["gatehouse-dead-reason"] == "attempts_exhausted"
    assert dead.headers["gatehouse-reason"] == "partner_timeout"
    assert dead.headers["gatehouse-attempt"] == 3
    assert "gatehouse-retry-tier" not in dead.headers


def test_new_messages_are_persistent_attempt_one() -> None:
    message = outgoing_message(OutgoingMessage("d-9", "kmmh", b"jwe"))
    assert message.delivery_mode.value == 2
    assert message.headers == {"gatehouse-attempt": 1, "gatehouse-partner": "kmmh"}
    assert message.content_type == "application/jose"
