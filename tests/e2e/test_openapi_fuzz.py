"""Schemathesis drives the running service from its own OpenAPI document: no 500s, schema holds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.service_process import BIN, ServiceProcess, seeded_environment


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[dict[str, str], str]:
    """A database with the catalog, keys and a client; returns (env, token)."""
    return seeded_environment(tmp_path, GATEWAY_MAX_BODY_BYTES="65536")


def test_schemathesis_finds_no_server_errors(
    seeded: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, token = seeded
    service = ServiceProcess(env, role="api", log=tmp_path / "gateway.log").start()
    try:
        result = subprocess.run(
            [
                str(BIN / "schemathesis"), "run", f"{service.url}/v1/openapi.json",
                "--checks", "not_a_server_error,status_code_conformance,"
                "content_type_conformance,response_schema_conformance",
                "--max-examples", "25", "--generation-deterministic",
                "--header", f"Authorization: Bearer {token}",
                "--request-timeout", "10", "--workers", "1",
            ],
            capture_output=True, text=True, timeout=240, check=False,
            env={**service.env, "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks"},
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
    finally:
        assert service.stop() == 0
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout.lower()
    assert "Tested: 5" in result.stdout  # every operation of the public contract
