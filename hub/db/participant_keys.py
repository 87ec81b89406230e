"""The wrapped participant data keys, and erasure (crypto-shredding) in SQL.

Written like ``hub.db.repositories``: SQL both SQLite and PostgreSQL speak, run inside
the caller's transaction. A DEK is made at most once per participant even when two
hub processes grant a first consent at the same moment: ``add`` inserts with
``ON CONFLICT DO NOTHING`` and says whether it won, and the loser reads the winner's
row (on PostgreSQL the conflicting insert waits for the winner's commit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from hub.db.sql import Row, Sql, timestamp
from hub.ports import ErasureRecord, WrappedDataKey


class SqlParticipantKeys:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def get(self, participant: str) -> WrappedDataKey | None:
        row = self._sql.row(
            "SELECT participant, key_id, master_id, wrapped, created_at FROM participant_keys "
            "WHERE participant = :participant",
            {"participant": participant},
        )
        return None if row is None else _key(row)

    def add(self, key: WrappedDataKey) -> bool:
        cursor = self._sql.run(
            "INSERT INTO participant_keys (participant, key_id, master_id, wrapped, created_at) "
            "VALUES (:participant, :key_id, :master_id, :wrapped, :created_at) "
            "ON CONFLICT (participant) DO NOTHING",
            _values(key),
        )
        return bool(cursor.rowcount == 1)

    def replace(self, old: WrappedDataKey, new: WrappedDataKey) -> bool:
        # Only the row as read: a concurrent erasure (row gone) or rewrap wins.
        cursor = self._sql.run(
            "UPDATE participant_keys SET master_id = :master_id, wrapped = :wrapped "
            "WHERE participant = :participant AND key_id = :key_id AND master_id = :old_master",
            {**_values(new), "old_master": old.master_id},
        )
        return bool(cursor.rowcount == 1)

    def not_under(
        self, master_id: str, *, after: str | None, limit: int
    ) -> Sequence[WrappedDataKey]:
        statement = (
            "SELECT participant, key_id, master_id, wrapped, created_at FROM participant_keys "
            "WHERE master_id <> :master"
        )
        params: dict[str, Any] = {"master": master_id, "limit": limit}
        if after is not None:
            statement += " AND participant > :after"
            params["after"] = after
        statement += " ORDER BY participant LIMIT :limit"
        return [_key(row) for row in self._sql.rows(statement, params)]

    def count_by_master(self) -> Mapping[str, int]:
        rows = self._sql.rows("SELECT master_id, COUNT(*) FROM participant_keys GROUP BY master_id")
        return {str(master): int(count) for master, count in rows}

    def destroy(self, participant: str) -> bool:
        cursor = self._sql.run(
            "DELETE FROM participant_keys WHERE participant = :participant",
            {"participant": participant},
        )
        return bool(cursor.rowcount == 1)


def _values(key: WrappedDataKey) -> dict[str, Any]:
    return {
        "participant": key.participant,
        "key_id": key.key_id,
        "master_id": key.master_id,
        "wrapped": key.wrapped,
        "created_at": timestamp(key.created_at),
    }


def _key(row: Row) -> WrappedDataKey:
    participant, key_id, master, wrapped, created = row
    return WrappedDataKey(
        participant=participant,
        key_id=key_id,
        master_id=master,
        wrapped=bytes(wrapped),
        created_at=datetime.fromisoformat(created),
    )


class SqlErasures:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def revoke_consents(self, participant: str, at: datetime) -> int:
        cursor = self._sql.run(
            "UPDATE consents SET revoked_at = :at "
            "WHERE participant = :participant AND revoked_at IS NULL",
            {"participant": participant, "at": timestamp(at)},
        )
        return int(cursor.rowcount)

    def count_consents(self, participant: str) -> int:
        row = self._sql.row(
            "SELECT COUNT(*) FROM consents WHERE participant = :participant",
            {"participant": participant},
        )
        return 0 if row is None else int(row[0])

    def drop_unshreddable_evidence(self, participant: str) -> int:
        cursor = self._sql.run(
            "UPDATE consents SET evidence = NULL WHERE participant = :participant "
            "AND evidence IS NOT NULL AND evidence_key IS NULL",
            {"participant": participant},
        )
        return int(cursor.rowcount)

    def delete_answers(self, participant: str) -> int:
        cursor = self._sql.run(
            "DELETE FROM idempotency WHERE participant = :participant",
            {"participant": participant},
        )
        return int(cursor.rowcount)

    def add(self, record: ErasureRecord) -> None:
        self._sql.run(
            "INSERT INTO erasures (id, participant, at, erased_by, key_destroyed, "
            "consents_revoked, answers_deleted, evidence_dropped) VALUES (:id, :participant, "
            ":at, :erased_by, :key_destroyed, :consents_revoked, :answers_deleted, "
            ":evidence_dropped)",
            {
                "id": record.id,
                "participant": record.participant,
                "at": timestamp(record.at),
                "erased_by": record.by,
                "key_destroyed": int(record.key_destroyed),
                "consents_revoked": record.consents_revoked,
                "answers_deleted": record.answers_deleted,
                "evidence_dropped": record.evidence_dropped,
            },
        )

    def of_participant(self, participant: str) -> Sequence[ErasureRecord]:
        rows = self._sql.rows(
            "SELECT id, participant, at, erased_by, key_destroyed, consents_revoked, "
            "answers_deleted, evidence_dropped FROM erasures WHERE participant = :participant "
            "ORDER BY at, id",
            {"participant": participant},
        )
        return [
            ErasureRecord(
                id=id_,
                participant=pseudonym,
                at=datetime.fromisoformat(at),
                by=by,
                key_destroyed=bool(destroyed),
                consents_revoked=int(revoked),
                answers_deleted=int(deleted),
                evidence_dropped=int(dropped),
            )
            for id_, pseudonym, at, by, destroyed, revoked, deleted, dropped in rows
        ]
