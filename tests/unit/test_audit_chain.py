"""The hash chain detects every single change to the stored records (CONTRACT.md 4)."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from hub.domain.audit import GENESIS, AuditEntry, AuditRecord, link, verify_chain
from hub.domain.exchange import Outcome


def an_entry(n: int) -> AuditEntry:
    return AuditEntry(
        at=f"2026-06-15T10:00:{n % 60:02d}.000000Z",
        kind="exchange",
        requester="gtb",
        source="vdab",
        participant=f"{n:064x}",
        purpose="trajectory-coordination",
        actor={"role": "casemanager-work", "id": f"u-{n}"},
        decision=Outcome.DISCLOSED if n % 3 else Outcome.DENIED,
        reason=None if n % 3 else "nothing-disclosed",
        fields_requested=["trajectory.status", "icf.assessment"],
        fields_disclosed=["trajectory.status"] if n % 3 else [],
        withheld=[{"field": "icf.assessment", "reason": "no-consent"}],
        agreement="vdab-open@1" if n % 3 else None,
        agreements=["vdab-open@1"] if n % 3 else [],
        consents=[],
        disclosure_id=f"d-{n}" if n % 3 else None,
    )


def a_chain(length: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    prev = GENESIS
    for seq in range(1, length + 1):
        record = link(seq, an_entry(seq), prev)
        records.append(record)
        prev = record.hash
    return records


def test_an_untouched_chain_verifies_and_reports_its_head() -> None:
    chain = a_chain(10)
    report = verify_chain(chain)
    assert report.ok
    assert report.entries == 10
    assert report.head == chain[-1].hash


def test_an_empty_log_verifies() -> None:
    report = verify_chain([])
    assert report.ok
    assert report.entries == 0
    assert report.head == GENESIS


ENTRY_FIELDS = [f.name for f in dataclasses.fields(AuditEntry)]


@given(
    length=st.integers(min_value=1, max_value=30),
    data=st.data(),
)
def test_any_edit_of_any_member_is_detected_at_that_record(
    length: int, data: st.DataObject
) -> None:
    chain = a_chain(length)
    index = data.draw(st.integers(min_value=0, max_value=length - 1))
    member = data.draw(st.sampled_from(ENTRY_FIELDS))
    original = chain[index]
    current = getattr(original.entry, member)
    replacement: object
    if isinstance(current, str):
        replacement = current + "x"
    elif isinstance(current, int):
        replacement = current + 1
    elif current is None:
        replacement = "tampered"
    elif isinstance(current, dict):
        replacement = {**current, "id": "someone-else"}
    else:
        replacement = [*current, "extra"]
    entry = dataclasses.replace(original.entry, **{member: replacement})
    chain[index] = AuditRecord(original.seq, entry, original.prev_hash, original.hash)
    report = verify_chain(chain)
    assert not report.ok
    assert report.first_bad_seq == original.seq


@given(length=st.integers(min_value=2, max_value=30), data=st.data())
def test_a_removed_record_is_detected(length: int, data: st.DataObject) -> None:
    chain = a_chain(length)
    index = data.draw(st.integers(min_value=0, max_value=length - 2))
    removed = chain.pop(index)
    report = verify_chain(chain)
    assert not report.ok
    assert report.first_bad_seq == removed.seq


@given(length=st.integers(min_value=1, max_value=30), data=st.data())
def test_an_inserted_record_is_detected_even_with_a_recomputed_hash(
    length: int, data: st.DataObject
) -> None:
    chain = a_chain(length)
    index = data.draw(st.integers(min_value=0, max_value=length - 1))
    before = chain[index - 1].hash if index else GENESIS
    forged = link(chain[index].seq, an_entry(999), before)
    chain.insert(index, forged)
    report = verify_chain(chain)
    assert not report.ok
    # The forged record links correctly (no key is needed to hash); the displaced one
    # then stands where the next seq belongs.
    assert report.first_bad_seq == chain[index + 1].seq + 1


@given(length=st.integers(min_value=2, max_value=30), data=st.data())
def test_two_swapped_records_are_detected(length: int, data: st.DataObject) -> None:
    chain = a_chain(length)
    i = data.draw(st.integers(min_value=0, max_value=length - 2))
    j = data.draw(st.integers(min_value=i + 1, max_value=length - 1))
    chain[i], chain[j] = chain[j], chain[i]
    report = verify_chain(chain)
    assert not report.ok
    assert report.first_bad_seq == i + 1


@given(length=st.integers(min_value=2, max_value=30), data=st.data())
def test_swapping_contents_but_keeping_seq_is_detected(length: int, data: st.DataObject) -> None:
    chain = a_chain(length)
    i = data.draw(st.integers(min_value=0, max_value=length - 2))
    a, b = chain[i], chain[i + 1]
    chain[i] = AuditRecord(a.seq, b.entry, a.prev_hash, b.hash)
    chain[i + 1] = AuditRecord(b.seq, a.entry, b.prev_hash, a.hash)
    report = verify_chain(chain)
    assert not report.ok
    assert report.first_bad_seq == a.seq


def test_a_rehashed_edit_breaks_the_next_link() -> None:
    chain = a_chain(5)
    edited = dataclasses.replace(chain[2].entry, requester="in-gent")
    chain[2] = link(3, edited, chain[1].hash)
    report = verify_chain(chain)
    assert not report.ok
    assert report.first_bad_seq == 4
