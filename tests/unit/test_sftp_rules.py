"""The SFTP channel's pure parts: reading a partner's target, classifying SSH and SFTP faults."""

from __future__ import annotations

from typing import Any

import asyncssh
import pytest
from pydantic import ValidationError

from adapters.sftp import SftpTarget, classify
from agreements.model import ChannelSpec
from gateway.application.channel import DeliveryOutcome

HOST_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDDi2k8omNjZqj+ZLa0N3VEz2Bxjz5B91602LDNxZqy/ a-comment"
)
GOOD: dict[str, Any] = {"host": "sftp.example", "path": "/in", "host_key": HOST_KEY}


def test_target_defaults() -> None:
    target = SftpTarget.from_mapping(GOOD)
    assert isinstance(target, SftpTarget)
    assert (target.port, target.username, target.manifest) == (22, None, False)
    assert target.receipts_path is target.archive_path is target.quarantine_path is None
    with_receipts = SftpTarget.from_mapping({**GOOD, "receipts_path": "/out"})
    assert isinstance(with_receipts, SftpTarget)
    assert (with_receipts.archive_path, with_receipts.quarantine_path) == (
        "/out/archive",
        "/out/quarantine",
    )


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"host": ""}, "host"),
        ({"path": "relative/dir"}, "path"),
        ({"port": 0}, "port"),
        ({"port": True}, "port"),
        ({"host_key": ""}, "host_key"),
        ({"host_key": "ssh-ed25519 not-base64!"}, "host_key"),
        ({"receipts_path": "out"}, "receipts_path"),
        ({"manifest": "yes"}, "manifest"),
        ({"username": ""}, "username"),
    ],
)
def test_bad_target_names_the_setting(change: dict[str, Any], setting: str) -> None:
    assert SftpTarget.from_mapping({**GOOD, **change}) == setting


def test_several_pinned_host_keys_are_all_trusted() -> None:
    target = SftpTarget.from_mapping({**GOOD, "host_key": f"{HOST_KEY}\n{HOST_KEY}\n"})
    assert isinstance(target, SftpTarget)
    assert len(target.host_keys) == 2


@pytest.mark.parametrize(
    ("error", "outcome", "reason"),
    [
        (asyncssh.HostKeyNotVerifiable("changed"), "permanent", "sftp_host_key_mismatch"),
        (asyncssh.PermissionDenied("no"), "permanent", "sftp_auth_failed"),
        (asyncssh.SFTPPermissionDenied("no"), "permanent", "sftp_permission_denied"),
        (asyncssh.SFTPNoSuchFile("gone"), "permanent", "sftp_path_missing"),
        (asyncssh.SFTPFailure("No space left on device"), "transient", "sftp_write_failed"),
        (asyncssh.SFTPConnectionLost("lost"), "transient", "partner_unreachable"),
        (asyncssh.ConnectionLost("lost"), "transient", "partner_unreachable"),
        (ConnectionRefusedError(), "transient", "partner_unreachable"),
        (TimeoutError(), "transient", "partner_timeout"),
    ],
)
def test_faults_are_classified(error: BaseException, outcome: str, reason: str) -> None:
    assert classify(error) == (DeliveryOutcome(outcome), reason)


def test_catalog_sftp_partner_must_pin_a_host_key() -> None:
    with pytest.raises(ValidationError, match="host_key"):
        ChannelSpec.model_validate({"type": "sftp", "host": "h.example", "path": "/in"})
    with pytest.raises(ValidationError):
        ChannelSpec.model_validate({"type": "sftp", **GOOD, "host_key": "not a key"})
    spec = ChannelSpec.model_validate({"type": "sftp", **GOOD, "port": 2222})
    assert spec.host_key == HOST_KEY
