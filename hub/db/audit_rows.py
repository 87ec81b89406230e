"""The audit record's stored row (``hub.domain.audit.STORED_MEMBERS``): written, read
back, and read back as it is when a tampered row is not what the hub wrote."""

from __future__ import annotations

import json
from typing import Any

from hub.db.sql import Row, json_text
from hub.domain.audit import (
    STORED_MEMBERS,
    AuditEntry,
    AuditRecord,
    ListTexts,
)

AUDIT_SELECT = f"SELECT {', '.join(STORED_MEMBERS)} FROM audit_events"
AUDIT_INSERT = (
    f"INSERT INTO audit_events ({', '.join(STORED_MEMBERS)}, tag) "
    f"VALUES ({', '.join(':' + c for c in STORED_MEMBERS)}, :tag)"
)


def audit_row(record: AuditRecord, lists: ListTexts | None = None) -> dict[str, Any]:
    """The row of ``record``; ``lists``: its list members as ``link_stored`` encoded them."""
    e = record.entry
    if lists is None:
        lists = (
            json_text(list(e.fields_requested)),
            json_text(list(e.fields_disclosed)),
            json_text([dict(w) for w in e.withheld]),
            json_text(list(e.agreements)),
            json_text(list(e.consents)),
        )
    fields_requested, fields_disclosed, withheld, agreements, consents = lists
    actor = e.actor
    return {
        "seq": record.seq,
        "at": e.at,
        "kind": e.kind,
        "requester": e.requester,
        "source": e.source,
        "participant": e.participant,
        "purpose": e.purpose,
        "actor_role": actor["role"],
        "actor_id": actor["id"],
        "decision": str(e.decision),
        "reason": e.reason,
        "fields_requested": fields_requested,
        "fields_disclosed": fields_disclosed,
        "withheld": withheld,
        "agreement": e.agreement,
        "agreements": agreements,
        "consents": consents,
        "disclosure_id": e.disclosure_id,
        "replay_of": e.replay_of,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def _json_column(value: object) -> Any:
    """A JSON column as stored; text that is not JSON (a tampered row) stays text.

    The record then fails its hash check instead of crashing the verifier.
    """
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def seq_of(value: object) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return -1  # a tampered seq: reported where the chain expected another


def record_of(row: Row) -> AuditRecord:
    (
        seq,
        at,
        kind,
        requester,
        source,
        participant,
        purpose,
        actor_role,
        actor_id,
        decision,
        reason,
        fields_requested,
        fields_disclosed,
        withheld,
        agreement,
        agreements,
        consents,
        disclosure_id,
        replay_of,
        prev_hash,
        hash_,
    ) = row
    entry = AuditEntry(
        at=at,
        kind=kind,
        requester=requester,
        source=source,
        participant=participant,
        purpose=purpose,
        actor={"role": actor_role, "id": actor_id},
        decision=decision,
        reason=reason,
        fields_requested=_json_column(fields_requested),
        fields_disclosed=_json_column(fields_disclosed),
        withheld=_json_column(withheld),
        agreement=agreement,
        agreements=_json_column(agreements),
        consents=_json_column(consents),
        disclosure_id=disclosure_id,
        replay_of=replay_of,
    )
    return AuditRecord(seq_of(seq), entry, prev_hash, hash_)
