"""Helpers of the security suite: polling, log lines, a time-stamping authority."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `check` with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def log_lines(path: Path) -> list[str]:
    """Every non-empty line a service process wrote to stdout or stderr."""
    return [line for line in path.read_text(errors="replace").splitlines() if line.strip()]


def not_json(lines: list[str]) -> list[str]:
    """The lines that are not one JSON object each."""
    bad = []
    for line in lines:
        try:
            parsed: Any = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if not isinstance(parsed, dict) or "event" not in parsed:
            bad.append(line)
    return bad


@dataclass
class Tsa:
    """OpenSSL's `ts -reply` behind a small HTTP shim: its URL, and the PEM of its CA."""

    url: str
    ca: bytes
    ca_path: Path


def _openssl(*argv: str) -> None:
    subprocess.run(["openssl", *argv], check=True, capture_output=True)


def tsa_files(directory: Path) -> Path:
    """A throwaway CA, a time-stamping certificate it issued, and OpenSSL's TSA config."""
    directory.mkdir()
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl(
        *("req", "-x509", *ec, "-days", "1", "-subj", "/CN=gatehouse-test-tsa-ca"),
        *("-addext", "basicConstraints=critical,CA:true"),
        *("-addext", "keyUsage=critical,keyCertSign"),
        *("-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.crt")),
    )
    _openssl(
        *("req", "-new", *ec, "-subj", "/CN=gatehouse-test-tsa"),
        *("-keyout", str(directory / "tsa.key"), "-out", str(directory / "tsa.csr")),
    )
    (directory / "tsa.ext").write_text(
        "extendedKeyUsage=critical,timeStamping\nbasicConstraints=critical,CA:false\n"
    )
    _openssl(
        *("x509", "-req", "-in", str(directory / "tsa.csr"), "-days", "1", "-set_serial", "2"),
        *("-CA", str(directory / "ca.crt"), "-CAkey", str(directory / "ca.key")),
        *("-extfile", str(directory / "tsa.ext"), "-out", str(directory / "tsa.crt")),
    )
    (directory / "serial").write_text("01\n")
    config = directory / "tsa.cnf"
    config.write_text(
        "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\n"
        f"dir = {directory}\nserial = $dir/serial\ncrypto_device = builtin\n"
        "signer_cert = $dir/tsa.crt\nsigner_key = $dir/tsa.key\ncerts = $dir/tsa.crt\n"
        "signer_digest = sha256\ndefault_policy = 1.2.3.4.1\nother_policies = 1.2.3.4.5\n"
        "digests = sha256\naccuracy = secs:1\nordering = yes\ntsa_name = no\n"
        "ess_cert_id_chain = no\ness_cert_id_alg = sha256\n"
    )
    return config
