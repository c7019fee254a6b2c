"""An IG officer suspends an agreement: a running gateway refuses within seconds, no restart."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.gateway_support import lac_submission
from tests.service_process import BIN, ServiceProcess, seeded_environment


def _post(url: str, token: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        url + "/v1/disclosures",
        data=json.dumps(lac_submission()).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _admin(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [str(BIN / "gateway-admin"), *args], env={**os.environ, **env}, check=True,
        capture_output=True, timeout=60,
    )  # fmt: skip


def _until(url: str, token: str, status: int, within: float = 15.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        code, _ = _post(url, token)
        if code == status:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"no {status} within {within}s")


def test_suspend_and_resume_take_effect_without_restart(tmp_path: Path) -> None:
    # An API process that takes MESH submissions is configured for MESH (it sends none).
    env, token = seeded_environment(tmp_path, GATEWAY_MESH_MAILBOX="X26ABC1")
    service = ServiceProcess(env, role="api", log=tmp_path / "gateway.log").start()
    try:
        assert _post(service.url, token)[0] == 202
        _admin(env, "agreements", "suspend", "KM-NHS-LAC-001", "--reason", "partner breach")
        waited = _until(service.url, token, 403)
        code, problem = _post(service.url, token)
        assert code == 403
        assert problem["reasons"] == ["agreement_not_active"]
        _admin(env, "agreements", "resume", "KM-NHS-LAC-001", "--reason", "breach closed")
        _until(service.url, token, 202)
    finally:
        assert service.stop() == 0
    assert waited < 10
