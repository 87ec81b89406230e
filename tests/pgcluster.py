"""A throw-away PostgreSQL cluster: made, started, stopped and removed by the caller.

One implementation for the test suite (``tests/conftest.py``, the failure tests that
stop and restart the server) and the benchmarks (``bench/auditlog.py``).

Debian's ``postgresql`` package (``make test`` installs it when missing) puts the
server in ``/usr/lib/postgresql/<version>/bin``. ``initdb`` refuses to run as root, so
as root the server runs as the ``postgres`` user (or ``nobody``), in a fresh
directory of its own that holds the data and the Unix socket. It listens on
127.0.0.1 at a free port, with ``trust`` authentication: it is reachable from this
machine only, and lives as long as the test run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

TEST_SETTINGS: Mapping[str, str] = {
    # A quick server rather than a durable one: the machine crashing loses the cluster
    # anyway. Commits still reach the WAL before they return, so a server killed by a
    # test (``stop("immediate")``) keeps every commit it answered.
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
}


class PgUnavailableError(RuntimeError):
    """PostgreSQL's server programs are missing, or the cluster could not be started."""


@dataclass(frozen=True)
class PgCluster:
    root: Path
    port: int
    programs: Path
    prefix: tuple[str, ...]
    options: str

    def url(self, database: str = "ketenhub") -> str:
        """The hub's ``KETENHUB_DATABASE_URL`` for ``database`` (TCP on loopback)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "ketenhub") -> str:
        """The same for psycopg itself."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [
                str(self.programs / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-qAtc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.stdout

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """A new database (copied from ``template`` when given); its URL."""
        clause = f' TEMPLATE "{template}"' if template else ""
        self.psql(f'CREATE DATABASE "{name}"{clause}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def start(self) -> None:
        log = str(self.root / "server.log")
        self._ctl("-l", log, "-o", self.options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash as far as clients can tell; ``fast`` a clean stop."""
        self._ctl("-m", mode, "-w", "stop")

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.prefix, str(self.programs / "pg_ctl"), "-D", str(self.root / "data"), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )


def programs() -> Path:
    """The newest installed server's programs; ``PgUnavailableError`` when there is none."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise PgUnavailableError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "`make test` installs it (apt-get install postgresql)."
        )
    return found[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def pg_cluster(
    settings: Mapping[str, str] = TEST_SETTINGS, *, database: str | None = "ketenhub"
) -> Iterator[PgCluster]:
    """A started cluster (with an empty ``database`` unless None); removed on leaving."""
    bin_dir = programs()
    prefix, uid = _as_server_user()
    # Not under pytest's own directory (0700, root's): the server's user must reach it.
    root = Path(tempfile.mkdtemp(prefix="ketenhub-pg-"))
    port = free_port()
    options = " ".join(f"-c {k}={v}" for k, v in settings.items())
    options += f" -c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root}"
    cluster = PgCluster(root, port, bin_dir, prefix, options)
    started = False
    try:
        if uid is not None:
            os.chown(root, uid, -1)
        root.chmod(0o700)
        subprocess.run(
            [
                *prefix,
                str(bin_dir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        cluster.start()
        started = True
        if database is not None:
            cluster.create_database(database)
    except (subprocess.SubprocessError, OSError) as exc:
        if started:
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
        detail = getattr(exc, "stderr", b"") or b""
        text = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
        raise PgUnavailableError(
            f"a throw-away PostgreSQL could not be started: {type(exc).__name__} {text[-400:]}"
        ) from exc
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError):  # stopped by its test
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def _as_server_user() -> tuple[tuple[str, ...], int | None]:
    """The command prefix that runs as ``postgres`` (or ``nobody``) when we are root."""
    if os.geteuid() != 0:
        return (), None
    runuser = shutil.which("runuser")
    for user in ("postgres", "nobody"):
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            continue
        if runuser is None:
            break
        return (runuser, "-u", user, "--"), uid
    raise PgUnavailableError("as root, the server needs runuser and a postgres or nobody user")


REQUIRE_ENV = "KETENHUB_TEST_REQUIRE_POSTGRES"
"""Set by ``make test``, which installs PostgreSQL: a missing server fails, not skips."""


def require_or_skip(reason: str) -> NoReturn:
    import pytest  # noqa: PLC0415 - the benchmarks use this module without pytest

    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
