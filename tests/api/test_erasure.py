"""Crypto-shredding a participant (issue #5): through the API, the service and the CLI.

The real app over the run's database (``tests/api/conftest.py``); only the clock is
fixed. What is proved: evidence and kept answers are sealed under the participant's
data key; erasure revokes, deletes the kept answers, destroys the key and records it;
afterwards the evidence is gone (410), a replay is decided anew, the audit chain still
verifies and the officer's events still list; a new consent gets a new key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from typing import Any

import pytest

from hub.domain.ids import Insz, PartnerId
from hub.domain.principal import ALL_SCOPES, Principal
from hub.ports import UnitOfWork
from hub.services.datakeys import ErasedError
from tests.api.conftest import Hub

ICF = ["icf.assessment"]


def _officer(partner: str) -> Principal:
    return Principal(
        client_id=f"{partner}-test", partner=PartnerId(partner), scopes=ALL_SCOPES, expires_at=0
    )


async def _rows(hub: Hub, statement: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    def read(uow: UnitOfWork) -> list[tuple[Any, ...]]:
        return uow.sql.rows(statement, params)  # type: ignore[attr-defined,no-any-return]

    return await hub.container.db.read(read)


async def _cli(hub: Hub, *args: str) -> subprocess.CompletedProcess[str]:
    """``ketenhub ARGS`` in a process of its own, as an operator beside the running hub."""
    env = {**os.environ, **hub.container.settings.as_env(), "KETENHUB_LOG_LEVEL": "warning"}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_evidence_is_sealed_under_the_participants_own_data_key(hub: Hub) -> None:
    person = hub.person("vdab")
    pseudonym = hub.container.keys.pseudonym(Insz.parse(person))
    granted = await hub.consent("gtb", person, ICF, evidence=f"signed by {person}")
    consent_id = granted.json()["id"]
    ((key_id, master),) = await _rows(
        hub,
        "SELECT key_id, master_id FROM participant_keys WHERE participant = :p",
        {"p": pseudonym},
    )
    ((evidence, evidence_key),) = await _rows(
        hub, "SELECT evidence, evidence_key FROM consents WHERE id = :id", {"id": consent_id}
    )
    assert evidence_key == key_id
    assert master == hub.container.masters.active_id
    assert person.encode() not in bytes(evidence)
    shown = await hub.container.consents.evidence(_officer("gtb"), consent_id)
    assert shown == f"signed by {person}"


async def test_erasure_end_to_end_through_the_api_and_the_cli(hub: Hub) -> None:
    person = hub.person("vdab")
    insz = Insz.parse(person)
    pseudonym = hub.container.keys.pseudonym(insz)
    consent_id = (await hub.consent("gtb", person, ICF, evidence="signed plan")).json()["id"]
    headers = {"Idempotency-Key": "icf-1"}
    first = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=ICF, headers=headers
    )
    assert first.status_code == 200
    replayed = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=ICF, headers=headers
    )
    assert replayed.headers["idempotency-replayed"] == "true"
    assert replayed.json() == first.json()
    (old_key,) = await _rows(
        hub, "SELECT key_id FROM participant_keys WHERE participant = :p", {"p": pseudonym}
    )
    ((answer_key,),) = await _rows(
        hub, "SELECT data_key FROM idempotency WHERE participant = :p", {"p": pseudonym}
    )
    assert answer_key == old_key[0]

    result = await _cli(hub, "participant", "erase", person, "--by", "dpo-ticket-7")
    assert result.returncode == 0, result.stdout + result.stderr
    assert person not in result.stdout + result.stderr
    assert "1 consent(s) revoked, 1 kept answer(s) deleted" in result.stdout + result.stderr
    assert pseudonym in result.stdout + result.stderr

    # The key and the kept answer are gone; the consent stays, revoked.
    assert (
        await _rows(hub, "SELECT 1 FROM participant_keys WHERE participant = :p", {"p": pseudonym})
        == []
    )
    assert (
        await _rows(hub, "SELECT 1 FROM idempotency WHERE participant = :p", {"p": pseudonym}) == []
    )
    listed = await hub.http.get(f"/v1/consents?participant={person}", headers=hub.auth("gtb"))
    assert [c["status"] for c in listed.json()["items"]] == ["revoked"]
    with pytest.raises(ErasedError) as gone:
        await hub.container.consents.evidence(_officer("gtb"), consent_id)
    assert gone.value.status == 410
    ((by, destroyed, revoked, deleted),) = await _rows(
        hub,
        "SELECT erased_by, key_destroyed, consents_revoked, answers_deleted FROM erasures "
        "WHERE participant = :p",
        {"p": pseudonym},
    )
    assert (by, destroyed, revoked, deleted) == ("dpo-ticket-7", 1, 1, 1)

    # The replay is decided anew: on the consent as it is now, revoked.
    again = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=ICF, headers=headers
    )
    assert again.status_code == 403
    assert "idempotency-replayed" not in again.headers
    assert again.json()["withheld"] == [{"field": "icf.assessment", "reason": "consent-revoked"}]

    # The audit chain is untouched: it verifies, and the officer's events still list.
    verified = (await hub.http.get("/v1/audit/verify", headers=hub.auth("hub"))).json()
    assert verified["ok"] is True
    events = await hub.http.get(f"/v1/audit/events?participant={person}", headers=hub.auth("hub"))
    kinds = [e["kind"] for e in events.json()["items"]]
    assert kinds == ["exchange", "replay", "exchange"]
    assert {e["participant"] for e in events.json()["items"]} == {pseudonym}
    verify = await _cli(hub, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


async def test_after_erasure_a_new_consent_gets_a_new_data_key(hub: Hub) -> None:
    person = hub.person("vdab")
    pseudonym = hub.container.keys.pseudonym(Insz.parse(person))
    consent_id = (await hub.consent("gtb", person, ICF, evidence="signed plan")).json()["id"]
    old_key = await _rows(
        hub, "SELECT key_id FROM participant_keys WHERE participant = :p", {"p": pseudonym}
    )
    erased = await _cli(hub, "participant", "erase", person)
    assert erased.returncode == 0, erased.stderr

    # A new consent for the same person gets a new data key.
    renewed = await hub.consent("gtb", person, ICF, evidence="signed again")
    ((new_key,),) = await _rows(
        hub, "SELECT key_id FROM participant_keys WHERE participant = :p", {"p": pseudonym}
    )
    assert new_key != old_key[0]
    shown = await hub.container.consents.evidence(_officer("gtb"), renewed.json()["id"])
    assert shown == "signed again"
    with pytest.raises(ErasedError):  # the old evidence stays shredded
        await hub.container.consents.evidence(_officer("gtb"), consent_id)

    # Erasing again: the earlier erasure is named, a new one recorded for the new consent.
    second = await _cli(hub, "participant", "erase", person, "--json")
    assert second.returncode == 0, second.stdout
    assert '"erased": true' in second.stdout
    third = await _cli(hub, "participant", "erase", person)
    assert third.returncode == 0
    assert "nothing new to erase" in third.stdout


async def test_the_cli_refuses_a_bad_insz_and_says_when_it_holds_nothing(hub: Hub) -> None:
    bad = await _cli(hub, "participant", "erase", "12345678901")
    assert bad.returncode == 2
    assert "Not a valid INSZ" in bad.stderr
    assert "12345678901" not in bad.stderr
    unknown = await _cli(hub, "participant", "erase", hub.stranger())
    assert unknown.returncode == 1
    assert "holds no consents, data key or kept answers" in unknown.stdout
    assert await _rows(hub, "SELECT 1 FROM erasures", {}) == []


async def test_who_erases_may_not_be_a_national_number(hub: Hub) -> None:
    person = hub.person("vdab")
    await hub.consent("gtb", person, ICF)
    result = await _cli(hub, "participant", "erase", person, "--by", f"for {person}")
    assert result.returncode == 2
    assert person not in result.stdout + result.stderr
    listed = await hub.http.get(f"/v1/consents?participant={person}", headers=hub.auth("gtb"))
    assert [c["status"] for c in listed.json()["items"]] == ["active"]


async def test_rows_sealed_before_data_keys_stay_readable_and_are_deleted_on_erasure(
    hub: Hub,
) -> None:
    """Evidence sealed with the one seal.key (before migration 0004) opens as before;
    having no data key to destroy, erasure deletes it."""
    person = hub.person("vdab")
    consent_id = (await hub.consent("gtb", person, ICF)).json()["id"]
    legacy = hub.container.keys.seal(
        b"old evidence", context=f"consent-evidence:{consent_id}".encode()
    )

    def store(uow: UnitOfWork) -> None:
        uow.sql.run(  # type: ignore[attr-defined]
            "UPDATE consents SET evidence = :e, evidence_key = NULL WHERE id = :id",
            {"e": legacy, "id": consent_id},
        )

    await hub.container.db.write(store)
    assert await hub.container.consents.evidence(_officer("gtb"), consent_id) == "old evidence"
    outcome = await hub.container.erasure.erase(Insz.parse(person), by="test")
    assert outcome.record is not None
    assert outcome.record.evidence_dropped == 1
    assert await hub.container.consents.evidence(_officer("gtb"), consent_id) is None


async def test_a_kept_answer_sealed_before_data_keys_still_replays(hub: Hub) -> None:
    person = hub.person("vdab")
    headers = {"Idempotency-Key": "legacy-1"}
    first = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=["trajectory.status"], headers=headers
    )
    assert first.status_code == 200

    def reseal(uow: UnitOfWork) -> None:
        (stored,) = uow.sql.rows("SELECT partner, key FROM idempotency", {})  # type: ignore[attr-defined]
        answer = uow.idempotency.get(*stored)
        assert answer is not None
        context = f"idempotency:{answer.partner}:{answer.key}:{answer.fingerprint}".encode()
        legacy = hub.container.keys.seal(first.content, context=context)
        uow.idempotency.put(dataclasses.replace(answer, sealed_body=legacy, data_key=None))

    await hub.container.db.write(reseal)
    again = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=["trajectory.status"], headers=headers
    )
    assert again.headers["idempotency-replayed"] == "true"
    assert again.json() == first.json()
