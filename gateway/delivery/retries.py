"""Which retry policy applies to a delivery: the agreement's own, else the gateway default.

Pure. An agreement states its retries as `max_attempts`, `first_delay` and `max_delay`; the
delivery engine needs the delay of every attempt, so the delays double from the first until
they reach the maximum. Both delivery paths retry a disclosure by its own agreement's policy;
on RabbitMQ the delay tiers are queues shared by all partners, declared for every agreement's
policy. A partner-level policy (the most patient of its agreements') remains only for a retry
that no agreement decides (a consumer that failed before reading the disclosure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from agreements.model import Agreement, RetryOverride
from gateway.queue.retry import RetryPolicy

_MAX_TIERS = 12  # doubling from 1 ms reaches an hour in 22 steps; real policies need a handful


def from_agreement(retry: RetryOverride) -> RetryPolicy:
    """The engine's policy for an agreement's retry section: doubling delays, capped."""
    first = max(retry.first_delay, timedelta(milliseconds=1))
    ceiling = max(retry.max_delay, first)
    delays = [first]
    while delays[-1] < ceiling and len(delays) < _MAX_TIERS:
        delays.append(min(delays[-1] * 2, ceiling))
    return RetryPolicy(tuple(delays), retry.max_attempts)


def for_agreement(agreement: Agreement | None, default: RetryPolicy) -> RetryPolicy:
    """The agreement's retry policy when it has one, else the default."""
    if agreement is None or agreement.retry is None:
        return default
    return from_agreement(agreement.retry)


def for_partner(
    partner_id: str, agreements: Iterable[Agreement], default: RetryPolicy
) -> RetryPolicy:
    """One policy for a partner's queue: the most patient of its agreements' own policies."""
    own = [from_agreement(a.retry) for a in agreements if a.partner == partner_id and a.retry]
    if not own:
        return default
    return max(own, key=lambda p: (p.total_delay, p.max_attempts))


def partner_overrides(
    agreements: Mapping[str, Agreement], default: RetryPolicy
) -> dict[str, RetryPolicy]:
    """Every partner whose agreements set their own retries, with its policy."""
    partners = {a.partner for a in agreements.values() if a.retry is not None}
    return {p: for_partner(p, agreements.values(), default) for p in sorted(partners)}


def agreement_policies(agreements: Iterable[Agreement]) -> tuple[RetryPolicy, ...]:
    """The distinct policies of the agreements that set their own retries (for delay tiers)."""
    return tuple(dict.fromkeys(from_agreement(a.retry) for a in agreements if a.retry))
