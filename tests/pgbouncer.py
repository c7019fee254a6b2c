"""A real PgBouncer (Debian's) in transaction mode on a free port, before the test PostgreSQL."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.service_process import free_port
from tests.services import PG_HOST, PG_PORT, PG_USER, port_open, require_command

PGBOUNCER = "pgbouncer"
_SEARCH = ("/usr/sbin", "/usr/bin", "/usr/local/bin")


def pgbouncer_command() -> str:
    """The pgbouncer binary (Debian installs it in /usr/sbin, often not on PATH)."""
    found = shutil.which(PGBOUNCER, path=os.pathsep.join((os.environ.get("PATH", ""), *_SEARCH)))
    if found is None:
        require_command(PGBOUNCER)  # skips here, fails under CI=true
        raise AssertionError("unreachable")
    return found


@contextmanager
def running_pgbouncer() -> Iterator[int]:
    """Start PgBouncer (pool_mode=transaction) with a generated ini; yield its port."""
    command = pgbouncer_command()
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="gh-pgbouncer-"))
    (folder / "userlist.txt").write_text(f'"{PG_USER}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={PG_HOST} port={PG_PORT}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'userlist.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 200\n"
        # Session state (prepared statements) must not leak to the next client of a server.
        "server_reset_query = DISCARD ALL\nserver_reset_query_always = 1\n"
        f"logfile = {folder / 'pgbouncer.log'}\npidfile = {folder / 'pgbouncer.pid'}\n"
    )
    argv = [command, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        for path in folder.iterdir():
            os.chown(path, account.pw_uid, account.pw_gid)
        argv += ["-u", "postgres"]
    os.chmod(folder, 0o755)  # noqa: S103 - PgBouncer's own account reads its generated ini
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", port, timeout=0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                log = (
                    (folder / "pgbouncer.log").read_text()
                    if (folder / "pgbouncer.log").exists()
                    else ""
                )
                raise RuntimeError(f"pgbouncer did not start: {output} {log}"[-2000:])
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        shutil.rmtree(folder, ignore_errors=True)
