"""A simulated partner for tests and the demo: opens envelopes, keeps a ledger, signs receipts,
and misbehaves on request (see docs/partner-simulator.md)."""

from gateway.partner_sim.config import PartnerConfig, ReceiptMode
from gateway.partner_sim.faults import Fault, FaultConfigError, FaultRates
from gateway.partner_sim.key_pairs import (
    KeyType,
    PartnerKeyPair,
    generate_keys,
    load_or_create_keys,
)
from gateway.partner_sim.ledger import Ledger, LedgerEntry
from gateway.partner_sim.simulator import PartnerSimulator

__all__ = [
    "Fault",
    "FaultConfigError",
    "FaultRates",
    "KeyType",
    "Ledger",
    "LedgerEntry",
    "PartnerConfig",
    "PartnerKeyPair",
    "PartnerSimulator",
    "ReceiptMode",
    "generate_keys",
    "load_or_create_keys",
]
