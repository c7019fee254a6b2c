"""Run Debian's Dovecot 2.3 on a free loopback port as the council's receipts mailbox, for tests.

Each server has its own configuration directory, serves IMAP over implicit TLS only (imaps, with
a certificate from a test CA), authenticates one user from a passwd-file and keeps its mail in a
maildir. As root (CI) the mail is owned by Debian's `mail` account and Dovecot's own processes
run as its `dovecot`/`dovenull` accounts; the whole tree sits in a world-traversable directory
under /tmp, since those accounts must reach it. Not as root, every process runs as the user
running the tests.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.mesh_sandbox import SandboxPki, free_port, make_test_pki
from tests.services import IN_CI, port_open

DOVECOT = "/usr/sbin/dovecot"
IS_ROOT = os.geteuid() == 0
START_TIMEOUT = 15.0
USER = "receipts@medway-council.example"
PASSWORD = "receipts-test-password"  # a throwaway test account


def require_dovecot() -> None:
    """Dovecot (Debian: dovecot-imapd): skip on a laptop without it, fail under CI."""
    if os.access(DOVECOT, os.X_OK):
        return
    message = f"{DOVECOT} is not installed (apt-get install dovecot-imapd)"
    if IN_CI:
        pytest.fail(f"{message}; required under CI=true", pytrace=False)
    pytest.skip(message)


@dataclass
class Dovecot:
    """One running Dovecot; `maildir` is the user's mail on this disk."""

    workdir: Path
    pki: SandboxPki
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def maildir(self) -> Path:
        return self.workdir / "home" / "Maildir"

    @property
    def ca_bundle(self) -> Path:
        return self.pki.ca_cert

    def config(self) -> str:
        me = pwd.getpwuid(os.geteuid())
        mail = pwd.getpwnam("mail") if IS_ROOT else me
        internal, login = ("dovecot", "dovenull") if IS_ROOT else (me.pw_name, me.pw_name)
        return f"""
instance_name = gatehouse-test-{self.port}
base_dir = {self.workdir}/run
state_dir = {self.workdir}/state
log_path = {self.workdir}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = {mail.pw_uid}
ssl = required
ssl_cert = <{self.pki.server_cert}
ssl_key = <{self.pki.server_key}
disable_plaintext_auth = yes
auth_mechanisms = plain
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.workdir}/passwd
}}
userdb {{
  driver = static
  args = uid={mail.pw_uid} gid={mail.pw_gid} home={self.workdir}/home
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""

    def write(self) -> None:
        (self.workdir / "dovecot.conf").write_text(self.config())
        (self.workdir / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        home = self.workdir / "home"
        home.mkdir(mode=0o700)
        if IS_ROOT:
            mail = pwd.getpwnam("mail")
            os.chown(home, mail.pw_uid, mail.pw_gid)

    def start(self) -> None:
        log = (self.workdir / "stderr.log").open("ab")
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.workdir / "dovecot.conf")],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open("127.0.0.1", self.port, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not start: {self.log_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill this Dovecot's process group (its master and every process it forked): a
        graceful stop waits a second for clients, and there is nothing here to keep."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)
        self.process = None

    def log_text(self) -> str:
        text = ""
        for name in ("stderr.log", "dovecot.log"):
            with contextlib.suppress(OSError):
                text += (self.workdir / name).read_text(errors="replace")
        return text

    def messages(self, folder: str = "") -> list[bytes]:
        """The mail in a folder ("" = INBOX; else Dovecot's maildir++ `.Name`), oldest first."""
        base = self.maildir / f".{folder}" if folder else self.maildir
        folders = [base / sub for sub in ("new", "cur") if (base / sub).is_dir()]
        files = [path for folder_path in folders for path in folder_path.iterdir()]
        return [path.read_bytes() for path in sorted(files, key=lambda p: p.stat().st_mtime_ns)]


@contextlib.contextmanager
def running_dovecot() -> Iterator[Dovecot]:
    """A Dovecot serving imaps on loopback to USER/PASSWORD, with an empty INBOX."""
    require_dovecot()
    workdir = Path(tempfile.mkdtemp(prefix="gatehouse-dovecot-"))
    os.chmod(workdir, 0o755)  # noqa: S103 (Dovecot's unprivileged processes must reach their sockets)
    server = Dovecot(workdir, make_test_pki(workdir / "pki"))
    try:
        server.write()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
