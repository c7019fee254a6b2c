"""deploy/rabbitmq/definitions.json is what the transport declares: import it, then declare."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from gateway.queue.rabbit import RabbitTransport
from gateway.queue.retry import RetryPolicy
from gateway.queue.topology import build_topology, to_definitions
from tests.services import require_command

pytestmark = pytest.mark.rabbitmq


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    """Run rabbitmqctl (the broker's own admin tool) and fail the test on an error."""
    ctl = shutil.which("rabbitmqctl")
    assert ctl is not None
    result = subprocess.run([ctl, *args], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def vhost(amqp_url: str) -> Iterator[str]:
    """A throwaway virtual host the guest user may use."""
    require_command("rabbitmqctl")
    name = f"ghtest-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


async def test_imported_definitions_match_what_the_transport_declares(
    vhost: str, amqp_url: str
) -> None:
    topology = build_topology("gatehouse", ["kmmh", "kent-police"], RetryPolicy())
    # The broker's tool may run as another user: give it a world-readable file (no secrets in it).
    handle, name = tempfile.mkstemp(prefix="gh-definitions-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(to_definitions(topology, vhost=vhost), file)
        os.chmod(name, 0o644)
        rabbitmqctl("import_definitions", name)
    finally:
        os.unlink(name)
    listing = rabbitmqctl("list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "policy")
    queues = dict(line.split("\t") for line in listing.stdout.splitlines() if line)
    assert queues["gatehouse.outbound.kmmh"] == "gatehouse.outbound"  # the policy applies
    assert set(queues) == {q.name for q in topology.queues()}

    url = amqp_url.rstrip("/") + "/" + quote(vhost, safe="")
    transport = await RabbitTransport.connect(url, topology, connection_name=vhost)
    try:
        await transport.declare()  # would raise TopologyConflictError on any argument mismatch
        report = await transport.publish_many([])
        assert report.confirmed == ()
    finally:
        await transport.close(grace=0)
