"""Participant data keys in a running hub (issue #5): made once per participant even
when workers race, and master key rotation while the hub serves.

The real app over the run's database (``tests/api/conftest.py``). A second "worker" is
a second ``SqlDatabase`` and ``MasterKeyRing`` over the same database and key
directory; the operator's commands run as processes of their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

from hub.auth.datakeys import MasterKeyRing
from hub.db.database import SqlDatabase, create_engine
from hub.domain.ids import FieldName, Insz, PartnerId, Purpose
from hub.domain.principal import ALL_SCOPES, Principal
from hub.ports import UnitOfWork, WrappedDataKey
from hub.services.consents import ConsentService
from hub.services.datakeys import ParticipantSealer, rewrap_all
from tests.api.conftest import Hub

GTB = Principal(client_id="gtb-test", partner=PartnerId("gtb"), scopes=ALL_SCOPES, expires_at=0)
ICF = [FieldName("icf.assessment")]


async def _keys_of(hub: Hub) -> list[tuple[Any, ...]]:
    def read(uow: UnitOfWork) -> list[tuple[Any, ...]]:
        return uow.sql.rows(  # type: ignore[attr-defined,no-any-return]
            "SELECT participant, key_id, master_id FROM participant_keys ORDER BY participant"
        )

    return await hub.container.db.read(read)


def _worker(hub: Hub, db: SqlDatabase) -> ConsentService:
    """A second hub process's consent service: its own connection and master key ring."""
    c = hub.container
    masters = MasterKeyRing.load_or_create(c.settings.key_dir)
    return ConsentService(
        policies=c.policies,
        db=db,
        keys=c.keys,
        clock=hub.clock,
        issuer=c.settings.issuer,
        sealer=ParticipantSealer(masters=masters, keys=c.keys, clock=hub.clock),
    )


async def test_workers_granting_a_first_consent_at_once_make_one_data_key(hub: Hub) -> None:
    person = Insz.parse(hub.person("vdab"))
    db = SqlDatabase(create_engine(hub.container.settings.database_url))
    try:
        services = [hub.container.consents, _worker(hub, db)]
        grants = [
            services[i % 2].grant(
                GTB,
                participant=person,
                recipient=PartnerId("gtb"),
                purpose=Purpose("trajectory-coordination"),
                fields=ICF,
                valid_until=None,
                evidence=f"evidence {i}",
            )
            for i in range(24)
        ]
        granted = await asyncio.gather(*grants)
        (row,) = await _keys_of(hub)
        assert row[0] == hub.container.keys.pseudonym(person)
        for i, made in enumerate(granted):
            for service in services:  # each worker opens what the other sealed
                assert await service.evidence(GTB, made.consent.id) == f"evidence {i}"
    finally:
        await db.dispose()


async def test_a_worker_that_lost_the_race_for_the_data_key_uses_the_winners(hub: Hub) -> None:
    """The lost race, made certain: this worker read "no key" before the other's commit."""
    pseudonym = hub.container.keys.pseudonym(Insz.parse(hub.person("vdab")))
    sealer = ParticipantSealer(
        masters=hub.container.masters, keys=hub.container.keys, clock=hub.clock
    )
    winner, row = hub.container.masters.new_data_key(pseudonym, hub.clock.now())

    class ReadBeforeTheWinner:
        def __init__(self, inner: Any) -> None:
            self.inner, self.first = inner, True

        def get(self, participant: str) -> WrappedDataKey | None:
            if self.first:
                self.first = False
                self.inner.add(row)  # the other worker commits between our read and insert
                return None
            found: WrappedDataKey | None = self.inner.get(participant)
            return found

        def add(self, key: WrappedDataKey) -> bool:
            added: bool = self.inner.add(key)
            return added

    def seal(uow: UnitOfWork) -> str:
        racing = ReadBeforeTheWinner(uow.participant_keys)
        proxy = type("Uow", (), {"participant_keys": racing})()
        return sealer.data_key(proxy, pseudonym).key_id

    assert await hub.container.db.write(seal) == winner.key_id
    assert [r[1] for r in await _keys_of(hub)] == [winner.key_id]


def _operator(hub: Hub, *args: str) -> subprocess.CompletedProcess[str]:
    """``ketenhub keys ARGS`` in a process of its own."""
    env = {**os.environ, **hub.container.settings.as_env(), "KETENHUB_LOG_LEVEL": "warning"}
    return subprocess.run(
        [sys.executable, "-m", "hub", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_master_key_rotation_while_the_hub_serves(hub: Hub) -> None:
    alice = hub.person("vdab")
    bob = hub.person("vdab", skip=1)
    first = (await hub.consent("gtb", alice, ["icf.assessment"], evidence="alice's")).json()
    (before,) = await _keys_of(hub)
    running = hub.container.masters
    old = running.active_id

    # Another process rotates and rewraps; this hub has not read the new key.
    operator = MasterKeyRing.load_or_create(hub.container.settings.key_dir)
    new = operator.rotate()
    report = await rewrap_all(hub.container.db, operator, batch=1)
    assert (report.rewrapped, report.unreadable, dict(report.by_master)) == (1, 0, {new: 1})
    assert running.active_id == old
    (after,) = await _keys_of(hub)
    assert after[1] == before[1]  # the same data key, wrapped anew
    assert after[2] == new
    # A row naming a master key it does not hold: the hub reads the directory again.
    assert await hub.container.consents.evidence(GTB, first["id"]) == "alice's"
    assert running.active_id == new
    # New data keys go under the new key.
    await hub.consent("gtb", bob, ["icf.assessment"], evidence="bob's")
    assert {r[2] for r in await _keys_of(hub)} == {new}

    # The commands: rotate again, then retire what nothing is wrapped under.
    rotated = await asyncio.to_thread(_operator, hub, "rotate-master")
    assert rotated.returncode == 0, rotated.stderr
    third = json.loads(rotated.stdout)
    assert third["rewrapped"] == 2
    assert list(third["by_master"]) == [third["active"]]
    retired = await asyncio.to_thread(_operator, hub, "retire-master")
    assert retired.returncode == 0, retired.stderr
    assert set(json.loads(retired.stdout)["retired"]) == {old, new}
    assert MasterKeyRing.load_or_create(hub.container.settings.key_dir).ids == (third["active"],)
    assert await hub.container.consents.evidence(GTB, first["id"]) == "alice's"
    resumed = await asyncio.to_thread(_operator, hub, "rotate-master", "--resume")
    assert json.loads(resumed.stdout)["rewrapped"] == 0
