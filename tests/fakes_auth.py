"""An in-memory ``Database`` with just what the token endpoint uses: clients and jtis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from hub.ports import ClientRecord

T = TypeVar("T")


class FakeClients:
    def __init__(self) -> None:
        self.by_id: dict[str, ClientRecord] = {}

    def add(self, client: ClientRecord) -> None:
        self.by_id[client.client_id] = client

    def get(self, client_id: str) -> ClientRecord | None:
        return self.by_id.get(client_id)


class FakeAssertions:
    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], datetime] = {}

    def remember(self, client_id: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        if (client_id, jti) in self.seen:
            return False
        self.seen[client_id, jti] = expires_at
        return True


class FakeUnitOfWork:
    def __init__(self, db: FakeAuthDatabase) -> None:
        self.clients = db.clients
        self.assertions = db.assertions


class FakeAuthDatabase:
    """``read()`` and ``write()``; counts how often each ran and committed."""

    def __init__(self) -> None:
        self.clients = FakeClients()
        self.assertions = FakeAssertions()
        self.reads = 0
        self.writes = 0
        self.commits = 0

    async def read(self, work: Callable[[Any], T]) -> T:
        self.reads += 1
        return work(FakeUnitOfWork(self))

    async def write(self, work: Callable[[Any], T]) -> T:
        """A job that raises is undone, as the real database does."""
        self.writes += 1
        before = dict(self.assertions.seen)
        try:
            result = work(FakeUnitOfWork(self))
        except BaseException:
            self.assertions.seen = before
            raise
        self.commits += 1
        return result
