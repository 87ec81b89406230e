"""The ``Database`` port: whole transactions in worker threads, writes group-committed.

A transaction is a plain function of a unit of work (see ``hub.ports.Database``).
It runs on blocking SQLAlchemy Core (sqlite3 or psycopg) in one thread hop, so a
transaction never waits for the event loop between two statements, and the event
loop never waits for the database.

Writes go to one writer thread per process. It takes every transaction that is
queued when it comes round, runs them one after the other in a single database
transaction (each inside a savepoint, so one that fails is undone alone), commits
once, and only then settles their futures: *group commit*. The log stays linear
because the writer is the only one in this process; other processes queue on the
database's own locks (see ``SqlAudit.append``). A transaction that is settled has
been made durable; one that the commit lost is answered ``503`` and was never
visible to a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from hub.db.repositories import (
    SqlAssertionReplay,
    SqlAudit,
    SqlClients,
    SqlConsents,
    SqlIdempotency,
)
from hub.domain.errors import ServiceUnavailableError
from hub.ports import UnitOfWork

T = TypeVar("T")

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # FULL: a committed audit record survives a power cut, not just a crash.
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
)
_READERS = 4
"""Reader threads (and pooled connections); the writer has one more."""
MAX_BATCH = 256
"""Transactions per group commit: bounds how long the first one in a batch waits."""
_DATABASE_ERRORS = (SQLAlchemyError, OSError)


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
    ensure_sqlite_dir(url)
    target = sync_url(url)
    if make_url(target).get_backend_name() == "sqlite":
        engine = sa_create_engine(
            target,
            pool_size=_READERS + 1,
            max_overflow=_READERS,
            connect_args={"check_same_thread": False},
        )
        _configure_sqlite(engine)
        return engine
    return sa_create_engine(target, pool_size=_READERS + 1, max_overflow=_READERS)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot say IMMEDIATE;
    # take it over, as SQLAlchemy's SQLite documentation recommends.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # A writer takes the write lock up front, so it waits (busy_timeout) instead
        # of failing when another process committed after its first read.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


class SqlUnitOfWork:
    def __init__(self, conn: Connection) -> None:
        self.consents = SqlConsents(conn)
        self.audit = SqlAudit(conn)
        self.idempotency = SqlIdempotency(conn)
        self.clients = SqlClients(conn)
        self.assertions = SqlAssertionReplay(conn)


@dataclass(slots=True)
class _Job:
    work: Callable[[UnitOfWork], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    ok: bool = False
    outcome: Any = None


class SqlDatabase:
    """Readers run on a small thread pool; writers queue for the one writer thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="ketenhub-read")
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="ketenhub-write", daemon=True)
        self._writer.start()
        self._closed = False

    @property
    def engine(self) -> Engine:
        return self._engine

    async def read(self, work: Callable[[UnitOfWork], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read, work)

    def _read(self, work: Callable[[UnitOfWork], T]) -> T:
        try:
            with self._engine.connect() as conn:
                return work(SqlUnitOfWork(conn))
        except _DATABASE_ERRORS as exc:
            raise _unavailable() from exc

    async def write(self, work: Callable[[UnitOfWork], T]) -> T:
        if self._closed:
            raise _unavailable()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(work, future, loop))
        return await future

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(job)
            self._commit(batch)
            for job in batch:
                _settle(job)

    def _commit(self, batch: list[_Job]) -> None:
        """Run ``batch`` in one transaction; every job ends with ``ok`` and ``outcome`` set."""
        try:
            with self._engine.connect() as conn:
                if self._sqlite:
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE")  # noqa: PLW2901
                uow = SqlUnitOfWork(conn)
                for job in batch:
                    _run_in_savepoint(conn, uow, job)
                conn.commit()
        except _DATABASE_ERRORS as exc:
            # Nothing of this batch is durable: a job that had succeeded must not answer.
            for job in batch:
                if job.ok or not _refused_alone(job):
                    job.ok, job.outcome = False, _chained(_unavailable(), exc)
        except BaseException as exc:  # noqa: BLE001 - the writer thread must outlive any job
            for job in batch:
                if job.ok or not _refused_alone(job):
                    job.ok, job.outcome = False, _chained(_unavailable(), exc)

    async def dispose(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join)
            self._readers.shutdown(wait=True)
        self._engine.dispose()


def _run_in_savepoint(conn: Connection, uow: SqlUnitOfWork, job: _Job) -> None:
    conn.exec_driver_sql("SAVEPOINT job")
    try:
        job.outcome = job.work(uow)
    except _DATABASE_ERRORS:
        raise  # the transaction is in doubt: the whole batch fails
    except BaseException as exc:  # noqa: BLE001 - handed to the job's caller
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT job")
        conn.exec_driver_sql("RELEASE SAVEPOINT job")
        job.outcome = exc
        return
    conn.exec_driver_sql("RELEASE SAVEPOINT job")
    job.ok = True


def _refused_alone(job: _Job) -> bool:
    """The job raised an error of its own (not the database's), and changed nothing."""
    return isinstance(job.outcome, BaseException) and not isinstance(job.outcome, _DATABASE_ERRORS)


def _chained(error: ServiceUnavailableError, cause: BaseException) -> ServiceUnavailableError:
    error.__cause__ = cause
    return error


def _settle(job: _Job) -> None:
    def settle() -> None:
        if job.future.done():  # its caller went away (cancelled): the result is moot
            return
        if job.ok:
            job.future.set_result(job.outcome)
        else:
            job.future.set_exception(job.outcome)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
        job.loop.call_soon_threadsafe(settle)


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "storage-unavailable", "The hub's database could not be reached or written."
    )
