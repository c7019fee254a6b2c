"""Admission by bytes in flight: a burst of large records is refused early, not held in memory."""

from __future__ import annotations


class InflightBytes:
    """Request bodies being handled now, against a budget (GATEWAY_MAX_INFLIGHT_BYTES)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0

    def try_take(self, size: int) -> bool:
        """Reserve `size` bytes; False (nothing reserved) when that would pass the budget."""
        if self.used + size > self.budget:
            return False
        self.used += size
        return True

    def give_back(self, size: int) -> None:
        """Release a reservation once the request is answered."""
        self.used -= size
