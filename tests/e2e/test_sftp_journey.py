"""A disclosure to the DfE over SFTP, end to end, against a real OpenSSH sshd on loopback.

The gateway (pipeline, delivery service, SFTP channel and receipt poller) uploads the sealed
envelope to the partner's inbound directory; the test plays the DfE: it opens the envelope with
the DfE's key, then leaves a signed receipt in its outbound directory for the poller to collect.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.sftp import (
    CLIENT_KEY_FILE,
    SftpChannel,
    SftpReceiptPoller,
    load_or_create_ssh_key,
    public_key_line,
)
from gateway.application.commands import Queued
from gateway.catalog_sync import partner_record
from gateway.clients import Client
from gateway.delivery.engine import DeliveryOptions, DeliveryService, InboundPollers
from gateway.http.schemas import DisclosureSubmission
from gateway.receipts import make_receipt
from gateway.sealing import open_envelope
from gateway.service import sftp_options
from gateway.store import disclosures, partners_repo
from gateway.store.unit_of_work import Connection
from tests.gateway_support import TEST_NOW, Harness, build_harness, isolated_settings
from tests.gateway_support import lac_submission as base_submission
from tests.sshd import Sshd, running_sshd

Journey = tuple[Harness, Sshd, DeliveryService]


@pytest.fixture
async def journey(tmp_path: Path) -> AsyncIterator[Journey]:
    key = load_or_create_ssh_key(tmp_path / "keys" / CLIENT_KEY_FILE)
    with running_sshd(tmp_path / "sshd", public_key_line(key)) as sshd:
        settings = isolated_settings(tmp_path, sftp_poll_seconds=3600, sftp_username=sshd.user)
        harness = await build_harness(settings)
        await _point_dfe_at(harness, sshd)
        channel = SftpChannel(sftp_options(settings))
        service = DeliveryService(
            settings=settings, store=harness.gateway.store, policy=harness.gateway.policy,
            intake=harness.gateway.receipts, metrics=harness.gateway.metrics,
            channels={"sftp": channel}, clock=harness.gateway.clock,
            options=DeliveryOptions(poll_interval=0.05),
            inbound=InboundPollers(sftp=SftpReceiptPoller(channel)),
        )  # fmt: skip
        await service.start()
        try:
            yield harness, sshd, service
        finally:
            await service.stop(5)
            await channel.close()
            await harness.gateway.close()


async def _point_dfe_at(harness: Harness, sshd: Sshd) -> None:
    """The catalog's DfE partner, moved to the loopback server (as `catalog apply` would)."""
    dfe = harness.gateway.policy.snapshot.partners["dfe"]
    channel = dfe.channel.model_copy(
        update={
            "host": "127.0.0.1",
            "port": sshd.port,
            "path": sshd.remote("inbound"),
            "receipts_path": sshd.remote("outbound"),
            "host_key": sshd.host_key_line,
        }
    )
    record = partner_record(dfe.model_copy(update={"channel": channel}))

    async def save(conn: Connection) -> None:
        await partners_repo.save_partner(conn, record, at=TEST_NOW)

    await harness.gateway.store.write(save)
    await harness.gateway.policy.refresh()


async def _status(harness: Harness, disclosure_id: str) -> str:
    async with harness.gateway.store.read() as conn:
        found = await disclosures.get(conn, disclosure_id)
    assert found is not None
    return found.status.value


async def _until(harness: Harness, disclosure_id: str, status: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await _status(harness, disclosure_id) == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still {await _status(harness, disclosure_id)}, not {status}")


async def _submit(harness: Harness) -> str:
    client = Client("education", frozenset({"KM-DFE-CIN-013"}))
    body = base_submission(agreement="KM-DFE-CIN-013", purpose="statutory_return")
    result = await harness.gateway.submit(
        client, DisclosureSubmission.model_validate(body).to_command()
    )
    assert isinstance(result, Queued), result
    return result.id


def _receipt(harness: Harness, disclosure_id: str, body: bytes, key: Any) -> bytes:
    return make_receipt(
        partner_id="dfe", council_id=harness.gateway.settings.org_id, message_id=disclosure_id,
        body_received=body, status="received", signing_key=key, now=TEST_NOW,
        receipt_id=f"dfe-{disclosure_id}",
    )  # fmt: skip


async def test_census_return_over_sftp_is_uploaded_then_receipted(journey: Journey) -> None:
    harness, sshd, service = journey
    disclosure_id = await _submit(harness)
    await _until(harness, disclosure_id, "dispatched")

    inbound = sshd.local(sshd.remote("inbound"))
    assert sorted(os.listdir(inbound)) == [
        f"{disclosure_id}.jwe",
        f"{disclosure_id}.manifest.json",
    ]  # fmt: skip  (the catalog's DfE asks for a manifest)
    body = (inbound / f"{disclosure_id}.jwe").read_bytes()
    enc_key, sig_key = harness.partner_keys["dfe"]
    claims = open_envelope(
        body, decryption_key=enc_key, council_jwks=harness.gateway.jwks(),
        expected_audience="dfe", now=TEST_NOW,
    )  # fmt: skip
    assert claims["jti"] == disclosure_id

    outbound = sshd.local(sshd.remote("outbound"))
    name = f"{disclosure_id}.receipt.jwt"
    (outbound / name).write_bytes(_receipt(harness, disclosure_id, body, sig_key))
    counts = await service.poll_sftp_receipts()
    assert counts["accepted"] == 1
    assert await _status(harness, disclosure_id) == "receipted"
    assert os.listdir(outbound / "archive") == [name]
    assert name not in os.listdir(outbound)
    metrics = harness.gateway.metrics.render().decode()
    assert 'gatehouse_channel_receipt_files_total{channel="sftp",verdict="accepted"} 1.0' in metrics
    assert (
        'gatehouse_channel_results_total{channel="sftp",outcome="dispatched",reason=""} 1.0'
        in metrics
    )


async def test_forged_receipt_is_quarantined_and_changes_nothing(journey: Journey) -> None:
    harness, sshd, service = journey
    disclosure_id = await _submit(harness)
    await _until(harness, disclosure_id, "dispatched")
    body = sshd.local(sshd.remote("inbound", f"{disclosure_id}.jwe")).read_bytes()
    _enc, not_dfe_key = harness.partner_keys["kent-police"]  # signed by someone else

    outbound = sshd.local(sshd.remote("outbound"))
    name = f"{disclosure_id}.receipt.jwt"
    (outbound / name).write_bytes(_receipt(harness, disclosure_id, body, not_dfe_key))
    counts = await service.poll_sftp_receipts()
    assert counts["refused"] == 1
    assert await _status(harness, disclosure_id) == "dispatched"
    assert os.listdir(outbound / "quarantine") == [name]

    # A receipt filed under another disclosure's name is refused too, even if genuine.
    _enc, sig_key = harness.partner_keys["dfe"]
    (outbound / "not-that-one.receipt.jwt").write_bytes(
        _receipt(harness, disclosure_id, body, sig_key)
    )
    assert (await service.poll_sftp_receipts())["refused"] == 1
    assert await _status(harness, disclosure_id) == "dispatched"
