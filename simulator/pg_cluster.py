"""A throwaway PostgreSQL server for the receiver's tests and load test: initdb into a temporary folder,
pg_ctl start on a free loopback port, trust authentication, removed on stop.

PostgreSQL refuses to run as root; as root the server runs as the `postgres` system user (the Debian
package makes it) and the folder is handed to it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (scripts/setup.sh installs the `postgresql` package)."""


def find_server_bin() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if all((folder / name).exists() for name in SERVER_BINARIES):
            return folder
    return None


class PostgresCluster:
    def __init__(self, *, durable: bool = False, max_connections: int = 100) -> None:
        # Not durable (fsync off) for tests: they are about statements and races, not the disk.
        self.durable = durable
        self.max_connections = max_connections
        self.bin = find_server_bin()
        self.root: Path | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> str:
        if self.bin is None:
            raise PostgresUnavailable("no PostgreSQL server (initdb, pg_ctl, postgres) on PATH or in "
                                      "/usr/lib/postgresql/*/bin; run scripts/setup.sh (apt package postgresql)")
        shm = Path("/dev/shm")
        parent = shm if not self.durable and shm.is_dir() and os.access(shm, os.W_OK) else None
        self.root = Path(tempfile.mkdtemp(prefix="ballotbox-pg-", dir=parent))
        user = self._server_user()
        if user is not None:
            os.chown(self.root, user.pw_uid, user.pw_gid)
        data = self.root / "data"
        self._run([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-sync", "--no-instructions"], user)
        self.port = free_port()
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   f"-c max_connections={self.max_connections} -c shared_buffers=128MB")
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run([str(self.bin / "pg_ctl"), "start", "-D", str(data), "-w", "-t", "60", "-l",
                   str(self.root / "server.log"), "-o", options], user)
        return self.url

    def stop(self) -> None:
        if self.root is None:
            return
        data = self.root / "data"
        if (data / "postmaster.pid").exists() and self.bin is not None:
            subprocess.run([str(self.bin / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w"],
                           capture_output=True, user=self._server_user_name(), check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def _server_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no `postgres` user to run the server as; "
                                      "install the postgresql package or run as another user") from None

    def _server_user_name(self) -> str | None:
        user = self._server_user()
        return user.pw_name if user else None

    def _run(self, command: list[str], user: pwd.struct_passwd | None) -> None:
        done = subprocess.run(command, capture_output=True, text=True, user=user.pw_name if user else None,
                              cwd=self.root, check=False)
        if done.returncode != 0:
            log = self.root / "server.log" if self.root else None
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise PostgresUnavailable(f"{Path(command[0]).name} failed ({done.returncode}): "
                                      f"{done.stderr.strip()[-2000:]} {tail}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
