"""How one simulated partner behaves: who it is, how it answers, what goes wrong."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.errors import ConfigurationError
from gateway.partner_sim.council_jwks import JwksSource
from gateway.partner_sim.faults import FaultRates
from gateway.partner_sim.key_pairs import KeyType
from gateway.partner_sim.receipt_poster import DEFAULT_RECEIPT_RETRY
from gateway.queue.retry import RetryPolicy

DEFAULT_COUNCIL_JWKS = "http://127.0.0.1:8080/.well-known/jwks.json"


class ReceiptMode(enum.StrEnum):
    """When the partner gives its signed receipt."""

    SYNC = "sync"  # in the 200 answer to the POST
    ASYNC = "async"  # 202 now, POST to the gateway's /v1/receipts later
    NEVER = "never"  # 202 and nothing more


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PartnerConfig:
    """Everything one simulated partner needs; tests build it directly, the CLI from flags."""

    partner_id: str = "partner-sim"
    council_id: str = "medway-council"
    council_jwks: JwksSource = DEFAULT_COUNCIL_JWKS
    receipts: ReceiptMode = ReceiptMode.SYNC
    async_receipt_url: str | None = None
    faults: FaultRates = field(default_factory=FaultRates)
    seed: int | None = None
    keys_dir: Path | None = None  # None: fresh keys in memory only
    key_type: KeyType | None = None  # None: what keys_dir holds, else EC P-256
    timeout_hold_s: float = 35.0  # longer than the webhook channel's 30 s default
    receipt_delay_s: float = 0.0  # async mode: wait this long before posting the receipt
    receipt_retry: RetryPolicy = DEFAULT_RECEIPT_RETRY
    jwks_max_refetches: int = 5  # JWKS refetches on unknown kids allowed ...
    jwks_refetch_window_s: float = 60.0  # ... in any window this long
    max_body_bytes: int = 32 * 1024 * 1024
    clock: Callable[[], datetime] = _utc_now

    def __post_init__(self) -> None:
        if not self.partner_id or not self.council_id:
            raise ConfigurationError("partner id and council id must not be empty")
        try:
            mode = ReceiptMode(self.receipts)
        except ValueError:
            raise ConfigurationError("receipts must be sync, async or never") from None
        object.__setattr__(self, "receipts", mode)
        if mode is ReceiptMode.ASYNC and not self.async_receipt_url:
            raise ConfigurationError("async receipts need --async-receipt-url")
        for name in ("timeout_hold_s", "receipt_delay_s", "jwks_refetch_window_s"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must not be negative")
        if self.jwks_max_refetches < 0:
            raise ConfigurationError("jwks_max_refetches must not be negative")
        if self.max_body_bytes < 1:
            raise ConfigurationError("max_body_bytes must be positive")
