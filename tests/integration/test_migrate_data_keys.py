"""Migration 0004 (per-participant data keys) from the previous release, with data in it.

Runs on the run's backend (``KETENHUB_TEST_DATABASE``: SQLite or PostgreSQL). A
database at 0003 holding a consent with evidence sealed under ``seal.key`` and an
answer kept for an ``Idempotency-Key`` is upgraded: the kept answer learns whom it is
about (from its audit record), both rows keep "no data key" (the one seal key), and
the hub then reads the evidence, replays nothing wrongly and erases them.
"""

from __future__ import annotations

from pathlib import Path

from hub.auth.keys import FileKeyRing
from hub.clock import FixedClock
from hub.db import migrate
from hub.db.database import SqlDatabase, create_engine
from hub.domain.ids import Insz
from hub.ports import UnitOfWork
from hub.services.erasure import ErasureService
from tests.api.conftest import NOW
from tests.conftest import connect

PERSON = Insz.parse("85073003328")


def _fill_release_0003(url: str, keys: FileKeyRing) -> None:
    evidence = keys.seal(b"signed plan", context=b"consent-evidence:c-1")
    answer = keys.seal(b"{}", context=b"idempotency:gtb:k:f")
    pseudonym = keys.pseudonym(PERSON)
    hexed = {"evidence": evidence.hex(), "answer": answer.hex()}
    blob = (
        (lambda h: f"X'{h}'") if url.startswith("sqlite") else (lambda h: f"decode('{h}', 'hex')")
    )
    ts = "2026-06-15T10:00:00.000000Z"
    with connect(url) as db:
        db.execute(
            "INSERT INTO consents (id, participant, recipient, purpose, fields, granted_at, "
            f"recorded_by, evidence) VALUES ('c-1', '{pseudonym}', 'gtb', "
            f"'trajectory-coordination', '[\"icf.assessment\"]', '{ts}', 'gtb', "
            f"{blob(hexed['evidence'])})"
        )
        db.execute(
            "INSERT INTO audit_events (seq, at, kind, requester, source, participant, purpose, "
            "actor_role, actor_id, decision, fields_requested, fields_disclosed, withheld, "
            "agreements, consents, prev_hash, hash) VALUES (1, "
            f"'{ts}', 'exchange', 'gtb', 'vdab', '{pseudonym}', 'trajectory-coordination', "
            f"'r', 'u', 'denied', '[]', '[]', '[]', '[]', '[]', '{'0' * 64}', '{'1' * 64}')"
        )
        db.execute(
            "INSERT INTO idempotency (partner, key, fingerprint, status, body, consent_ids, "
            f"audit_seq, created_at, expires_at) VALUES ('gtb', 'k', 'f', 403, "
            f"{blob(hexed['answer'])}, '[]', 1, '{ts}', '2026-06-16T10:00:00.000000Z')"
        )


async def test_an_upgrade_from_0003_keeps_old_rows_readable_and_erasable(
    empty_database_url: str, tmp_path: Path
) -> None:
    url = empty_database_url
    keys = FileKeyRing.load_or_create(tmp_path / "keys")
    migrate.upgrade(url, "0003")
    _fill_release_0003(url, keys)
    migrate.upgrade(url)
    assert migrate.is_current(url)
    with connect(url) as db:
        kept = db.execute("SELECT participant, data_key FROM idempotency").fetchall()
        consent = db.execute("SELECT evidence_key FROM consents").fetchall()
    assert [tuple(r) for r in kept] == [(keys.pseudonym(PERSON), None)]
    assert [tuple(r) for r in consent] == [(None,)]

    database = SqlDatabase(create_engine(url))
    try:

        def evidence(uow: UnitOfWork) -> bytes | None:
            sealed = uow.consents.evidence("c-1")
            assert sealed is not None
            assert sealed.key_id is None
            return keys.unseal(sealed.sealed, context=b"consent-evidence:c-1")

        assert await database.read(evidence) == b"signed plan"
        service = ErasureService(db=database, keys=keys, clock=FixedClock(NOW))
        outcome = await service.erase(PERSON, by="test")
        assert outcome.record is not None
        assert (outcome.record.answers_deleted, outcome.record.evidence_dropped) == (1, 1)
        assert outcome.record.consents_revoked == 1
        assert outcome.record.key_destroyed is False  # there was none: nothing sealed under one
        assert await database.read(lambda uow: uow.consents.evidence("c-1")) is None
    finally:
        await database.dispose()

    # And back: 0004 is removed cleanly, and applied again.
    migrate.upgrade(url, "head")
    from alembic import command  # noqa: PLC0415

    config = migrate._config()
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
    finally:
        engine.dispose()
    assert not migrate.is_current(url)
    migrate.upgrade(url)
    assert migrate.is_current(url)
