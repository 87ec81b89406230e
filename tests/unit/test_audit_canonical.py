"""The bytes a record is hashed over are the contract's (CONTRACT.md 4: ``audit verify``
and offline verifiers recompute them): the written-out encoder of ``hub.domain.audit``
gives exactly what ``json.dumps`` gives, for every value an entry can hold, and the
stored list members are the texts the store always wrote."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.db.audit_rows import audit_row
from hub.db.sql import json_text
from hub.domain.audit import (
    GENESIS,
    AuditEntry,
    AuditRecord,
    canonical,
    chain_hash,
    link,
    link_stored,
    list_texts,
)
from hub.domain.exchange import Outcome


def reference(seq: object, entry: AuditEntry, prev_hash: object) -> bytes:
    """``canonical`` as it was first written: one ``json.dumps`` of the whole record."""

    def listed(members: Any) -> Any:
        if isinstance(members, str):
            return members
        return [dict(m) if isinstance(m, dict) else m for m in members]

    body = {
        "at": entry.at,
        "kind": entry.kind,
        "requester": entry.requester,
        "source": entry.source,
        "participant": entry.participant,
        "purpose": entry.purpose,
        "actor": dict(entry.actor),
        "decision": str(entry.decision),
        "reason": entry.reason,
        "fields_requested": listed(entry.fields_requested),
        "fields_disclosed": listed(entry.fields_disclosed),
        "withheld": listed(entry.withheld),
        "agreement": entry.agreement,
        "agreements": listed(entry.agreements),
        "consents": listed(entry.consents),
        "disclosure_id": entry.disclosure_id,
        "replay_of": entry.replay_of,
        "seq": seq,
        "prev_hash": prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


# Every code point, lone surrogates included (they are escaped, never encoded raw).
TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
SCALAR = st.none() | TEXT | st.integers() | st.booleans() | st.floats(allow_nan=False)
NULLABLE_TEXT = st.none() | TEXT | SCALAR
TEXTS = st.lists(TEXT, max_size=4)
LIST = TEXTS | TEXTS.map(tuple) | TEXT | st.lists(SCALAR, max_size=3)
WITHHELD_ITEM = st.fixed_dictionaries({"field": TEXT, "reason": TEXT}) | st.dictionaries(
    st.sampled_from(["field", "reason", "extra"]), NULLABLE_TEXT, max_size=3
)
WITHHELD = st.lists(WITHHELD_ITEM, max_size=3) | st.lists(WITHHELD_ITEM, max_size=2).map(tuple)
ACTOR = st.fixed_dictionaries({"role": TEXT, "id": TEXT}) | st.dictionaries(
    st.sampled_from(["role", "id", "extra"]), NULLABLE_TEXT, max_size=3
)
DECISION = st.sampled_from(list(Outcome)) | TEXT
SEQ = st.integers() | st.booleans()
REPLAY_OF = st.none() | st.integers() | st.booleans()


@st.composite
def entries(draw: st.DrawFn) -> AuditEntry:
    return AuditEntry(
        at=draw(TEXT),
        kind=draw(st.sampled_from(["exchange", "replay"]) | TEXT),
        requester=draw(TEXT),
        source=draw(TEXT),
        participant=draw(TEXT),
        purpose=draw(TEXT),
        actor=draw(ACTOR),
        decision=draw(DECISION),
        reason=draw(NULLABLE_TEXT),
        fields_requested=draw(LIST),
        fields_disclosed=draw(LIST),
        withheld=draw(WITHHELD),
        agreement=draw(NULLABLE_TEXT),
        agreements=draw(LIST),
        consents=draw(LIST),
        disclosure_id=draw(NULLABLE_TEXT),
        replay_of=draw(REPLAY_OF),
    )


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return ("value", fn(*args))
    except Exception as exc:  # the kind of failure is what is compared
        return ("raises", type(exc))


@settings(max_examples=1500)
@given(entries(), SEQ, TEXT | st.just(GENESIS))
def test_canonical_is_byte_for_byte_what_json_dumps_makes(
    entry: AuditEntry, seq: int, prev_hash: str
) -> None:
    assert outcome(canonical, seq, entry, prev_hash) == outcome(reference, seq, entry, prev_hash)


@st.composite
def hub_entries(draw: st.DrawFn) -> AuditEntry:
    """Entries in the form the hub writes: all of them take the written-out path."""
    maybe = st.none() | TEXT
    return AuditEntry(
        at=draw(TEXT),
        kind=draw(TEXT),
        requester=draw(TEXT),
        source=draw(TEXT),
        participant=draw(TEXT),
        purpose=draw(TEXT),
        actor=draw(st.fixed_dictionaries({"role": TEXT, "id": TEXT})),
        decision=draw(DECISION),
        reason=draw(maybe),
        fields_requested=draw(TEXTS),
        fields_disclosed=draw(TEXTS | TEXTS.map(tuple)),
        withheld=draw(st.lists(st.fixed_dictionaries({"field": TEXT, "reason": TEXT}), max_size=3)),
        agreement=draw(maybe),
        agreements=draw(TEXTS),
        consents=draw(TEXTS),
        disclosure_id=draw(maybe),
        replay_of=draw(st.none() | st.integers()),
    )


@settings(max_examples=1500)
@given(hub_entries(), st.integers(), TEXT | st.just(GENESIS))
def test_the_hub_s_own_entries_hash_as_json_dumps_makes_them(
    entry: AuditEntry, seq: int, prev_hash: str
) -> None:
    assert list_texts(entry) is not None
    assert canonical(seq, entry, prev_hash) == reference(seq, entry, prev_hash)


@settings(max_examples=1000)
@given(entries())
def test_the_list_texts_stored_are_the_ones_json_text_made(entry: AuditEntry) -> None:
    lists = list_texts(entry)
    if lists is None:
        return  # such an entry's row is encoded by json_text itself (audit_row)
    assert lists == (
        json_text(list(entry.fields_requested)),
        json_text(list(entry.fields_disclosed)),
        json_text([dict(w) for w in entry.withheld]),
        json_text(list(entry.agreements)),
        json_text(list(entry.consents)),
    )


def test_a_plain_entry_takes_the_written_out_path() -> None:
    """The property above would hold with the fast path never taken; the hub's own
    entries must take it (else the speed-up is gone without a test noticing)."""
    entry = _pinned()["disclosed"]
    assert list_texts(entry) is not None
    record, lists = link_stored(2, entry, GENESIS)
    assert lists is not None
    assert audit_row(record, lists) == audit_row(record)


def _pinned() -> Mapping[str, AuditEntry]:
    return {
        "denied": AuditEntry(
            at="2026-06-15T10:00:00.000000Z",
            kind="exchange",
            requester="gtb",
            source="vdab",
            participant="ab" * 32,
            purpose="trajectory-coordination",
            actor={"role": "casemanager-work", "id": "actor-1"},
            decision="denied",
            reason="nothing-disclosed",
            fields_requested=["trajectory.status"],
            fields_disclosed=[],
            withheld=[{"field": "trajectory.status", "reason": "field-not-allowed"}],
            agreement=None,
            agreements=[],
            consents=[],
            disclosure_id=None,
        ),
        "disclosed": AuditEntry(
            at="2026-06-15T10:00:00.123456Z",
            kind="exchange",
            requester="ocmw-gent",
            source="vdab",
            participant="cd" * 32,
            purpose="trajectory-coordination",
            actor={"id": 'Zoë "O\'Brien" \\ 🙂\u2028\x01', "role": "casemanager-care"},
            decision=Outcome.DISCLOSED,
            reason=None,
            fields_requested=["trajectory.status", "icf.assessment", "naïve"],
            fields_disclosed=("trajectory.status", "icf.assessment"),
            withheld=[{"reason": "no-consent", "field": "naïve"}],
            agreement="vdab-care@2",
            agreements=["vdab-care@2", "vdab-open@1"],
            consents=["6f1c1d2e-0000-4000-8000-000000000000"],
            disclosure_id="0b7c6a58-0000-4000-8000-000000000000",
        ),
        "replay": AuditEntry(
            at="2026-06-15T10:00:01.000000Z",
            kind="replay",
            requester="gtb",
            source="vdab",
            participant="ef" * 32,
            purpose="p",
            actor={"role": "r", "id": "\ud800 lone"},
            decision=Outcome.FAILED,
            reason="source-unavailable",
            fields_requested=[],
            fields_disclosed=[],
            withheld=[],
            agreement=None,
            agreements=[],
            consents=[],
            disclosure_id=None,
            replay_of=12345678901234,
        ),
    }


# Computed with the hub before the written-out encoder (commit 7c9374d): a log written
# then must verify now, and a record written now must hash as it would have then.
PINNED_HASHES = [
    "8577e33feb1456a5419819ceb7ae5beb0b8b29876813244908f6685d165e2a2e",
    "4997a113321ab06ca0431b01ea17f9ba5bb77a461bc16ada8bb9a91163f355be",
    "04f795f309240adaa8a25782eb57da6fe264eb59ccd172c7d64bfe39c5b885e3",
]


def test_records_hash_as_the_hub_always_hashed_them() -> None:
    prev, records = GENESIS, []
    for seq, entry in enumerate(_pinned().values(), start=1):
        assert chain_hash(seq, entry, prev) == PINNED_HASHES[seq - 1]
        record = link(seq, entry, prev)
        records.append(record)
        prev = record.hash
    assert [r.hash for r in records] == PINNED_HASHES
    assert isinstance(records[0], AuditRecord)
