"""The RabbitMQ topology for deliveries, as pure data: exchanges, queues, bindings, policies.

Three exchanges under one prefix:

- `<prefix>.deliveries` (direct, routing key = partner id) feeds ONE quorum queue per partner,
  `<prefix>.outbound.<partner>`, so a slow or dead partner holds up nobody else; it has a single
  active consumer, so however many workers run, one of them delivers to a partner at a time and
  the partner's concurrency limit holds across all of them;
- `<prefix>.retry` (headers, on `gatehouse-retry-tier`) feeds one delay queue per delay tier,
  `<prefix>.retry.<tier>`, whose message TTL dead-letters the message back to the deliveries
  exchange under its original routing key, i.e. back to its own partner's queue;
- `<prefix>.dead` (direct, routing key = partner id) feeds `<prefix>.dead.<partner>`; a partner
  queue also dead-letters there once `x-delivery-limit` redeliveries (a crash loop) are spent.

The same data is declared at start-up by `gateway.queue.rabbit` and exported as RabbitMQ
definitions JSON (`to_definitions`) for `deploy/rabbitmq/definitions.json`.

Earlier versions named the work queue `<prefix>.deliver.<partner>`, without single active
consumer; RabbitMQ cannot add that argument to an existing queue (nor set it by policy), hence
the new name. `gateway.queue.rabbit` unbinds such a legacy queue, moves its messages over and
deletes it once no old worker consumes from it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from gateway.errors import ConfigurationError
from gateway.queue.retry import DelayTier, RetryPolicy, tiers_of

RETRY_TIER_HEADER = "gatehouse-retry-tier"
DEFAULT_DELIVERY_LIMIT = 20  # redeliveries after crashes/nacks, not retries (those re-publish)
CATALOG_PARTNERS = Path(__file__).resolve().parents[2] / "agreements" / "catalog" / "partners.yaml"
# Used only when no partners.yaml is at hand (a wheel without the example catalog).
EXAMPLE_PARTNERS = ("medway-ft", "kmmh", "km-icb", "kent-cc", "kent-police", "probation-kss")
_PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}(\.[a-z0-9][a-z0-9_-]{0,62}){0,3}$")
_QUORUM_DEAD_LETTERING = {
    # at-least-once dead-lettering (RabbitMQ >= 3.10) needs reject-publish overflow; no queue
    # here has a length limit, so the overflow setting only makes the stronger guarantee legal.
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


class TopologyError(ConfigurationError):
    """A prefix, partner id or option the broker topology cannot be built from."""

    code = "broker_topology_invalid"


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """A durable exchange to declare."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A durable queue to declare, with its x-arguments."""

    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class BindingSpec:
    """A binding from an exchange to a queue."""

    exchange: str
    queue: str
    routing_key: str = ""
    arguments: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A RabbitMQ policy (only exported; the application never needs the management API)."""

    name: str
    pattern: str
    apply_to: str
    definition: Mapping[str, Any]
    priority: int = 0


@dataclass(frozen=True)
class Topology:
    """Every name and argument of the delivery topology for one prefix and set of partners."""

    prefix: str
    partners: tuple[str, ...]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    partner_retry: Mapping[str, RetryPolicy] = field(default_factory=dict)
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    agreement_retry: tuple[RetryPolicy, ...] = ()  # agreements' own policies: their tiers too

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise TopologyError("the queue prefix must be lowercase letters, digits, - _ and .")
        for partner in (*self.partners, *self.partner_retry):
            check_partner_id(partner)
        if len(set(self.partners)) != len(self.partners):
            raise TopologyError("a partner id is listed twice")
        if self.delivery_limit < 1:
            raise TopologyError("delivery_limit must be at least 1")

    # -- names ---------------------------------------------------------------------------------
    @property
    def deliveries_exchange(self) -> str:
        """Where new deliveries (and expired retries) are published, keyed by partner id."""
        return f"{self.prefix}.deliveries"

    @property
    def retry_exchange(self) -> str:
        """Where a failed attempt is published to wait in the delay queue of a tier."""
        return f"{self.prefix}.retry"

    @property
    def dead_exchange(self) -> str:
        """Where dead letters go, keyed by partner id."""
        return f"{self.prefix}.dead"

    def delivery_queue(self, partner: str) -> str:
        """The partner's own work queue (single active consumer)."""
        return f"{self.prefix}.outbound.{partner}"

    def legacy_delivery_queue(self, partner: str) -> str:
        """The work queue of versions before single active consumer, drained on upgrade."""
        return f"{self.prefix}.deliver.{partner}"

    def dead_queue(self, partner: str) -> str:
        """The partner's dead-letter queue, replayable by an admin."""
        return f"{self.prefix}.dead.{partner}"

    def retry_queue(self, tier: DelayTier) -> str:
        """The delay queue of one tier, shared by all partners."""
        return f"{self.prefix}.retry.{tier.name}"

    # -- policy --------------------------------------------------------------------------------
    def policy_for(self, partner: str) -> RetryPolicy:
        """The retry policy that applies to this partner (its own, else the default)."""
        return self.partner_retry.get(partner, self.retry)

    @property
    def tiers(self) -> tuple[DelayTier, ...]:
        """Every delay tier any partner's or agreement's policy can use."""
        return tiers_of([self.retry, *self.partner_retry.values(), *self.agreement_retry])

    def with_policy(self, policy: RetryPolicy) -> Topology:
        """This topology plus the delay tiers of one more policy (a no-op if it has them)."""
        if policy == self.retry or policy in self.agreement_retry:
            return self
        return replace(self, agreement_retry=(*self.agreement_retry, policy))

    def with_partner(self, partner: str, retry: RetryPolicy | None = None) -> Topology:
        """This topology plus one partner (a no-op when it is already there with that policy)."""
        partners = self.partners if partner in self.partners else (*self.partners, partner)
        overrides = dict(self.partner_retry)
        if retry is not None:
            overrides[partner] = retry
        return replace(self, partners=partners, partner_retry=overrides)

    # -- declarations --------------------------------------------------------------------------
    def exchanges(self) -> tuple[ExchangeSpec, ...]:
        """The three durable exchanges."""
        return (
            ExchangeSpec(self.deliveries_exchange, "direct"),
            ExchangeSpec(self.retry_exchange, "headers"),
            ExchangeSpec(self.dead_exchange, "direct"),
        )

    def retry_queues(self) -> tuple[QueueSpec, ...]:
        """One delay queue per tier: TTL, then dead-letter back to the deliveries exchange."""
        return tuple(
            QueueSpec(
                self.retry_queue(tier),
                {
                    "x-queue-type": "quorum",
                    "x-message-ttl": tier.ttl_ms,
                    "x-dead-letter-exchange": self.deliveries_exchange,
                    **_QUORUM_DEAD_LETTERING,
                },
            )
            for tier in self.tiers
        )

    def partner_queues(self, partner: str) -> tuple[QueueSpec, ...]:
        """A partner's work queue and its dead-letter queue."""
        work = QueueSpec(
            self.delivery_queue(partner),
            {
                "x-queue-type": "quorum",
                "x-single-active-consumer": True,
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": self.dead_exchange,
                **_QUORUM_DEAD_LETTERING,
            },
        )
        return work, QueueSpec(self.dead_queue(partner), {"x-queue-type": "quorum"})

    def retry_bindings(self) -> tuple[BindingSpec, ...]:
        """Route on the tier header, so the routing key (the partner id) survives the wait."""
        return tuple(
            BindingSpec(
                self.retry_exchange,
                self.retry_queue(tier),
                "",
                {"x-match": "all", RETRY_TIER_HEADER: tier.name},
            )
            for tier in self.tiers
        )

    def partner_bindings(self, partner: str) -> tuple[BindingSpec, ...]:
        """Bind the partner's work and dead-letter queues to their exchanges by partner id."""
        return (
            BindingSpec(self.deliveries_exchange, self.delivery_queue(partner), partner),
            BindingSpec(self.dead_exchange, self.dead_queue(partner), partner),
        )

    def queues(self) -> tuple[QueueSpec, ...]:
        """Every queue: delay tiers, then each partner's work and dead-letter queue."""
        return self.retry_queues() + tuple(q for p in self.partners for q in self.partner_queues(p))

    def bindings(self) -> tuple[BindingSpec, ...]:
        """Every binding."""
        partner = tuple(b for p in self.partners for b in self.partner_bindings(p))
        return self.retry_bindings() + partner

    def policies(self) -> tuple[PolicySpec, ...]:
        """Backstop policies: queue arguments win, these cover queues made without them."""
        prefix = re.escape(self.prefix)
        dead_lettering = {k.removeprefix("x-"): v for k, v in _QUORUM_DEAD_LETTERING.items()}
        return (
            PolicySpec(
                f"{self.prefix}.outbound",
                rf"^{prefix}\.outbound\.",
                "queues",
                {
                    "delivery-limit": self.delivery_limit,
                    "dead-letter-exchange": self.dead_exchange,
                    **dead_lettering,
                },
            ),
            PolicySpec(
                f"{self.prefix}.retry",
                rf"^{prefix}\.retry\.",
                "queues",
                {"dead-letter-exchange": self.deliveries_exchange, **dead_lettering},
            ),
        )


def check_partner_id(partner: str) -> str:
    """Partner ids become routing keys and queue names: keep them short and plain."""
    if not _PARTNER_ID.match(partner):
        raise TopologyError("a partner id must be 1-64 lowercase letters, digits, - or _")
    return partner


def build_topology(
    prefix: str,
    partners: Sequence[str],
    retry: RetryPolicy | None = None,
    *,
    partner_retry: Mapping[str, RetryPolicy] | None = None,
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
    agreement_retry: Sequence[RetryPolicy] = (),
) -> Topology:
    """The topology for these partners under this prefix (partner order does not matter)."""
    return Topology(
        prefix=prefix,
        partners=tuple(sorted(set(partners))),
        retry=retry or RetryPolicy(),
        partner_retry=dict(partner_retry or {}),
        delivery_limit=delivery_limit,
        agreement_retry=tuple(dict.fromkeys(agreement_retry)),
    )


def to_definitions(topology: Topology, vhost: str = "/") -> dict[str, Any]:
    """RabbitMQ definitions JSON (as for `rabbitmqctl import_definitions`) for the topology."""
    return {
        "vhosts": [{"name": vhost}],
        "exchanges": [
            {
                "name": e.name,
                "vhost": vhost,
                "type": e.type,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for e in topology.exchanges()
        ],
        "queues": [
            {
                "name": q.name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": dict(q.arguments),
            }
            for q in topology.queues()
        ],
        "bindings": [
            {
                "source": b.exchange,
                "vhost": vhost,
                "destination": b.queue,
                "destination_type": "queue",
                "routing_key": b.routing_key,
                "arguments": dict(b.arguments),
            }
            for b in topology.bindings()
        ],
        "policies": [
            {
                "vhost": vhost,
                "name": p.name,
                "pattern": p.pattern,
                "apply-to": p.apply_to,
                "definition": dict(p.definition),
                "priority": p.priority,
            }
            for p in topology.policies()
        ],
    }


def partner_ids_from_catalog(path: Path) -> tuple[str, ...]:
    """The partner ids listed in a catalog's partners.yaml (every channel goes via the broker)."""
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = loaded.get("partners", []) if isinstance(loaded, dict) else []
    return tuple(str(e["id"]) for e in entries if isinstance(e, dict) and "id" in e)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the definitions JSON: `python -m gateway.queue.topology --out FILE [--partners ..]`."""
    parser = argparse.ArgumentParser(prog="python -m gateway.queue.topology")
    parser.add_argument("--prefix", default="gatehouse")
    parser.add_argument("--vhost", default="/")
    parser.add_argument("--partners", nargs="*", help="default: the ids in --catalog")
    parser.add_argument("--catalog", type=Path, default=CATALOG_PARTNERS, help="partners.yaml")
    parser.add_argument("--retry-delays", default="5s,30s,2m,10m,1h")
    parser.add_argument("--max-attempts", type=int, default=6)
    parser.add_argument("--delivery-limit", type=int, default=DEFAULT_DELIVERY_LIMIT)
    parser.add_argument("--out", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    try:
        partners = args.partners
        if partners is None:
            exists = args.catalog.is_file()
            partners = partner_ids_from_catalog(args.catalog) if exists else EXAMPLE_PARTNERS
        topology = build_topology(
            args.prefix,
            partners,
            RetryPolicy.parse(args.retry_delays, args.max_attempts),
            delivery_limit=args.delivery_limit,
        )
    except ConfigurationError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 2
    text = json.dumps(to_definitions(topology, args.vhost), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
