"""The ``Database`` port: short transactions as functions, writes group-committed.

A transaction is a plain function of a unit of work (see ``hub.ports.Database``);
its statements go straight to the DBAPI driver (``hub.db.repositories``,
``hub.db.audit_log``).

Where it runs depends on what a statement costs:

- **SQLite** is a library in this process: a statement costs microseconds, less
  than a hop to a thread and back. Reads and write transactions run on the event
  loop itself; only what can wait (``BEGIN IMMEDIATE``, which may wait for another
  process's write lock, and ``COMMIT``, which waits for the disk) is sent to a thread.
- **PostgreSQL** is a network peer: every transaction runs in a worker thread.

Writes are *group-committed*. ``write`` queues the transaction; one committer takes
every transaction queued when it comes round, runs them one after the other in a
single database transaction (each inside a savepoint, so one that fails is undone
alone), commits once, and only then settles their futures. While a commit waits for
the disk, the next group gathers. The audit chain stays linear because there is one
committer per process; processes queue on the database's own locks (see
``SqlAudit.append``). A transaction that is settled is durable; one that a failed
commit lost is answered ``503`` and was never visible to a client.

``scan`` is for long reads (verifying the whole log): a thread and a connection of
its own, so the event loop and the other transactions go on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from hub.db.participant_keys import SqlErasures, SqlParticipantKeys
from hub.db.repositories import (
    Sql,
    SqlAssertionReplay,
    SqlAudit,
    SqlClients,
    SqlConsents,
    SqlIdempotency,
)
from hub.db.write_queue import WriteQueue
from hub.domain.errors import ServiceUnavailableError
from hub.ports import SilentTelemetry, Telemetry, UnitOfWork

T = TypeVar("T")

BUSY_TIMEOUT_S = 10.0
"""How long a write waits for another process's SQLite write lock before answering 503."""
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # FULL: a committed audit record survives a power cut, not just a crash.
    "PRAGMA synchronous=FULL",
    f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}",
    "PRAGMA foreign_keys=ON",
)
_PG_CONNECT_TIMEOUT_S = 10
"""A PostgreSQL server that does not answer (a dropped packet, not a refusal) costs this."""
_DATA_TABLES = ("audit_events", "consents", "clients")
_THREADS = 4
"""Worker threads: PostgreSQL transactions, SQLite's waits and scans."""
MAX_BATCH = 256
"""Transactions per group commit: bounds how long the first one in a group waits."""


_DRIVER_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError, sqlite3.Error)


def _database_errors() -> tuple[type[BaseException], ...]:
    """What the database and its drivers raise. psycopg's errors only once psycopg is
    loaded, which it is before it can raise one: importing it costs ``ketenhub audit
    verify`` on SQLite a tenth of a second for nothing. (An ``except`` clause evaluates
    this only when an exception reaches it.)"""
    psycopg = sys.modules.get("psycopg")
    return _DRIVER_ERRORS if psycopg is None else (*_DRIVER_ERRORS, psycopg.Error)


def sync_url(url: str) -> str:
    """The blocking driver for a contract URL (``sqlite:///path``, ``postgresql+psycopg://``)."""
    parsed = make_url(url)
    if parsed.drivername in {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}:
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    if parsed.drivername in {"postgresql", "postgresql+psycopg"}:
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in {None, "", ":memory:"}:
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str) -> Engine:
    """The engine that makes and pools the hub's DBAPI connections."""
    ensure_sqlite_dir(url)
    target = sync_url(url)
    pool = {"pool_size": _THREADS + 2, "max_overflow": _THREADS}
    if make_url(target).get_backend_name() != "sqlite":
        # pre_ping: connections a restarted server dropped are replaced, not handed out.
        return sa_create_engine(
            target,
            pool_pre_ping=True,
            connect_args={"connect_timeout": _PG_CONNECT_TIMEOUT_S},
            **pool,
        )
    engine = sa_create_engine(target, connect_args={"check_same_thread": False}, **pool)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Transactions are begun explicitly (BEGIN IMMEDIATE for writers), not by pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # SQLAlchemy connections (Alembic) on this engine begin as pysqlite would have.
        conn.exec_driver_sql("BEGIN")

    return engine


def check_reachable(url: str) -> None:
    """Connect once; ``ServiceUnavailableError`` naming the database (no password) if not.

    For the start of ``ketenhub serve``: the operator reads the driver's own words there.
    """
    engine = create_engine(url)
    try:
        with engine.connect():
            pass
    except _database_errors() as exc:
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).strip().splitlines() or [""])[0]
        where = make_url(url).render_as_string(hide_password=True)
        raise ServiceUnavailableError(
            "storage-unavailable",
            f"The database {where} cannot be reached ({type(cause).__name__}: {first_line}). "
            "Check KETENHUB_DATABASE_URL and that the database server is running.",
        ) from None
    finally:
        engine.dispose()


class SqlUnitOfWork:
    """The repositories of one transaction, each made when first used: most
    transactions touch one or two of them, and there is one per request."""

    def __init__(self, sql: Sql) -> None:
        self.sql = sql

    @cached_property
    def consents(self) -> SqlConsents:
        return SqlConsents(self.sql)

    @cached_property
    def audit(self) -> SqlAudit:
        return SqlAudit(self.sql)

    @cached_property
    def idempotency(self) -> SqlIdempotency:
        return SqlIdempotency(self.sql)

    @cached_property
    def clients(self) -> SqlClients:
        return SqlClients(self.sql)

    @cached_property
    def assertions(self) -> SqlAssertionReplay:
        return SqlAssertionReplay(self.sql)

    @cached_property
    def participant_keys(self) -> SqlParticipantKeys:
        return SqlParticipantKeys(self.sql)

    @cached_property
    def erasures(self) -> SqlErasures:
        return SqlErasures(self.sql)

    # The audit chain's place in a write group (``_run_group``): without making the
    # repository when no job used it.

    def audit_position(self) -> tuple[int, str] | None:
        audit: SqlAudit | None = self.__dict__.get("audit")
        return None if audit is None else audit.position()

    def audit_restore(self, position: tuple[int, str] | None) -> None:
        audit: SqlAudit | None = self.__dict__.get("audit")
        if audit is not None:
            audit.restore(position)

    def finish(self) -> None:
        """Before the commit: what the repositories kept for it (the audit head)."""
        audit: SqlAudit | None = self.__dict__.get("audit")
        if audit is not None:
            audit.finish()


@dataclass(slots=True)
class _Job:
    work: Callable[[UnitOfWork], Any]
    future: asyncio.Future[Any]
    ok: bool = False
    outcome: Any = None


class _Committed(NamedTuple):
    """What one group commit reports: ``Telemetry.write_group_committed``'s arguments."""

    transactions: int
    turn_seconds: float
    commit_seconds: float


class SqlDatabase:
    def __init__(
        self,
        engine: Engine,
        *,
        busy_timeout_s: float | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._engine = engine
        self._telemetry: Telemetry = telemetry or SilentTelemetry()
        wait = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self._busy_timeout_ms = max(0, int(wait * 1000))
        self._dialect = engine.dialect.name
        self._inline = self._dialect == "sqlite"
        self._threads = ThreadPoolExecutor(_THREADS, thread_name_prefix="ketenhub-db")
        self._pending: list[_Job] = []
        self._committer: asyncio.Task[None] | None = None
        self._reader: Any = None
        self._writer: Any = None
        self._closed = False
        self._file = _sqlite_file(engine)
        self._file_id: tuple[int, int] | None = None
        self._turns = None if self._file is None else WriteQueue(self._file)

    @property
    def engine(self) -> Engine:
        return self._engine

    def file_replaced(self) -> bool:
        """Whether the SQLite file this hub writes to was removed or replaced meanwhile.

        Connections opened before keep using the old file's inode, so without this
        check commits would go on into a file nobody will ever open again. Always
        False for PostgreSQL, and before the first write.
        """
        return (
            self._file is not None
            and self._file_id is not None
            and _file_identity(self._file) != self._file_id
        )

    def _check_file(self) -> None:
        if self.file_replaced():
            raise sqlite3.OperationalError("the database file was removed or replaced")

    # -- reads ------------------------------------------------------------------

    async def read(self, work: Callable[[UnitOfWork], T]) -> T:
        if self._closed:
            raise _unavailable()
        if self._inline:
            try:
                if self._reader is None:
                    self._reader = self._engine.raw_connection()
                return _read(self._reader, self._dialect, work)
            except _database_errors() as exc:
                _discard(self._reader)
                self._reader = None
                raise _unavailable() from exc
        return await self._in_thread(self._read_pooled, work)

    async def holds_data(self) -> bool:
        """Whether any audit record, consent or client is stored (the keys must exist then)."""

        def look(uow: UnitOfWork) -> bool:
            assert isinstance(uow, SqlUnitOfWork)
            return any(uow.sql.row(f"SELECT 1 FROM {table} LIMIT 1") for table in _DATA_TABLES)  # noqa: S608 - constant names

        return await self.read(look)

    async def scan(self, work: Callable[[UnitOfWork], T]) -> T:
        if self._closed:
            raise _unavailable()
        return await self._in_thread(self._read_pooled, work)

    def _read_pooled(self, work: Callable[[UnitOfWork], T]) -> T:
        try:
            connection = self._engine.raw_connection()
            try:
                return _read(connection, self._dialect, work)
            finally:
                connection.close()
        except _database_errors() as exc:
            raise _unavailable() from exc

    # -- writes -----------------------------------------------------------------

    async def write(self, work: Callable[[UnitOfWork], T]) -> T:
        if self._closed:
            raise _unavailable()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(work, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_groups())
        return await future

    async def _commit_groups(self) -> None:
        while self._pending:
            group = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            committed: _Committed | None = None
            try:
                if self._inline:
                    committed = await self._commit_inline(group)
                else:
                    committed = await self._in_thread(self._commit_pooled, group)
            except _database_errors() as exc:
                _lost(group, exc)
            except BaseException as exc:  # the committer must settle every future
                _lost(group, exc)
                if not isinstance(exc, Exception):
                    raise
            finally:
                for job in group:
                    _settle(job)
            if committed is not None:
                # After the answers, and never the committer's end: a metric is not worth one.
                with contextlib.suppress(Exception):
                    self._telemetry.write_group_committed(*committed)

    async def _commit_inline(self, group: list[_Job]) -> _Committed:
        if self._writer is None:
            self._writer = await self._in_thread(self._engine.raw_connection)
            self._writer.cursor().execute("PRAGMA busy_timeout=0")
            if self._file is not None:
                self._file_id = _file_identity(self._file)
        writer = self._writer
        waiting = time.perf_counter()
        queued = await self._take_turn()
        try:
            try:
                writer.cursor().execute("BEGIN IMMEDIATE")  # free unless another process writes
            except sqlite3.OperationalError:
                await self._in_thread(_begin_waiting, writer, self._busy_timeout_ms)
            began = time.perf_counter()
            try:
                ran = _run_group(Sql(writer, self._dialect), group)
                self._check_file()  # one stat a group: a commit would be lost otherwise
                committing = time.perf_counter()
                await self._in_thread(writer.commit)
                return _Committed(ran, began - waiting, time.perf_counter() - committing)
            except BaseException:
                await self._in_thread(writer.rollback)
                raise
        except _database_errors():
            _discard(writer)  # start the next group on a fresh connection
            self._writer = None
            raise
        finally:
            if queued and self._turns is not None:
                self._turns.release()

    async def _take_turn(self) -> bool:
        """This process's turn among the hub processes writing the file
        (``hub.db.write_queue``); False when the group goes without it."""
        if self._turns is None:
            return False
        try:
            return await self._turns.take(self._busy_timeout_ms / 1000)
        except TimeoutError:
            raise sqlite3.OperationalError(
                "database is locked: another process kept its write turn too long"
            ) from None

    def _commit_pooled(self, group: list[_Job]) -> _Committed:
        connection = self._engine.raw_connection()
        try:
            try:
                sql = Sql(connection, self._dialect)
                waiting = time.perf_counter()
                # The timeouts and the head's lock in one round trip (a simple query, so
                # the values are written into it: two ints this process made).
                cursor = sql.run(
                    _GROUP_TIMEOUTS.format(
                        wait=max(1, self._busy_timeout_ms),
                        idle=max(MIN_IDLE_IN_GROUP_MS, self._busy_timeout_ms),
                    )
                    + "; "
                    + _LOCK_HEAD_FIRST
                )
                cursor.nextset()
                head = cursor.fetchone()
                began = time.perf_counter()
                ran = _run_group(sql, group, None if head is None else (int(head[0]), str(head[1])))
                committing = time.perf_counter()
                connection.commit()
                return _Committed(ran, began - waiting, time.perf_counter() - committing)
            except BaseException:
                connection.rollback()
                raise
        finally:
            connection.close()

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    async def dispose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._committer is not None:
                await asyncio.gather(self._committer, return_exceptions=True)
            _discard(self._reader)
            self._reader = None
            _discard(self._writer)
            self._writer = None
            if self._turns is not None:
                self._turns.close()
            self._threads.shutdown(wait=True)
        self._engine.dispose()


_GROUP_TIMEOUTS = (
    "SELECT set_config('lock_timeout', '{wait:d}', true), "
    "set_config('idle_in_transaction_session_timeout', '{idle:d}', true)"
)
"""For this group's transaction only, the ``busy_timeout`` SQLite writers have, both ways.

``lock_timeout``: a group waits at most that long for another process's, then answers
``503`` (PostgreSQL would wait for ever). ``idle_in_transaction_session_timeout``: a
worker that stops in the middle of its group while holding the audit head (frozen,
paused, its host gone: nothing PostgreSQL would notice for hours) loses its session
after that long (but never under ``MIN_IDLE_IN_GROUP_MS``), its group is undone, and
the other workers go on. A worker that runs does a job's Python work between two
statements in well under a millisecond, unless its machine is starved of CPU.
"""
MIN_IDLE_IN_GROUP_MS = 2000
"""A worker descheduled for a moment on a loaded machine (its thread waiting for the
GIL or a core) is not a frozen one: a busy timeout set lower than this (tests use
0.2 s) must not cost a running group its session."""
_LOCK_HEAD_FIRST = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
"""PostgreSQL's ``BEGIN IMMEDIATE``: a group takes the audit head's row lock before any other.

A group's jobs lock rows in the order they come: an exchange takes its consents
``FOR SHARE`` and then the head (``SqlAudit.append``), a revoke updates a consent.
Two processes' groups that met in opposite orders would deadlock, and PostgreSQL
would end it after ``deadlock_timeout`` (1 s) by failing one whole group: ``503`` to
every request in it. With the head taken first, a group that holds any other row lock
holds the head too, so no cycle can form. It serialises almost nothing new: groups of
different processes already queued on the head from their first append to their
commit (docs/scale-out.md). The group's appends start from the head it read here
(``SqlAudit.held``).
"""


def _sqlite_file(engine: Engine) -> Path | None:
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in {None, "", ":memory:"}:
        return None
    return Path(str(url.database))


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _begin_waiting(connection: Any, timeout_ms: int) -> None:
    """``BEGIN IMMEDIATE`` that waits (up to ``timeout_ms``) for another process's writer.

    When it gives up, the group is answered ``503`` (``SQLITE_BUSY`` is a database error).
    """
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={timeout_ms}")
    try:
        cursor.execute("BEGIN IMMEDIATE")
    finally:
        cursor.execute("PRAGMA busy_timeout=0")


def _read(connection: Any, dialect: str, work: Callable[[UnitOfWork], T]) -> T:
    sql = Sql(connection, dialect)
    if dialect != "postgresql":
        sql.run("BEGIN")  # one snapshot for every statement of the read
        try:
            return work(SqlUnitOfWork(sql))
        finally:
            sql.driver.rollback()
    # PostgreSQL (READ COMMITTED) gives each statement a snapshot of its own, in a
    # transaction or not: without one, a read saves the BEGIN and ROLLBACK round trips.
    driver = sql.driver
    driver.autocommit = True
    try:
        return work(SqlUnitOfWork(sql))
    finally:
        driver.autocommit = False  # as the pool hands connections out


def _run_group(sql: Sql, group: list[_Job], head: tuple[int, str] | None = None) -> int:
    """Each job in a savepoint; a job's own error undoes it alone, a database error all.
    Returns how many jobs it ran (not those whose callers had gone before they began).

    ``head``: the audit head's seq and hash as the group's lock statement read them.

    One savepoint moves along the group: set before the first job, moved past each job
    that succeeded (``RELEASE`` then ``SAVEPOINT``: one round trip on PostgreSQL, a
    simple query), and rolled back to (not released) when a job fails, so the next job
    starts from it as it is. The commit releases the last one. The audit head is written
    once, after the last job (``SqlAudit.finish``).
    """
    uow = SqlUnitOfWork(sql)
    if head is not None:
        uow.audit.held(*head)
    opened = moved = False  # the savepoint is set; a job succeeded since it was
    ran = 0
    for job in group:
        if job.future.done():
            continue  # its caller is gone (cancelled) before it began: skip it
        ran += 1
        if not opened:
            sql.run("SAVEPOINT job")
            opened = True
        elif moved:
            if sql.postgres:
                sql.run("RELEASE SAVEPOINT job; SAVEPOINT job")  # a simple query: no parameters
            else:
                sql.run("RELEASE SAVEPOINT job")
                sql.run("SAVEPOINT job")
        position = uow.audit_position()
        try:
            job.outcome = job.work(uow)
        except _database_errors():
            raise  # the transaction is in doubt
        except Exception as exc:  # noqa: BLE001 - handed to the job's caller
            sql.run("ROLLBACK TO SAVEPOINT job")  # kept: the next job starts from it
            uow.audit_restore(position)
            job.outcome = exc
            moved = False
            continue
        job.ok = moved = True
    uow.finish()
    return ran


def _lost(group: list[_Job], cause: BaseException) -> None:
    """Nothing of ``group`` is durable: a job that had succeeded must not answer."""
    for job in group:
        refused_alone = isinstance(job.outcome, Exception) and not isinstance(
            job.outcome, _database_errors()
        )
        if job.ok or not refused_alone:
            error = _unavailable()
            error.__cause__ = cause
            job.ok, job.outcome = False, error


def _settle(job: _Job) -> None:
    if job.future.done():  # its caller went away (cancelled): the result is moot
        return
    if job.ok:
        job.future.set_result(job.outcome)
    else:
        job.future.set_exception(job.outcome)


def _discard(connection: Any) -> None:
    if connection is not None:
        with contextlib.suppress(*_database_errors()):
            connection.invalidate() if hasattr(connection, "invalidate") else connection.close()


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "storage-unavailable", "The hub's database could not be reached or written."
    )
