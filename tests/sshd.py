"""Run Debian's OpenSSH `sshd` on a free loopback port as a partner's SFTP server, for tests.

Each server has its own config, host key and `authorized_keys`, and serves `internal-sftp` only.
As root (CI) it logs in a dedicated system user chrooted to a root-owned directory, as a
partner's server would; the chroot path must have no group- or world-writable component, so it
lives under GATEHOUSE_TEST_SFTP_ROOT (default /srv/gatehouse-sftp-tests), not /tmp. Not as root,
sshd can only log in the user running it: the same layout then sits in a plain per-test
directory, without chroot, and the remote paths carry that directory as their prefix.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.services import IN_CI, port_open

SSHD = "/usr/sbin/sshd"
TEST_USER = "gatehouse-sftp"
IS_ROOT = os.geteuid() == 0
CHROOT_BASE = Path(os.environ.get("GATEHOUSE_TEST_SFTP_ROOT", "/srv/gatehouse-sftp-tests"))
START_TIMEOUT = 15.0


def require_sshd() -> None:
    """OpenSSH's sshd (Debian: openssh-server): skip on a laptop without it, fail under CI."""
    if os.access(SSHD, os.X_OK) and shutil.which("ssh-keygen"):
        return
    message = f"{SSHD} is not installed (apt-get install openssh-server)"
    if IN_CI:
        pytest.fail(f"{message}; required under CI=true", pytrace=False)
    pytest.skip(message)


def require_root(why: str) -> None:
    """A case that needs root (mount a tmpfs): skip locally, fail under CI (which runs as root)."""
    if IS_ROOT:
        return
    if IN_CI:
        pytest.fail(f"{why} needs root; CI runs as root", pytrace=False)
    pytest.skip(f"{why} needs root")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ensure_test_user() -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(TEST_USER)
    # '*': no password login, yet not a "locked" account (which sshd refuses for keys too).
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--password", "*", TEST_USER],
        check=True,
    )  # fmt: skip
    return pwd.getpwnam(TEST_USER)


def host_key_pair(folder: Path, name: str = "host_ed25519") -> tuple[Path, str]:
    """A fresh ed25519 host key: its private file and its public line."""
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "partner-host", "-f", str(path)],
        check=True,
    )
    return path, (folder / f"{name}.pub").read_text().strip()


@dataclass
class Sshd:
    """One running sshd; `remote(...)` is a partner path, `local(...)` the file on this disk."""

    workdir: Path
    root: Path  # what "/" of the remote paths is on this disk (the chroot, or the prefix)
    prefix: str  # remote path prefix: "" in a chroot, else the per-test directory
    user: str
    uid: int
    port: int = field(default_factory=free_port)
    host_key_line: str = ""
    process: subprocess.Popen[bytes] | None = None
    mounts: list[Path] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.workdir / "sshd_config"

    @property
    def authorized_keys(self) -> Path:
        # sshd reads it as the user: beside the chroot, which that user can reach, not in /tmp.
        return self.root.parent / "authorized_keys"

    def remote(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts]) if self.prefix else "/" + "/".join(parts)

    def local(self, remote_path: str) -> Path:
        relative = remote_path.removeprefix(self.prefix).lstrip("/")
        return self.root / relative

    def make_dir(self, name: str, *, owner_is_user: bool = True, mode: int = 0o755) -> str:
        """A directory under the server's root; returns its remote path."""
        path = self.root / name
        path.mkdir(mode=mode, exist_ok=True)
        os.chmod(path, mode)
        if owner_is_user and IS_ROOT:
            os.chown(path, self.uid, -1)
        return self.remote(name)

    def mount_tmpfs(self, name: str, size: str) -> str:
        """A tiny filesystem the user can write to (to fill it up): a full partner disk."""
        path = self.root / name
        path.mkdir(exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755,uid={self.uid}", "tmpfs",
             str(path)],
            check=True,
        )  # fmt: skip
        self.mounts.append(path)
        return self.remote(name)

    def authorize(self, public_line: str) -> None:
        self.authorized_keys.write_text(public_line + "\n")
        os.chmod(self.authorized_keys, 0o644)

    def write_config(self) -> None:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.workdir / 'host_ed25519'}",
            f"PidFile {self.workdir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",  # the test's files live in a temporary directory
            "PermitRootLogin no",
            f"AllowUsers {self.user}",
            "Subsystem sftp internal-sftp",
            "ForceCommand internal-sftp",
            "LogLevel VERBOSE",
        ]
        if IS_ROOT:
            lines.append(f"ChrootDirectory {self.root}")
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start sshd (again, after `stop`, on the same port with the same host key)."""
        if IS_ROOT:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation dir
        log = (self.workdir / "sshd.log").open("ab")
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config_path)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open("127.0.0.1", self.port, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {self.log_text()[-2000:]}")
            time.sleep(0.05)

    def children(self) -> list[int]:
        """The per-connection processes of this sshd (ours: it was started here)."""
        if self.process is None:
            return []
        found: list[int] = []
        frontier = [self.process.pid]
        while frontier:
            parent = frontier.pop()
            path = Path(f"/proc/{parent}/task/{parent}/children")
            with contextlib.suppress(OSError):
                kids = [int(pid) for pid in path.read_text().split()]
                found.extend(kids)
                frontier.extend(kids)
        return found

    def drop_connections(self) -> None:
        """Kill every open session at once, as a network failure or a partner reboot would."""
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop sshd and every session it holds."""
        if self.process is None:
            return
        self.drop_connections()
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def log_text(self) -> str:
        return (self.workdir / "sshd.log").read_text(errors="replace")

    def cleanup(self) -> None:
        self.stop()
        for mount in self.mounts:
            subprocess.run(["umount", "-l", str(mount)], check=False)
        if IS_ROOT:
            shutil.rmtree(self.root.parent, ignore_errors=True)


@contextlib.contextmanager
def running_sshd(workdir: Path, client_public_line: str) -> Iterator[Sshd]:
    """An sshd serving SFTP to the council's key, with `inbound` and `outbound` directories."""
    require_sshd()
    workdir.mkdir(parents=True, exist_ok=True)
    if IS_ROOT:
        account = _ensure_test_user()
        CHROOT_BASE.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(CHROOT_BASE, 0o755)  # noqa: S103 (sshd refuses a chroot under a writable dir)
        base = CHROOT_BASE / uuid.uuid4().hex[:12]
        base.mkdir(mode=0o755)
        root = base / "root"
        root.mkdir(mode=0o755)
        server = Sshd(workdir, root, "", account.pw_name, account.pw_uid)
    else:
        root = workdir / "partner"
        root.mkdir(mode=0o755)
        me = pwd.getpwuid(os.geteuid())
        server = Sshd(workdir, root, str(root), me.pw_name, me.pw_uid)
    try:
        _key, server.host_key_line = host_key_pair(workdir)
        server.authorize(client_public_line)
        server.make_dir("inbound")
        server.make_dir("outbound")
        server.write_config()
        server.start()
        yield server
    finally:
        server.cleanup()
