"""The delivery topology as pure data, and its RabbitMQ definitions export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.errors import ConfigurationError
from gateway.queue.messages import DeadLettered, Delayed, Delivery, Retry, settle
from gateway.queue.retry import RetryPolicy
from gateway.queue.topology import (
    CATALOG_PARTNERS,
    RETRY_TIER_HEADER,
    Topology,
    build_topology,
    main,
    partner_ids_from_catalog,
    to_definitions,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def topology() -> Topology:
    return build_topology("gh", ["kmpt", "medway-ft"], RetryPolicy.parse("5s,30s"))


def test_one_quorum_queue_per_partner_dead_lettering_to_its_own_dlq(topology: Topology) -> None:
    queues = {q.name: q.arguments for q in topology.queues()}
    work = queues["gh.outbound.kmpt"]
    assert work["x-queue-type"] == "quorum"
    assert work["x-single-active-consumer"] is True  # one worker at a time per partner
    assert work["x-delivery-limit"] == 20
    assert work["x-dead-letter-exchange"] == "gh.dead"
    assert "x-dead-letter-routing-key" not in work  # keep the partner id as the routing key
    assert queues["gh.dead.kmpt"] == {"x-queue-type": "quorum"}
    assert set(queues) == {
        "gh.outbound.kmpt", "gh.dead.kmpt", "gh.outbound.medway-ft", "gh.dead.medway-ft",
        "gh.retry.5s", "gh.retry.30s",
    }  # fmt: skip


def test_delay_queues_expire_back_to_the_deliveries_exchange(topology: Topology) -> None:
    retry = {q.name: q.arguments for q in topology.retry_queues()}
    assert retry["gh.retry.5s"]["x-message-ttl"] == 5000
    assert retry["gh.retry.30s"]["x-message-ttl"] == 30_000
    for arguments in retry.values():
        assert arguments["x-dead-letter-exchange"] == topology.deliveries_exchange
        assert "x-dead-letter-routing-key" not in arguments


def test_bindings_route_by_partner_and_by_tier_header(topology: Topology) -> None:
    bindings = {(b.exchange, b.queue): b for b in topology.bindings()}
    assert bindings[("gh.deliveries", "gh.outbound.kmpt")].routing_key == "kmpt"
    assert bindings[("gh.dead", "gh.dead.medway-ft")].routing_key == "medway-ft"
    tier = bindings[("gh.retry", "gh.retry.30s")]
    assert tier.arguments == {"x-match": "all", RETRY_TIER_HEADER: "30s"}
    assert {e.name: e.type for e in topology.exchanges()} == {
        "gh.deliveries": "direct", "gh.retry": "headers", "gh.dead": "direct",
    }  # fmt: skip


def test_partner_policies_add_their_tiers_and_apply_only_to_that_partner(
    topology: Topology,
) -> None:
    slow = RetryPolicy.parse("1m,1h", max_attempts=3)
    grown = topology.with_partner("kent-police", slow)
    assert grown.partners == ("kmpt", "medway-ft", "kent-police")
    assert [t.name for t in grown.tiers] == ["5s", "30s", "1m", "1h"]
    assert grown.policy_for("kent-police") == slow
    assert grown.policy_for("kmpt") == topology.retry
    assert topology.partners == ("kmpt", "medway-ft")  # the original is unchanged
    assert grown.with_partner("kmpt") == grown


@pytest.mark.parametrize("partner", ["", "Kent", "kent police", "a.b", "x" * 65, "-lead"])
def test_unsafe_partner_ids_are_refused(partner: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_topology("gh", [partner])
    assert caught.value.code == "broker_topology_invalid"


@pytest.mark.parametrize("prefix", ["", "GH", "gh..x", "gh/x", ".gh"])
def test_unsafe_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ConfigurationError):
        build_topology(prefix, ["kmpt"])


def test_definitions_hold_everything_with_policies(topology: Topology) -> None:
    definitions = to_definitions(topology, vhost="gatehouse")
    assert {q["name"] for q in definitions["queues"]} == {q.name for q in topology.queues()}
    assert all(q["durable"] and q["vhost"] == "gatehouse" for q in definitions["queues"])
    assert len(definitions["bindings"]) == 2 * 2 + 2
    policies = {p["name"]: p for p in definitions["policies"]}
    assert policies["gh.outbound"]["definition"]["delivery-limit"] == 20
    assert policies["gh.outbound"]["pattern"] == r"^gh\.outbound\."
    assert policies["gh.retry"]["definition"]["dead-letter-exchange"] == "gh.deliveries"
    json.dumps(definitions)  # serialisable as is


def test_checked_in_definitions_match_the_generator() -> None:
    partners = partner_ids_from_catalog(CATALOG_PARTNERS)
    assert {"medway-ft", "kent-police"} <= set(partners)
    expected = to_definitions(build_topology("gatehouse", partners))
    on_disk = json.loads((REPO / "deploy/rabbitmq/definitions.json").read_text(encoding="utf-8"))
    assert on_disk == expected, "regenerate: python -m gateway.queue.topology --out ..."


def test_main_writes_a_file_and_refuses_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "defs.json"
    assert main(["--partners", "kmpt", "--retry-delays", "1s,2s", "--out", str(out)]) == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    assert {q["name"] for q in written["queues"]} >= {
        "gatehouse.outbound.kmpt",
        "gatehouse.retry.2s",
    }
    assert main(["--partners", "Not Valid", "--out", str(out)]) == 2


def test_agreement_policies_add_their_tiers_and_decide_a_retry(topology: Topology) -> None:
    quick = RetryPolicy.parse("100ms,1s", max_attempts=2)
    grown = topology.with_policy(quick)
    assert [t.name for t in grown.tiers] == ["100ms", "1s", "5s", "30s"]
    assert grown.with_policy(quick) is grown  # already there
    assert topology.with_policy(topology.retry) is topology
    delivery = Delivery("m-1", "kmpt", b"jwe", attempt=1)
    step = settle(Retry("partner_server_error", policy=quick), delivery, topology.retry)
    assert isinstance(step, Delayed)
    assert step.tier.name == "100ms"  # the agreement's policy, not the queue's 5s
    spent = Delivery("m-1", "kmpt", b"jwe", attempt=2)
    assert isinstance(settle(Retry("x", policy=quick), spent, topology.retry), DeadLettered)
    assert isinstance(
        settle(Retry("x"), spent, topology.retry), Delayed
    )  # queue's: 2 attempts left
