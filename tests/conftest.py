"""Fixtures every kind of test shares: the synthetic population, a migrated database,
and the settings of a hub on a copy of it with the demo policies.

The database backend is chosen for the whole run by ``KETENHUB_TEST_DATABASE``:

- ``sqlite`` (the default): a template file migrated once, copied for each test.
- ``postgresql``: one throw-away cluster for the session (``tests/pgcluster.py``), a
  template database migrated once, and for each test ``CREATE DATABASE t_<n> TEMPLATE``
  (a file copy inside the server: milliseconds), dropped after the test.

A test that holds for either backend takes ``database_url`` (or ``settings``, or the
``backend`` itself) and talks to the database with :func:`connect`. A test that is
about SQLite itself (its files, locks, journal, disk) is marked ``sqlite_only`` and
is skipped, with that reason, on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy.engine import make_url

from hub.db import migrate
from hub.demo.population import Population, make_population
from hub.settings import Settings
from tests.pgcluster import PgCluster, PgUnavailableError, pg_cluster, programs, require_or_skip

POLICIES = Path(__file__).resolve().parents[1] / "policies"
BACKEND_ENV = "KETENHUB_TEST_DATABASE"
BACKENDS = ("sqlite", "postgresql")


def backend_name() -> str:
    """The backend this run uses; a misspelt one stops the run rather than test SQLite."""
    name = os.environ.get(BACKEND_ENV, "sqlite").strip().lower() or "sqlite"
    if name not in BACKENDS:
        raise pytest.UsageError(f"{BACKEND_ENV}={name!r}: expected one of {', '.join(BACKENDS)}")
    return name


def pytest_configure(config: pytest.Config) -> None:
    backend_name()  # fail at start-up, not in the first fixture


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, run what touches the hub's database (uses the ``backend`` fixture,
    directly or through ``settings``/``hub``): the rest ran on SQLite, and is the same.
    A ``sqlite_only`` test among them is skipped with its reason."""
    if backend_name() != "postgresql":
        return
    kept, dropped = [], []
    for item in items:
        (kept if "backend" in getattr(item, "fixturenames", ()) else dropped).append(item)
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            why = marker.args[0] if marker.args else "the test is about SQLite itself"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {why}"))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> str:
    return f"ketenhub database backend: {backend_name()} (set {BACKEND_ENV})"


class Backend(Protocol):
    name: str

    def fresh(self, tmp_path: Path, *, lasting: bool = False) -> str:
        """The URL of a new database at the newest schema, for one test (for the whole
        session when ``lasting``: a module's fixture)."""

    def copy(self, url: str, tmp_path: Path) -> str:
        """The URL of a new database holding what the one at ``url`` holds (no one may
        be connected to it meanwhile)."""

    def empty(self, tmp_path: Path) -> str:
        """The URL of a new database with no schema at all (for migration tests)."""

    def drop_all(self) -> None:
        """Remove the databases made so far (``tmp_path`` removes SQLite's files)."""

    def close(self) -> None: ...


@dataclass
class SqliteBackend:
    template: Path
    name: str = "sqlite"

    def fresh(self, tmp_path: Path, *, lasting: bool = False) -> str:
        return self.copy(f"sqlite:///{self.template}", tmp_path)

    def copy(self, url: str, tmp_path: Path) -> str:
        target = _unused(tmp_path, "hub", ".db")
        shutil.copy(str(make_url(url).database), target)
        return f"sqlite:///{target}"

    def empty(self, tmp_path: Path) -> str:
        return f"sqlite:///{_unused(tmp_path, 'empty', '.db')}"

    def drop_all(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class PostgresBackend:
    """Databases made from the template one test ahead, in a thread of their own: a
    ``CREATE DATABASE`` costs a fifth of a second on a busy machine, about what the
    test before it spends waiting for the server anyway. Dropped the same way."""

    cluster: PgCluster
    template: str
    name: str = "postgresql"
    _serial: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _made: list[str] = field(default_factory=list)
    _worker: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1))
    _next: Future[str] | None = None
    _drops: list[Future[None]] = field(default_factory=list)
    _lasting: list[str] = field(default_factory=list)

    def fresh(self, tmp_path: Path, *, lasting: bool = False) -> str:
        ready = self._next or self._worker.submit(self._copy)
        self._next = self._worker.submit(self._copy)
        name = ready.result()
        (self._lasting if lasting else self._made).append(name)
        return self.cluster.url(name)

    def copy(self, url: str, tmp_path: Path) -> str:
        name = f"c_{next(self._serial)}"
        source = str(make_url(url).database)
        self.cluster.psql(f'CREATE DATABASE "{name}" TEMPLATE "{source}" {self._strategy}')
        self._made.append(name)
        return self.cluster.url(name)

    def empty(self, tmp_path: Path) -> str:
        # template0: no objects at all, not even what someone put in template1.
        name = f"e_{next(self._serial)}"
        self.cluster.create_database(name, template="template0")
        self._made.append(name)
        return self.cluster.url(name)

    def drop_all(self) -> None:
        """Drop the databases the test used (the cluster stays small); a failed drop
        fails a later test's teardown rather than pass unseen."""
        while self._made:
            self._drops.append(self._worker.submit(self.cluster.drop_database, self._made.pop()))
        for done in [d for d in self._drops if d.done()]:
            self._drops.remove(done)
            done.result()

    def close(self) -> None:
        self._made.extend(self._lasting)
        self.drop_all()
        if self._next is not None:
            self._worker.submit(self.cluster.drop_database, self._next.result())
        self._worker.shutdown(wait=True)
        for drop in self._drops:
            drop.result()

    def _copy(self) -> str:
        name = f"t_{next(self._serial)}"
        self.cluster.psql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}" {self._strategy}')
        return name

    @property
    def _strategy(self) -> str:
        """FILE_COPY copies the files rather than write the template through the WAL: a
        third faster for a small template. PostgreSQL 15 made WAL_LOG the default and
        added the option; older servers copy files anyway."""
        version = self.cluster.programs.parent.name
        return "STRATEGY FILE_COPY" if version.isdigit() and int(version) >= 15 else ""


def _unused(directory: Path, stem: str, suffix: str) -> Path:
    for n in itertools.count():
        candidate = directory / f"{stem}{'-' + str(n) if n else ''}{suffix}"
        if not candidate.exists():
            return candidate
    raise AssertionError  # pragma: no cover - count() does not end


@contextlib.contextmanager
def connect(url: str) -> Iterator[Any]:
    """A plain DBAPI connection to the hub's database at ``url``, for a test to read or
    damage it behind the hub's back; committed and closed on leaving.

    Both drivers' connections have ``execute(sql) -> cursor``; parameters differ
    (``?`` for sqlite3, ``%s`` for psycopg), so tests keep values in the SQL text or
    use :func:`placeholder`.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connection: Any = sqlite3.connect(str(parsed.database), timeout=30)
    else:
        import psycopg  # noqa: PLC0415 - the PostgreSQL driver only for a PostgreSQL run

        connection = psycopg.connect(
            host=parsed.host,
            port=parsed.port,
            user=parsed.username,
            password=parsed.password,
            dbname=parsed.database,
        )
    try:
        yield connection
        connection.commit()
    finally:
        connection.close()


def stored_bytes(url: str) -> bytes:
    """Everything the database at ``url`` holds, as the bytes someone with its disk (or
    a dump) reads: to prove that something is not stored in clear.

    SQLite: the file and its journal (close the hub's connections first). PostgreSQL:
    the database's own data files after a ``CHECKPOINT`` (values as stored, ``bytea``
    raw), and a ``pg_dump`` of it (text, also where the server compressed a long value).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        # The file and its journal (WAL): what was written but not yet checkpointed.
        return b"".join(p.read_bytes() for p in path.parent.glob(f"{path.name}*") if p.is_file())
    with connect(url) as raw:
        raw.autocommit = True
        raw.execute("CHECKPOINT")
        (data,) = raw.execute("SHOW data_directory").fetchone()
        (oid,) = raw.execute(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    files = sorted(p for p in (Path(data) / "base" / str(oid)).iterdir() if p.is_file())
    dump = subprocess.run(
        [
            str(programs() / "pg_dump"),
            *("-h", str(parsed.host), "-p", str(parsed.port), "-U", str(parsed.username)),
            "--data-only",
            str(parsed.database),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return b"".join(p.read_bytes() for p in files) + dump.stdout


def placeholder(url: str) -> str:
    """The DBAPI parameter marker of ``url``'s driver."""
    return "?" if make_url(url).get_backend_name() == "sqlite" else "%s"


@pytest.fixture(scope="session")
def population() -> Population:
    return make_population(2026)


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The run's database backend, with a template at the newest schema that tests copy
    rather than migrate their own."""
    if backend_name() == "sqlite":
        path = tmp_path_factory.mktemp("template") / "hub.db"
        migrate.upgrade(f"sqlite:///{path}")
        yield SqliteBackend(path)
        return
    try:
        with pg_cluster(database=None) as cluster:
            migrate.upgrade(cluster.create_database("ketenhub_template"))
            made = PostgresBackend(cluster, "ketenhub_template")
            try:
                yield made
            finally:
                made.close()
    except PgUnavailableError as exc:
        require_or_skip(str(exc))


@pytest.fixture
def fresh_databases(backend: Backend) -> Iterator[Backend]:
    """The backend, whose databases made during the test are dropped after it."""
    yield backend
    backend.drop_all()


@pytest.fixture
def database_url(tmp_path: Path, fresh_databases: Backend) -> str:
    """A database of its own for this test, at the newest schema."""
    return fresh_databases.fresh(tmp_path)


@pytest.fixture
def empty_database_url(tmp_path: Path, fresh_databases: Backend) -> str:
    """A database of its own for this test, with no schema yet."""
    return fresh_databases.empty(tmp_path)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        policy_dir=POLICIES,
        database_url=database_url,
        key_dir=tmp_path / "keys",
        public_url="http://hub.test",
        # In-process calls outrun any partner: a test of limits sets its own
        # (tests/api/test_rate_limit.py).
        rate_limit="off",
        token_rate_limit="off",
    )
