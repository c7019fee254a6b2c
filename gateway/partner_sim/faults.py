"""Fault injection for the partner simulator: pure policy over a seeded random.Random.

Each envelope POST draws exactly two numbers from the RNG, whatever the rates: one picks the
fault (at most one of fail, timeout, reject, no-receipt), the other decides whether the answer
is also slow. So a fixed seed and the same sequence of requests always give the same faults,
and changing one rate at runtime never shifts the draws of later requests.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError


class FaultConfigError(GatewayError):
    """A fault setting that cannot work (a share outside 0..1, shares adding up past 1)."""

    code = "fault_config_invalid"


class Fault(enum.StrEnum):
    """What the simulated partner does wrong with one request (NONE: nothing)."""

    NONE = "none"
    FAIL = "fail"  # 503 at once; the envelope is not taken in
    TIMEOUT = "timeout"  # taken in, then the answer is held past the client's timeout (504)
    REJECT = "reject"  # taken in, receipt with status rejected
    NO_RECEIPT = "no_receipt"  # taken in, 202, and no receipt ever


# The order the shares are laid out on [0, 1) by `decide`.
_SHARE_OF = {
    "fail_rate": Fault.FAIL,
    "timeout_rate": Fault.TIMEOUT,
    "reject_rate": Fault.REJECT,
    "no_receipt_rate": Fault.NO_RECEIPT,
}
_SHARES = tuple(_SHARE_OF)


@dataclass(frozen=True, slots=True)
class FaultRates:
    """The shares of requests that fail, time out, are rejected, or never get a receipt."""

    fail_rate: float = 0.0
    timeout_rate: float = 0.0
    reject_rate: float = 0.0
    no_receipt_rate: float = 0.0
    slow_rate: float = 1.0  # share of answers delayed by slow_ms (only matters when slow_ms > 0)
    slow_ms: int = 0

    def __post_init__(self) -> None:
        for name in (*_SHARES, "slow_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FaultConfigError(f"{name} must be a number")
            if not math.isfinite(value) or not 0.0 <= value <= 1.0:
                raise FaultConfigError(f"{name} must be between 0 and 1")
        if sum(getattr(self, name) for name in _SHARES) > 1.0 + 1e-9:
            raise FaultConfigError("fail, timeout, reject and no-receipt rates add up past 1")
        if isinstance(self.slow_ms, bool) or not isinstance(self.slow_ms, int):
            raise FaultConfigError("slow_ms must be a whole number of milliseconds")
        if self.slow_ms < 0:
            raise FaultConfigError("slow_ms must not be negative")

    def replace(self, **changes: Any) -> FaultRates:
        """A copy with some settings changed (validated like a new one); unknown names refused."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise FaultConfigError(f"unknown fault setting {sorted(unknown)[0]!r}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, float | int]:
        """A JSON-ready dict (what GET /ledger and POST /control show)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """The fault for one request and the extra delay before answering it."""

    fault: Fault
    delay_s: float = 0.0


def decide(rates: FaultRates, rng: random.Random) -> FaultDecision:
    """Draw the fault and the slowness of one request (always exactly two draws)."""
    pick, slow = rng.random(), rng.random()
    fault = Fault.NONE
    threshold = 0.0
    for name, candidate in _SHARE_OF.items():
        threshold += getattr(rates, name)
        if pick < threshold:
            fault = candidate
            break
    delay = rates.slow_ms / 1000.0 if rates.slow_ms and slow < rates.slow_rate else 0.0
    return FaultDecision(fault, delay)


class FaultPolicy:
    """The simulator's mutable fault settings and its one seeded RNG."""

    def __init__(self, rates: FaultRates, rng: random.Random) -> None:
        self._rates = rates
        self._rng = rng
        self.counts: dict[str, int] = {fault.value: 0 for fault in Fault}
        self.slow = 0

    @property
    def rates(self) -> FaultRates:
        """The rates in force now."""
        return self._rates

    def change(self, **changes: Any) -> FaultRates:
        """Change some rates at runtime (POST /control); the RNG sequence is kept."""
        self._rates = self._rates.replace(**changes)
        return self._rates

    def next(self) -> FaultDecision:
        """The decision for the next request, counted."""
        decision = decide(self._rates, self._rng)
        self.counts[decision.fault.value] += 1
        self.slow += decision.delay_s > 0
        return decision

    def summary(self) -> Mapping[str, Any]:
        """Rates and how many of each fault were served so far."""
        return {"rates": self._rates.to_dict(), "served": dict(self.counts), "slow": self.slow}
