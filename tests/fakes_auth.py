"""An in-memory ``Database`` with just what the token endpoint uses: clients and jtis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from hub.ports import ClientRecord


class FakeClients:
    def __init__(self) -> None:
        self.by_id: dict[str, ClientRecord] = {}

    async def add(self, client: ClientRecord) -> None:
        self.by_id[client.client_id] = client

    async def get(self, client_id: str) -> ClientRecord | None:
        return self.by_id.get(client_id)


class FakeAssertions:
    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], datetime] = {}

    async def remember(self, client_id: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        if (client_id, jti) in self.seen:
            return False
        self.seen[client_id, jti] = expires_at
        return True


class FakeUnitOfWork:
    def __init__(self, db: FakeAuthDatabase) -> None:
        self.clients = db.clients
        self.assertions = db.assertions
        self.committed = False

    async def commit(self) -> None:
        self.committed = True


class FakeAuthDatabase:
    """``reading()`` and ``writing()``; counts how often each was entered."""

    def __init__(self) -> None:
        self.clients = FakeClients()
        self.assertions = FakeAssertions()
        self.reads = 0
        self.writes = 0
        self.commits = 0

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Any]:
        self.reads += 1
        yield FakeUnitOfWork(self)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[Any]:
        """Leaving without ``commit()`` rolls back, as the real unit of work does."""
        self.writes += 1
        before = dict(self.assertions.seen)
        uow = FakeUnitOfWork(self)
        yield uow
        if uow.committed:
            self.commits += 1
        else:
            self.assertions.seen = before
