"""Upgrading a database the previous release wrote (issue #5), on SQLite and PostgreSQL.

For every revision before the head (Alembic's ScriptDirectory gives the order, so a
new revision is covered the day it lands): migrate an empty database to it, write
representative rows with plain SQL that revision accepts (clients, consents with
sealed evidence and a revoked one, audit records with a valid chain and its head,
an idempotency answer, a token assertion id), upgrade to the head, and then the hub
works on it: every row is still there, the audit log verifies, the consents list,
old evidence opens, and an exchange appends to the chain.

The rows are the oldest layout (revision 0001's columns), and a column a later
revision added is filled the way the release that had it filled it (``LATER``)
when the revision under test has it; left out otherwise, as a release that did not
know the column wrote the row without it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, select

from hub.auth.keys import FileKeyRing
from hub.db import migrate
from hub.db.audit_rows import audit_row
from hub.db.database import create_engine
from hub.db.sql import timestamp
from hub.demo.population import Population
from hub.domain.audit import GENESIS, AuditRecord, link
from hub.domain.clients import hash_client_secret
from hub.domain.ids import Insz, PartnerId
from hub.domain.principal import ALL_SCOPES, Principal
from hub.services.audit import record_tag
from hub.settings import Settings
from tests.api.conftest import NOW, POLICIES, serving
from tests.builders import an_audit_entry


def _revisions() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(migrate._config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


REVISIONS = _revisions()
EARLIER = REVISIONS[:-1]
ICF = ["icf.assessment"]
EVIDENCE = "signed paper form, scanned 2026-06-01"


def test_the_revisions_form_one_line_to_the_head() -> None:
    assert REVISIONS[-1] == migrate.head_revision()
    assert len(set(REVISIONS)) == len(REVISIONS)
    assert EARLIER, "there is no earlier release to upgrade from"


def _rows(keys: FileKeyRing, person: str) -> dict[str, list[dict[str, Any]]]:
    """What an earlier release holds after a few days' work."""
    pseudonym = keys.pseudonym(Insz.parse(person))
    day = timedelta(days=1)
    given, revoked = str(uuid.uuid4()), str(uuid.uuid4())
    sealed = keys.seal(EVIDENCE.encode(), context=f"consent-evidence:{given}".encode())
    consent = {
        "participant": pseudonym,
        "recipient": "gtb",
        "purpose": "trajectory-coordination",
        "fields": '["icf.assessment"]',
        "valid_until": None,
        "recorded_by": "gtb",
    }
    records: list[AuditRecord] = []
    prev = GENESIS
    for seq in (1, 2, 3):
        entry = an_audit_entry(
            seq, participant=pseudonym, at=timestamp(NOW - (4 - seq) * day), consents=[given]
        )
        records.append(link(seq, entry, prev))
        prev = records[-1].hash
    return {
        "clients": [
            {
                "client_id": "gtb-old",
                "partner": "gtb",
                "scopes": "audit:read consent:write exchange",
                "auth_method": "client_secret",
                "secret_hash": hash_client_secret("old-secret"),
                "jwks": None,
                "created_at": timestamp(NOW - 10 * day),
            }
        ],
        "consents": [
            {
                **consent,
                "id": given,
                "granted_at": timestamp(NOW - 5 * day),
                "revoked_at": None,
                "evidence": sealed,
            },
            {
                **consent,
                "id": revoked,
                "granted_at": timestamp(NOW - 6 * day),
                "revoked_at": timestamp(NOW - 5 * day),
                "evidence": None,
            },
        ],
        "audit_events": [audit_row(r) for r in records],
        "idempotency": [
            {
                "partner": "gtb",
                "key": "old-key",
                "fingerprint": "f" * 64,
                "status": 200,
                "body": keys.seal(b'{"old": true}', context=b"idempotency:gtb:old-key"),
                "consent_ids": f'["{given}"]',
                "audit_seq": 3,
                "created_at": timestamp(NOW - day),
                "expires_at": timestamp(NOW + timedelta(hours=1)),
            }
        ],
        "assertion_jtis": [
            {
                "client_id": "gtb-old",
                "jti": "jti-old",
                "expires_at": timestamp(NOW + timedelta(minutes=5)),
            }
        ],
    }


def _later(keys: FileKeyRing, person: str) -> dict[tuple[str, str], Any]:
    """Columns added after 0001, as the release that added them filled them in.

    Those not named here stayed NULL in the rows a release wrote (0004's
    ``evidence_key`` and ``data_key``: evidence sealed with the one ``seal.key``)."""
    pseudonym = keys.pseudonym(Insz.parse(person))
    return {
        ("audit_events", "tag"): lambda row: record_tag(keys, row["hash"]),  # 0003
        ("idempotency", "participant"): lambda _row: pseudonym,  # 0004
    }


def _write(
    url: str,
    rows: dict[str, list[dict[str, Any]]],
    head: AuditRecord,
    later: dict[tuple[str, str], Any],
) -> dict[str, list[dict[str, Any]]]:
    """Insert ``rows`` into the tables as they are at this revision (reflected), with
    the columns of ``later`` this revision has; the rows as written."""
    engine = create_engine(url)
    written: dict[str, list[dict[str, Any]]] = {}
    try:
        present = MetaData()
        present.reflect(engine)
        with engine.begin() as connection:
            for name, table_rows in rows.items():
                table = present.tables[name]
                for original in table_rows:
                    row = dict(original)
                    for (owner, column), fill in later.items():
                        if owner == name and column in table.columns:
                            row[column] = fill(row)
                    written.setdefault(name, []).append(row)
                    missing = set(row) - set(table.columns.keys())
                    assert not missing, f"{name} has no {missing} at this revision"
                    connection.execute(table.insert().values(**row))
            audit_head = present.tables["audit_head"]
            connection.execute(
                audit_head.update().where(audit_head.c.id == 1).values(seq=head.seq, hash=head.hash)
            )
    finally:
        engine.dispose()
    return written


def _kept(url: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Every row written before the upgrade is there after it, with the same values."""
    engine = create_engine(url)
    try:
        present = MetaData()
        present.reflect(engine)
        with engine.connect() as connection:
            for name, table_rows in rows.items():
                table = present.tables[name]
                stored = [dict(r._mapping) for r in connection.execute(select(table))]
                assert len(stored) == len(table_rows), name
                for row in table_rows:
                    matches = [s for s in stored if all(_same(s[k], v) for k, v in row.items())]
                    assert len(matches) == 1, f"{name}: {row} changed in the upgrade"
    finally:
        engine.dispose()


def _same(stored: object, written: object) -> bool:
    if isinstance(stored, memoryview):
        stored = stored.tobytes()
    return stored == written


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


@pytest.mark.parametrize("previous", EARLIER)
async def test_a_database_of_an_earlier_release_upgrades_and_the_hub_works_on_it(
    previous: str, empty_database_url: str, tmp_path: Path, population: Population
) -> None:
    url = empty_database_url
    key_dir = tmp_path / "keys"
    keys = FileKeyRing.load_or_create(key_dir)
    person = next(p for p in population.persons if "vdab" in p.sources).insz.digits
    rows = _rows(keys, person)
    migrate.upgrade(url, previous)
    assert not migrate.is_current(url)
    chain = rows["audit_events"]
    head = AuditRecord(
        chain[-1]["seq"], an_audit_entry(), chain[-1]["prev_hash"], chain[-1]["hash"]
    )
    untagged = "tag" not in _columns(url, "audit_events")
    rows = _write(url, rows, head, _later(keys, person))

    migrate.upgrade(url)

    assert migrate.is_current(url)
    _kept(url, rows)
    settings = Settings(
        policy_dir=POLICIES,
        database_url=url,
        key_dir=key_dir,
        public_url="http://hub.test",
        rate_limit="off",
        token_rate_limit="off",
    )
    async with serving(settings, population) as hub:
        officer = hub.auth("hub")
        report = (await hub.http.get("/v1/audit/verify", headers=officer)).json()
        # Records from before 0003 carry no tag: the legacy prefix that 0005 recorded
        # excuses them until a checkpoint holds, and this verification signs one over it.
        assert report["ok"] is True, report["problem"]
        assert report["entries"] == len(chain)
        assert report["head"] == chain[-1]["hash"]

        listed = await hub.http.get(
            "/v1/consents", params={"participant": person}, headers=hub.auth("gtb")
        )
        assert listed.status_code == 200, listed.text
        ids = {c["id"] for c in listed.json()["items"]}
        assert ids == {c["id"] for c in rows["consents"]}
        given = rows["consents"][0]["id"]
        gtb = Principal("gtb-test", PartnerId("gtb"), frozenset(ALL_SCOPES), 0)
        assert await hub.container.consents.evidence(gtb, given) == EVIDENCE

        answer = await hub.exchange("gtb", participant=person, source="vdab", fields=ICF)
        assert answer.status_code == 200, answer.text
        assert answer.json()["audit_seq"] == len(chain) + 1
        after = (await hub.http.get("/v1/audit/verify", headers=officer)).json()
        assert after["ok"] is True, after
        assert after["entries"] == len(chain) + 1
        # Only the untagged log needed (and got) a checkpoint over its legacy prefix.
        signed = after["checkpoint"]
        assert (signed and signed["seq"]) == (len(chain) if untagged else None), signed

    # The hub signed a checkpoint over its head as it stopped, having checked the tags
    # of the records since the newest one.
    async with serving(settings, population) as hub:
        again = (await hub.http.get("/v1/audit/verify", headers=hub.auth("hub"))).json()
        assert again["ok"] is True, again["problem"]
        assert again["entries"] == len(chain) + 1
        assert again["checkpoint"]["seq"] == len(chain) + 1
