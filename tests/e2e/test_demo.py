"""`gateway demo` runs the whole journey and reports every accepted disclosure receipted."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.service_process import BIN


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "gateway"), "demo"], capture_output=True, text=True, timeout=180,
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert "audit chain: verified" in out
    assert out.count("receipted") >= 8
    # One partner receives by email (aiosmtpd, STARTTLS) and one by SFTP (asyncssh), in-process.
    assert "partner probation-kss (email): 1 envelope(s) received" in out
    assert "partner dfe (sftp): 1 envelope(s) received" in out
    for partner in ("probation-kss (email)", "dfe (sftp)"):
        [line] = [line for line in out.splitlines() if line.startswith(f"partner {partner}")]
        assert line.endswith("; disclosures receipted"), line
    for code in ("purpose_not_permitted", "agreement_not_active", "national_data_opt_out"):
        assert code in out
    assert "Traceback" not in result.stderr
