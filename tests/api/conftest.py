"""The API under test: the real app, a real database, real simulated sources over HTTP.

Each test gets its own database (a copy of a migrated template, on the run's backend:
``tests/conftest.py``) and its own
simulators on ephemeral ports; only the clock is fixed, so that consent and
agreement dates are under the test's control.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from adapters.httpclient import HttpClient
from adapters.rest import MAX_BODY_BYTES, RestSourceAdapter
from hub import bootstrap
from hub.api.app import create_app
from hub.clock import FixedClock
from hub.demo.population import Population
from hub.demo.simulator import Simulators, start_simulators
from hub.domain.ids import FieldName, Insz, PartnerId
from hub.domain.principal import ALL_SCOPES, Scope
from hub.ports import ClientRecord, KeyRing, SourceAdapter
from hub.settings import Settings

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
SOURCES = ("vdab", "ocmw-gent", "in-gent", "cgg-vagga", "levanto")


class RecordingSource:
    """The real adapter, remembering which fields the hub asked for (a fake, not a mock)."""

    def __init__(self, inner: SourceAdapter) -> None:
        self.inner = inner
        self.asked: list[frozenset[FieldName]] = []

    async def fetch(
        self, participant: Insz, fields: frozenset[FieldName]
    ) -> Mapping[FieldName, object]:
        self.asked.append(fields)
        return await self.inner.fetch(participant, fields)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Hub:
    http: httpx.AsyncClient
    container: bootstrap.Container
    simulators: Simulators
    sources: dict[str, RecordingSource]
    clock: FixedClock
    population: Population
    database_url: str
    _tokens: dict[tuple[str, frozenset[str]], str] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        """The SQLite file, for a test about SQLite itself (mark it ``sqlite_only``);
        any other test reads the database through ``tests.conftest.connect``."""
        parsed = make_url(self.database_url)
        if parsed.get_backend_name() != "sqlite":
            msg = f"db_path is SQLite's; this run's database is {parsed.get_backend_name()}"
            raise AssertionError(msg)
        return Path(str(parsed.database))

    def token(self, partner: str, scopes: Iterable[str] = tuple(str(s) for s in ALL_SCOPES)) -> str:
        key = (partner, frozenset(scopes))
        if key not in self._tokens:
            client = ClientRecord(
                client_id=f"{partner}-test",
                partner=PartnerId(partner),
                scopes=frozenset(scopes),
                auth_method="client_secret",
                secret_hash=None,
                jwks=None,
                created_at=self.clock.now(),
            )
            issued, _ = self.container.tokens.issue(
                client, frozenset(Scope(s) for s in scopes), self.clock.now()
            )
            self._tokens[key] = issued
        return self._tokens[key]

    def travel(self, moment: datetime) -> None:
        """Move the hub's clock; tokens are issued anew at the new time."""
        self.clock.set(moment)
        self._tokens.clear()

    def auth(self, partner: str, *scopes: str) -> dict[str, str]:
        chosen = scopes or tuple(str(s) for s in ALL_SCOPES)
        return {"Authorization": f"Bearer {self.token(partner, chosen)}"}

    def person(self, *sources: str, skip: int = 0) -> str:
        """The INSZ of a synthetic participant known to every one of ``sources``."""
        known = [p for p in self.population.persons if set(sources) <= p.sources]
        return known[skip].insz.digits

    def stranger(self) -> str:
        """A valid INSZ no source knows."""
        for serial in range(1, 998):
            body = f"010101{serial:03d}"
            digits = body + f"{97 - int('2' + body) % 97:02d}"
            if self.population.by_insz(digits) is None:
                return digits
        raise AssertionError

    async def exchange(
        self,
        partner: str,
        *,
        participant: str,
        source: str,
        fields: list[str],
        purpose: str = "trajectory-coordination",
        role: str = "casemanager-work",
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        body = {
            "participant": participant,
            "source": source,
            "purpose": purpose,
            "fields": fields,
            "actor": {"role": role, "id": "u-1"},
        }
        return await self.http.post(
            "/v1/exchange", json=body, headers={**self.auth(partner), **(headers or {})}
        )

    async def consent(
        self, partner: str, participant: str, fields: list[str], **extra: object
    ) -> httpx.Response:
        body = {
            "participant": participant,
            "recipient": partner,
            "purpose": extra.pop("purpose", "trajectory-coordination"),
            "fields": fields,
            **extra,
        }
        return await self.http.post("/v1/consents", json=body, headers=self.auth(partner))


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, population: Population, *, keys: KeyRing | None = None
) -> AsyncIterator[Hub]:
    """The real app over ``settings``' database, with simulated sources (and ``keys``)."""
    clock = FixedClock(NOW)
    simulators = await start_simulators(population, dict.fromkeys(SOURCES, 0))
    client = HttpClient(max_body=MAX_BODY_BYTES)
    sources = {
        s: RecordingSource(RestSourceAdapter(simulators.url(s), 0.5, client)) for s in SOURCES
    }
    try:
        container = await bootstrap.build(
            settings, clock=clock, sources={PartnerId(k): v for k, v in sources.items()}, keys=keys
        )
        try:
            app = create_app(settings, container=container)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
                yield Hub(
                    http,
                    container,
                    simulators,
                    sources,
                    clock,
                    population,
                    settings.database_url,
                )
        finally:
            await container.aclose()
    finally:
        await client.close()
        await simulators.stop()


@pytest.fixture
async def hub(settings: Settings, population: Population) -> AsyncIterator[Hub]:
    async with serving(settings, population) as started:
        yield started
