"""A throw-away PostgreSQL cluster for the benchmarks: made, started, stopped and removed.

Debian's packages (``make deps-bench`` installs them) put the server in
``/usr/lib/postgresql/<version>/bin``. ``initdb`` refuses to run as root, so as root
the server runs as the ``postgres`` user, in a fresh directory of its own that holds
the data and the Unix socket; it listens on no TCP address. ``fsync`` stays on: the
figures are those of a durable database.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import free_port

SETTINGS = {
    # A server sized for this 2-core, 24 GiB machine rather than PostgreSQL's defaults.
    "shared_buffers": "2GB",
    "effective_cache_size": "12GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "fsync": "on",
    # No replicas: a table emptied and filled in one transaction (the bench's COPY)
    # is then written without WAL, and made durable by syncing its files at commit.
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "listen_addresses": "''",
}


@dataclass(frozen=True)
class PgCluster:
    root: Path
    port: int
    database: str

    @property
    def url(self) -> str:
        """The hub's ``KETENHUB_DATABASE_URL`` for this cluster's database."""
        return f"postgresql+psycopg://postgres@/{self.database}?host={self.root}&port={self.port}"

    @property
    def conninfo(self) -> str:
        """The same for psycopg itself."""
        return f"host={self.root} port={self.port} user=postgres dbname={self.database}"


def bindir() -> Path:
    """The newest installed server's programs; a clear error when there is none."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "`make deps-bench` installs it (apt-get install postgresql)."
        )
    return found[-1].parent


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """The command prefix that runs as ``postgres`` when we are root, with its ids."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root needs the `postgres` user to run the server") from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root needs `runuser` to run the server as postgres")
    return [runuser, "-u", "postgres", "--"], user.pw_uid, user.pw_gid


@contextmanager
def pg_cluster(database: str = "ketenhub") -> Iterator[PgCluster]:
    """A started cluster with an empty ``database``; stopped and removed on leaving."""
    programs = bindir()
    prefix, uid, gid = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="ketenhub-pg-"))
    data = root / "data"
    started = False
    try:
        if uid is not None and gid is not None:
            os.chown(root, uid, gid)
        root.chmod(0o700)

        def run(*args: str) -> None:
            subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)

        run(
            str(programs / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        )
        port = free_port()
        options = " ".join(f"-c {k}={v}" for k, v in SETTINGS.items())
        options += f" -c port={port} -c unix_socket_directories={root}"
        run(
            str(programs / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        started = True
        run(
            str(programs / "psql"),
            "-h",
            str(root),
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-qc",
            f'CREATE DATABASE "{database}"',
        )
        yield PgCluster(root, port, database)
    finally:
        if started:
            subprocess.run(
                [*prefix, str(programs / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                check=False,
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)
