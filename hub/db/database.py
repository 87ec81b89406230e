"""The ``Database`` port on SQLAlchemy's asyncio engine (aiosqlite or psycopg)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hub.db.repositories import (
    SqlAssertionReplay,
    SqlAudit,
    SqlClients,
    SqlConsents,
    SqlIdempotency,
)
from hub.domain.errors import ServiceUnavailableError
from hub.ports import UnitOfWork

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # FULL: a committed audit record survives a power cut, not just a crash.
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
)


def async_url(url: str) -> str:
    """The asyncio driver for a contract URL (``sqlite:///path``, ``postgresql+psycopg://``)."""
    parsed = make_url(url)
    if parsed.drivername in {"sqlite", "sqlite+pysqlite"}:
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if parsed.drivername in {"postgresql", "postgresql+psycopg"}:
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def sync_url(url: str) -> str:
    """The blocking driver for the same database (migrations, offline verification)."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in {None, "", ":memory:"}:
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str) -> AsyncEngine:
    ensure_sqlite_dir(url)
    engine = create_async_engine(async_url(url), pool_pre_ping=False)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot say IMMEDIATE;
    # take it over, as SQLAlchemy's SQLite documentation recommends.
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        # A writer takes the write lock up front, so it waits (busy_timeout) instead
        # of failing when another process committed after its first read.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


class SqlUnitOfWork:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._consents = SqlConsents(conn)
        self._audit = SqlAudit(conn)
        self._idempotency = SqlIdempotency(conn)
        self._clients = SqlClients(conn)
        self._assertions = SqlAssertionReplay(conn)

    @property
    def consents(self) -> SqlConsents:
        return self._consents

    @property
    def audit(self) -> SqlAudit:
        return self._audit

    @property
    def idempotency(self) -> SqlIdempotency:
        return self._idempotency

    @property
    def clients(self) -> SqlClients:
        return self._clients

    @property
    def assertions(self) -> SqlAssertionReplay:
        return self._assertions

    async def commit(self) -> None:
        await self._conn.commit()


class SqlDatabase:
    """Readers run concurrently; writers in this process queue on one lock.

    The lock keeps writers of one process from spinning on SQLite's busy handler;
    across processes the database's own locks (see ``SqlAudit.append``) serialise.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._write_lock = asyncio.Lock()

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[UnitOfWork]:
        try:
            async with self._engine.connect() as conn:
                yield SqlUnitOfWork(conn)
        except SQLAlchemyError as exc:
            raise _unavailable() from exc

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[UnitOfWork]:
        async with self._write_lock:
            try:
                async with self._engine.connect() as conn:
                    if self._engine.dialect.name == "sqlite":
                        conn = await conn.execution_options(sqlite_begin="IMMEDIATE")  # noqa: PLW2901
                    yield SqlUnitOfWork(conn)
            except SQLAlchemyError as exc:
                raise _unavailable() from exc
            except OSError as exc:
                raise _unavailable() from exc

    async def dispose(self) -> None:
        await self._engine.dispose()


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "storage-unavailable", "The hub's database could not be reached or written."
    )
