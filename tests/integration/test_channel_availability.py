"""A partner is refused at submission when its channel's settings are missing, not retried."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.email import EmailChannel
from gateway.application.commands import Denied, Queued
from gateway.clients import Client
from gateway.http.schemas import DisclosureSubmission
from gateway.service import build_channels, deliverable_channels
from tests.gateway_support import build_harness, isolated_settings, lac_submission

CLIENT = Client("case-system", frozenset({"KM-NHS-LAC-001", "KM-DFE-CIN-013"}))


async def test_channels_are_deliverable_only_when_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = isolated_settings(tmp_path)
    monkeypatch.delenv("GATEWAY_MESH_MAILBOX", raising=False)
    assert deliverable_channels(settings) == {"webhook", "sftp"}
    monkeypatch.setenv("GATEWAY_MESH_MAILBOX", "X26ABC1")
    assert deliverable_channels(settings) == {"webhook", "sftp", "mesh"}
    with_smtp = isolated_settings(tmp_path, smtp_host="smtp.medway-council.example")
    assert deliverable_channels(with_smtp) == {"webhook", "sftp", "mesh", "email"}
    monkeypatch.delenv("GATEWAY_MESH_MAILBOX")  # building MESH needs all of GATEWAY_MESH_*
    assert set(build_channels(with_smtp)) == {"webhook", "sftp", "email"}
    assert set(build_channels(settings)) == {"webhook", "sftp"}
    direct = isolated_settings(
        tmp_path, smtp_delivery="direct", smtp_dns_servers="127.0.0.1:5353, 127.0.0.2:5353"
    )
    assert deliverable_channels(direct) == {"webhook", "sftp", "email"}
    email = build_channels(direct)["email"]
    assert isinstance(email, EmailChannel)
    assert email.options.direct
    assert (email.options.dns_servers, email.options.dns_port) == (("127.0.0.1", "127.0.0.2"), 5353)


@pytest.mark.parametrize("mesh_configured", [False, True])
async def test_mesh_partner_is_refused_at_submission_without_mesh_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mesh_configured: bool
) -> None:
    if mesh_configured:
        monkeypatch.setenv("GATEWAY_MESH_MAILBOX", "X26ABC1")
    else:
        monkeypatch.delenv("GATEWAY_MESH_MAILBOX", raising=False)
    harness = await build_harness(isolated_settings(tmp_path), deliverable=None)
    try:
        command = DisclosureSubmission.model_validate(lac_submission()).to_command()
        result = await harness.gateway.submit(CLIENT, command)
        if mesh_configured:
            assert isinstance(result, Queued)
        else:
            assert isinstance(result, Denied)
            assert result.reasons == ("partner_channel_unavailable",)
        dfe = lac_submission(agreement="KM-DFE-CIN-013", purpose="statutory_return")
        sftp = await harness.gateway.submit(
            CLIENT, DisclosureSubmission.model_validate(dfe).to_command()
        )
        assert isinstance(sftp, Queued)  # SFTP needs only the key it makes in the keys dir
    finally:
        await harness.gateway.close()
