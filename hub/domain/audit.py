"""The audit record and its hash chain (CONTRACT.md section 4).

Each record's ``hash`` is SHA-256 over the canonical JSON of every other member,
``prev_hash`` and ``seq`` included, so that changing, removing, inserting or
reordering any stored record breaks the chain at that record. The first record's
``prev_hash`` is ``GENESIS``. Records cut off the end are detected against signed
checkpoints (a later issue); ``verify_chain`` reports what the rows themselves prove.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What a use case wants recorded; the chain gives it ``seq``, ``prev_hash`` and ``hash``."""

    at: str
    kind: str
    """``exchange``, or ``replay`` for an ``Idempotency-Key`` answer sent again."""
    requester: str
    source: str
    participant: str
    """The keyed pseudonym, never the INSZ."""
    purpose: str
    actor: Mapping[str, str]
    decision: str
    """An ``Outcome`` value; kept as text so that a tampered row is reported, not crashed on."""
    reason: str | None
    fields_requested: Sequence[str]
    fields_disclosed: Sequence[str]
    withheld: Sequence[Mapping[str, str]]
    agreement: str | None
    agreements: Sequence[str]
    consents: Sequence[str]
    disclosure_id: str | None
    replay_of: int | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    entry: AuditEntry
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """The record as the officer API and the hash see it."""
        return {
            **_entry_dict(self.entry),
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def _entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at,
        "kind": entry.kind,
        "requester": entry.requester,
        "source": entry.source,
        "participant": entry.participant,
        "purpose": entry.purpose,
        "actor": dict(entry.actor),
        "decision": str(entry.decision),
        "reason": entry.reason,
        "fields_requested": list(entry.fields_requested),
        "fields_disclosed": list(entry.fields_disclosed),
        "withheld": [dict(w) if isinstance(w, dict) else w for w in entry.withheld],
        "agreement": entry.agreement,
        "agreements": list(entry.agreements),
        "consents": list(entry.consents),
        "disclosure_id": entry.disclosure_id,
        "replay_of": entry.replay_of,
    }


def canonical(seq: int, entry: AuditEntry, prev_hash: str) -> bytes:
    body = {**_entry_dict(entry), "seq": seq, "prev_hash": prev_hash}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(seq: int, entry: AuditEntry, prev_hash: str) -> str:
    return hashlib.sha256(canonical(seq, entry, prev_hash)).hexdigest()


def link(seq: int, entry: AuditEntry, prev_hash: str) -> AuditRecord:
    """Append ``entry`` after a record whose hash is ``prev_hash``."""
    return AuditRecord(seq, entry, prev_hash, chain_hash(seq, entry, prev_hash))


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "entries": self.entries, "head": self.head}
        return {
            "ok": False,
            "entries": self.entries,
            "head": self.head,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


class ChainVerifier:
    """Folds records in stored order; ``feed`` stops being useful after the first fault.

    Incremental so that a log of millions of rows is checked while it streams.
    """

    def __init__(self) -> None:
        self._expected_seq = 1
        self._prev = GENESIS
        self._count = 0
        self.fault: tuple[int, str] | None = None

    def feed(self, record: AuditRecord) -> bool:
        if self.fault is not None:
            return False
        self._count += 1
        expected = self._expected_seq
        if record.seq != expected:
            # The record standing where seq `expected` belongs is wrong (or missing).
            self.fault = (expected, f"expected seq {expected}, found {record.seq}")
        elif record.prev_hash != self._prev:
            self.fault = (record.seq, "prev_hash does not match the previous record")
        elif chain_hash(record.seq, record.entry, record.prev_hash) != record.hash:
            self.fault = (record.seq, "the record's content does not match its hash")
        else:
            self._expected_seq += 1
            self._prev = record.hash
            return True
        return False

    def report(self) -> ChainReport:
        if self.fault is None:
            return ChainReport(ok=True, entries=self._count, head=self._prev)
        seq, problem = self.fault
        return ChainReport(
            ok=False, entries=self._count, head=self._prev, first_bad_seq=seq, problem=problem
        )


def verify_chain(records: Iterable[AuditRecord]) -> ChainReport:
    verifier = ChainVerifier()
    for record in records:
        if not verifier.feed(record):
            break
    return verifier.report()
