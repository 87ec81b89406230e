"""The hub's own dependencies failing: the database (locked, full), its keys (missing, damaged).

Invariant 5 of issue #3: a clear ``503`` problem, nothing disclosed, nothing half
stored, and the very next requests succeed once the fault is lifted, without a
restart. The faults are real: another connection's SQLite write lock, SQLite's own
"database or disk is full", a key directory taken away.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import event

from hub import bootstrap
from hub.auth.keys import FileKeyRing, KeyRingError
from hub.db import database, migrate
from hub.demo.population import Population
from hub.domain.ids import PartnerId
from hub.settings import Settings
from tests.api.conftest import POLICIES, Hub
from tests.api.conftest import serving as api_serving
from tests.builders import an_assertion_form
from tests.conftest import connect
from tests.pgcluster import PgCluster, PgUnavailableError, pg_cluster, require_or_skip

PROBLEM = "application/problem+json"
OPEN = ["trajectory.status", "trajectory.start_date"]
LOCK_WAIT_S = 0.2
"""The hub's wait for another writer's lock in these tests (10 s in service)."""


class SwitchableKeys(FileKeyRing):
    """The real key ring, whose signing can be made to fail as a lost HSM would."""

    broken = False

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        if self.broken:
            raise KeyRingError("The signing key cannot be used.")
        return super().sign(claims, typ=typ)


class SqliteDisk:
    """SQLite's own "database or disk is full": ``max_page_count`` on the hub's connections."""

    def __init__(self, engine: Any) -> None:
        self.full = False
        self._connections: list[sqlite3.Connection] = []
        event.listen(engine, "connect", self._connected)

    def _connected(self, dbapi_connection: sqlite3.Connection, _record: object) -> None:
        self._connections.append(dbapi_connection)
        if self.full:
            self._cap(dbapi_connection)

    @staticmethod
    def _cap(connection: sqlite3.Connection) -> None:
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        connection.execute(f"PRAGMA max_page_count={pages}")

    def _live(self) -> list[sqlite3.Connection]:
        live = []
        for connection in self._connections:
            try:
                connection.execute("SELECT 1")
            except sqlite3.ProgrammingError:  # closed by the hub
                continue
            live.append(connection)
        self._connections = live
        return live

    def fill(self) -> None:
        self.full = True
        for connection in self._live():
            self._cap(connection)

    def free(self) -> None:
        self.full = False
        for connection in self._live():
            connection.execute("PRAGMA max_page_count=1073741823")


def serving(
    settings: Settings, population: Population
) -> contextlib.AbstractAsyncContextManager[Hub]:
    """The API tests' hub, with keys whose signing can be switched off."""
    return api_serving(settings, population, keys=SwitchableKeys.load_or_create(settings.key_dir))


@pytest.fixture
async def hub(
    settings: Settings, population: Population, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Hub]:
    monkeypatch.setattr(database, "BUSY_TIMEOUT_S", LOCK_WAIT_S)
    async with serving(settings, population) as started:
        yield started


def _assert_unavailable(response: httpx.Response, reason: str = "storage-unavailable") -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["reason"] == reason
    assert problem["status"] == 503
    assert problem["type"].endswith(reason)
    assert problem["title"]
    assert problem["detail"]
    assert "data" not in problem
    for leak in ("sqlite", "Traceback", "SELECT", "INSERT", "locked", "OperationalError"):
        assert leak not in response.text


async def _audit(hub: Hub) -> list[dict[str, Any]]:
    response = await hub.http.get("/v1/audit/events", headers=hub.auth("hub", "audit:read"))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _consents(hub: Hub, participant: str) -> list[dict[str, Any]]:
    response = await hub.http.get(
        "/v1/consents", params={"participant": participant}, headers=hub.auth("gtb")
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _jwt_client(hub: Hub) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public["kid"] = "k1"
    made = await hub.container.clients.create(
        PartnerId("gtb"), frozenset({"exchange"}), {"keys": [public]}
    )
    return made.client_id, key


def _assertion_form(hub: Hub, client_id: str, key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    return an_assertion_form(client_id, key, now=int(hub.clock.now().timestamp()))


# -- the database locked by another writer -------------------------------------------


@contextlib.contextmanager
def _writers_locked_out(hub: Hub) -> Iterator[None]:
    """Another session holds what every write needs, and lets readers on: SQLite's write
    lock (WAL), or PostgreSQL's EXCLUSIVE table locks (a stuck migration or a DBA's open
    transaction)."""
    url = hub.container.settings.database_url
    with connect(url) as locker:
        if url.startswith("sqlite"):
            locker.isolation_level = None
            locker.execute("BEGIN EXCLUSIVE")  # WAL: readers go on, writers wait
        else:
            tables = "audit_head, audit_events, consents, clients, idempotency, assertion_jtis"
            locker.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            locker.rollback()


async def test_a_write_lock_held_elsewhere_is_503_for_writes_reads_go_on_and_it_recovers(
    hub: Hub,
) -> None:
    person = hub.person("vdab")
    client_id, key = await _jwt_client(hub)
    kept = await hub.consent("gtb", person, ["icf.assessment"])
    assert kept.status_code == 201
    before = await _audit(hub)

    with _writers_locked_out(hub):
        exchanged = await hub.exchange(
            "gtb",
            participant=person,
            source="vdab",
            fields=["icf.assessment"],
            headers={"Idempotency-Key": "k-locked"},
        )
        _assert_unavailable(exchanged)
        _assert_unavailable(await hub.consent("gtb", person, OPEN))
        _assert_unavailable(
            await hub.http.post(f"/v1/consents/{kept.json()['id']}/revoke", headers=hub.auth("gtb"))
        )
        form = _assertion_form(hub, client_id, key)
        token = await hub.http.post("/oauth/token", data=form)
        _assert_unavailable(token)
        assert "access_token" not in token.text

        # Reads do not need the write lock: the officer and the partner still see the log.
        assert await _audit(hub) == before
        (still,) = await _consents(hub, person)
        assert still["status"] == "active"  # the revoke was not half done

    # Recovery, without a restart: the very next requests succeed.
    again = await hub.exchange(
        "gtb",
        participant=person,
        source="vdab",
        fields=["icf.assessment"],
        headers={"Idempotency-Key": "k-locked"},  # the 503 was not kept: decided anew
    )
    assert again.status_code == 200, again.text
    assert before == []
    assert again.json()["audit_seq"] == 1  # nothing was appended meanwhile
    granted = await hub.consent("gtb", person, OPEN)
    assert granted.status_code == 201
    revoked = await hub.http.post(
        f"/v1/consents/{kept.json()['id']}/revoke", headers=hub.auth("gtb")
    )
    assert revoked.status_code == 200
    # The refused assertion's jti was never stored: the same assertion now gets a token.
    token = await hub.http.post("/oauth/token", data=form)
    assert token.status_code == 200, token.text
    replay = await hub.http.post("/oauth/token", data=form)
    assert replay.status_code in {400, 401}


# -- the disk full -------------------------------------------------------------------


@pytest.mark.sqlite_only("a full disk made with SQLite's max_page_count (PostgreSQL has none)")
async def test_a_full_disk_is_503_undoes_the_whole_write_and_recovers_when_space_returns(
    hub: Hub,
) -> None:
    disk = SqliteDisk(hub.container.db.engine)
    person = hub.person("vdab")
    warm = await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
    assert warm.status_code == 200  # the writer's connection exists, and is capped below
    before = await _audit(hub)

    disk.fill()
    # One record may still fit in a page's free space: write until the file must grow.
    for _ in range(200):
        response = await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
        if response.status_code != 200:
            break
    _assert_unavailable(response)
    full_at = await _audit(hub)
    assert full_at[0]["decision"] == "disclosed"  # the refused one left no record
    # Consents live in pages of their own: grant until they, too, need a new one.
    for skip in range(200):
        someone = hub.person("vdab", skip=skip)
        refused = await hub.consent("gtb", someone, ["icf.assessment"])
        if refused.status_code != 201:
            break
    _assert_unavailable(refused)
    assert await _consents(hub, someone) == []  # not half stored

    disk.free()
    again = await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
    assert again.status_code == 200, again.text
    assert again.json()["audit_seq"] == full_at[0]["seq"] + 1
    assert (await hub.consent("gtb", someone, ["icf.assessment"])).status_code == 201
    verified = await hub.http.get("/v1/audit/verify", headers=hub.auth("hub", "audit:read"))
    assert verified.json()["ok"] is True
    assert verified.json()["entries"] == len(before) + (
        again.json()["audit_seq"] - before[0]["seq"]
    )


# -- signing fails at run time ----------------------------------------------------------


async def test_a_signing_failure_is_503_and_stores_no_consent_and_issues_no_token(
    hub: Hub,
) -> None:
    keys = hub.container.keys
    assert isinstance(keys, SwitchableKeys)
    person = hub.person("vdab")
    made = await hub.container.clients.create(PartnerId("gtb"), frozenset({"exchange"}), None)
    assert made.client_secret is not None
    basic = (made.client_id, made.client_secret)

    hub.auth("gtb")  # the tests' own tokens, issued while the key works
    hub.auth("hub", "audit:read")
    keys.broken = True
    _assert_unavailable(await hub.consent("gtb", person, ["icf.assessment"]), "keys-unavailable")
    token = await hub.http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=basic
    )
    _assert_unavailable(token, "keys-unavailable")
    keys.broken = False

    assert await _consents(hub, person) == []  # a consent without a receipt is not stored
    assert await _audit(hub) == []
    granted = await hub.consent("gtb", person, ["icf.assessment"])
    assert granted.status_code == 201
    assert granted.json()["receipt"].count(".") == 2
    token = await hub.http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=basic
    )
    assert token.status_code == 200


async def test_a_checkpoint_that_cannot_be_signed_takes_its_record_back_and_answers_503(
    hub: Hub,
) -> None:
    """Every 100th record carries a signed checkpoint in its own transaction."""
    keys = hub.container.keys
    assert isinstance(keys, SwitchableKeys)
    person = hub.person("vdab")
    for _ in range(99):  # denied ones: cheap, and audited all the same
        denied = await hub.exchange("gtb", participant=person, source="vdab", fields=["x.y"])
        assert denied.status_code == 403
    hub.auth("hub", "audit:read")

    keys.broken = True
    refused = await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
    _assert_unavailable(refused, "keys-unavailable")
    assert (await _audit(hub))[0]["seq"] == 99  # the 100th record went back with it
    keys.broken = False

    again = await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
    assert again.status_code == 200
    assert again.json()["audit_seq"] == 100
    verified = await hub.http.get("/v1/audit/verify", headers=hub.auth("hub", "audit:read"))
    assert verified.json()["ok"] is True


async def test_keys_removed_while_running_serve_on_from_memory_until_restart(
    hub: Hub, settings: Settings
) -> None:
    person = hub.person("vdab")
    shutil.rmtree(settings.key_dir)
    granted = await hub.consent("gtb", person, ["icf.assessment"])
    assert granted.status_code == 201
    jwks = (await hub.http.get("/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(granted.json()["receipt"])
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    exchanged = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=["icf.assessment"]
    )
    assert exchanged.status_code == 200
    # The next start refuses rather than make new keys for this database.
    with pytest.raises(KeyRingError):
        await bootstrap.build(settings)


# -- PostgreSQL going away at run time --------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    """A cluster of this module's own: its test stops and starts the server."""
    try:
        with pg_cluster() as cluster:
            migrate.upgrade(cluster.url())
            yield cluster
    except PgUnavailableError as exc:
        require_or_skip(str(exc))


async def test_postgresql_going_away_is_503_for_everything_and_its_return_heals_the_hub(
    pg: PgCluster, tmp_path: Path, population: Population
) -> None:
    settings = Settings(
        policy_dir=POLICIES,
        database_url=pg.url(),
        key_dir=tmp_path / "keys",
        public_url="http://hub.test",
    )
    async with serving(settings, population) as hub:
        person = hub.person("vdab")
        made = await hub.container.clients.create(PartnerId("gtb"), frozenset({"exchange"}), None)
        assert made.client_secret is not None
        basic = (made.client_id, made.client_secret)
        granted = await hub.consent("gtb", person, ["icf.assessment"])
        assert granted.status_code == 201
        first = await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
        assert first.status_code == 200

        pg.stop("immediate")
        try:
            _assert_unavailable(
                await hub.exchange(
                    "gtb", participant=person, source="vdab", fields=["icf.assessment"]
                )
            )
            _assert_unavailable(await hub.consent("gtb", person, OPEN))
            _assert_unavailable(
                await hub.http.get(
                    "/v1/consents", params={"participant": person}, headers=hub.auth("gtb")
                )
            )
            _assert_unavailable(
                await hub.http.get("/v1/audit/events", headers=hub.auth("hub", "audit:read"))
            )
            token = await hub.http.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=basic
            )
            _assert_unavailable(token)
        finally:
            pg.start()

        # The pool's connections died with the server: the very next requests get new ones.
        again = await hub.exchange(
            "gtb", participant=person, source="vdab", fields=["icf.assessment"]
        )
        assert again.status_code == 200, again.text
        assert again.json()["audit_seq"] == first.json()["audit_seq"] + 1
        (only,) = await _consents(hub, person)  # the refused grant left nothing
        assert only["id"] == granted.json()["id"]
        token = await hub.http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=basic
        )
        assert token.status_code == 200

        # A restart between two requests: the pooled connections are dead, none is used.
        pg.stop("immediate")
        pg.start()
        after_restart = await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
        assert after_restart.status_code == 200, after_restart.text
        assert (await hub.consent("gtb", person, OPEN)).status_code == 201


@pytest.mark.sqlite_only("a database file removed under a running hub (PostgreSQL has no file)")
async def test_a_database_file_removed_at_run_time_is_503_and_not_ready_never_a_lost_commit(
    hub: Hub, settings: Settings
) -> None:
    person = hub.person("vdab")
    first = await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
    assert first.status_code == 200
    db_file = Path(settings.database_url.removeprefix("sqlite:///"))
    moved = db_file.with_name("moved-away.db")
    db_file.rename(moved)  # noqa: ASYNC240 - as an operator's `rm` or a restore would

    # Its open connections would go on writing into a file nobody opens again.
    _assert_unavailable(await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN))
    ready = await hub.http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "failed"
    # The refused exchange committed nothing, there either: the hub's readers, still on
    # the moved file, see the one record from before.
    assert [event["seq"] for event in await _audit(hub)] == [1]
