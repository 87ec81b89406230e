"""Signed checkpoints and record tags, the pure part (``hub.domain.checkpoints``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hub.domain.audit import ChainReport
from hub.domain.checkpoints import (
    CHECKPOINT_EVERY,
    Anchor,
    Checkpoint,
    checkpoint_claims,
    checkpoint_due,
    hold_against,
    hold_tags,
    legacy_prefix_left,
    read_claims,
    tag_fault,
)

HEAD = "a" * 64
INTACT = ChainReport(ok=True, entries=250, head=HEAD)


def a_checkpoint(seq: int = 200, head: str = "c" * 64) -> Checkpoint:
    return Checkpoint(seq, head, "2026-06-15T10:00:00.000000Z", "jws")


def test_every_hundredth_record_is_signed() -> None:
    assert [s for s in range(301) if checkpoint_due(s)] == [100, 200, 300]
    assert CHECKPOINT_EVERY == 100


def test_claims_round_trip_and_anything_else_is_no_checkpoint() -> None:
    claims = checkpoint_claims(200, HEAD, "2026-06-15T10:00:00.000000Z")
    assert read_claims(claims, "jws") == Checkpoint(200, HEAD, claims["at"], "jws")
    assert read_claims(None, "jws") is None
    for bad in ({**claims, "seq": "200"}, {**claims, "seq": 0}, {**claims, "head": None}, {}):
        assert read_claims(bad, "jws") is None


def test_a_log_holding_its_checkpoint_is_intact_and_names_it() -> None:
    checkpoint = a_checkpoint()
    report = hold_against(INTACT, [Anchor(checkpoint, 200, checkpoint.head)])
    assert report.ok
    assert report.checkpoint == checkpoint
    assert report.as_dict()["checkpoint"]["seq"] == 200


def test_without_checkpoints_the_chain_report_stands() -> None:
    assert hold_against(INTACT, []) == INTACT


def test_records_cut_off_below_a_checkpoint() -> None:
    short = ChainReport(ok=True, entries=150, head=HEAD)
    report = hold_against(short, [Anchor(a_checkpoint(200), 200, None)])
    assert not report.ok
    assert report.first_bad_seq == 151
    assert report.problem is not None
    assert "cut off the end" in report.problem


def test_a_rewritten_log_does_not_hold_the_signed_hash() -> None:
    report = hold_against(INTACT, [Anchor(a_checkpoint(200), 200, "d" * 64)])
    assert not report.ok
    assert report.first_bad_seq == 200
    assert report.problem is not None
    assert "rewritten" in report.problem


@pytest.mark.parametrize("found", [None, a_checkpoint(300)])
def test_a_checkpoint_whose_signature_or_seq_does_not_hold_fails(
    found: Checkpoint | None,
) -> None:
    report = hold_against(INTACT, [Anchor(found, 200, "c" * 64)])
    assert not report.ok
    assert report.first_bad_seq == 200
    assert report.problem == "the checkpoint for record 200 is not signed by the hub"


def test_the_lowest_fault_is_reported_and_the_newest_good_checkpoint_named() -> None:
    good = a_checkpoint(100, "b" * 64)
    report = hold_against(
        INTACT,
        [Anchor(a_checkpoint(200), 200, "d" * 64), Anchor(good, 100, good.head)],
    )
    assert report.first_bad_seq == 200
    assert report.checkpoint == good


def test_a_damaged_chain_is_reported_as_the_chain_found_it() -> None:
    broken = ChainReport(ok=False, entries=7, head=HEAD, first_bad_seq=7, problem="changed")
    assert hold_against(broken, [Anchor(None, 200, None)]) == broken
    assert hold_tags(broken, [(8, HEAD, None)], str.upper) == broken


def test_records_after_the_checkpoint_must_carry_the_hubs_tag() -> None:
    def tag(record_hash: str) -> str:
        return record_hash.upper()

    good = [(201, "e" * 64, "E" * 64), (202, "f" * 64, "F" * 64)]
    assert hold_tags(INTACT, good, tag) == INTACT
    for forged in ((203, HEAD, None), (203, HEAD, "0" * 64)):
        report = hold_tags(INTACT, [*good, forged], tag)
        assert not report.ok
        assert report.first_bad_seq == 203
        assert report.problem == "record 203 does not carry the hub's tag: the hub did not write it"


def _upper(record_hash: str) -> str:
    return record_hash.upper()


LEGACY = [(1, "1" * 64, None), (2, "2" * 64, None), (3, "3" * 64, None)]
"""Records written before tags existed (migration 0003): the legacy prefix, 1 to 3."""
TAGGED = [(4, "e" * 64, "E" * 64), (5, "f" * 64, "F" * 64)]


def test_an_untagged_prefix_the_migration_recorded_is_excused() -> None:
    """Upgrade from before 0003 -> the log verifies (no false tamper alarm)."""
    assert tag_fault([*LEGACY, *TAGGED], _upper, legacy_through=3) is None
    assert hold_tags(INTACT, [*LEGACY, *TAGGED], _upper, legacy_through=3) == INTACT


def test_without_a_recorded_prefix_untagged_records_are_not_excused() -> None:
    assert tag_fault(LEGACY, _upper) == (
        1,
        "record 1 does not carry the hub's tag: the hub did not write it",
    )


def test_an_untagged_record_after_the_prefix_is_still_foreign() -> None:
    """Someone appends a well-made record without the key after the upgrade -> detected."""
    forged = (6, "6" * 64, None)
    assert tag_fault([*LEGACY, *TAGGED, forged], _upper, legacy_through=3) == (
        6,
        "record 6 does not carry the hub's tag: the hub did not write it",
    )


def test_raising_the_marker_over_tagged_records_excuses_nothing_after_them() -> None:
    """An attacker raises the marker to cover a record appended after tagged ones ->
    detected: an untagged record after a tagged one is never legacy."""
    forged = (6, "6" * 64, None)
    fault = tag_fault([*LEGACY, *TAGGED, forged], _upper, legacy_through=6)
    assert fault is not None
    assert fault[0] == 6


def test_an_untagged_record_after_a_tagged_one_inside_the_marker_is_foreign() -> None:
    records = [LEGACY[0], (2, "2" * 64, "2" * 64), LEGACY[2]]
    fault = tag_fault(records, _upper, legacy_through=3)
    assert fault is not None
    assert fault[0] == 3


def test_a_wrong_tag_inside_the_prefix_is_not_excused() -> None:
    records = [LEGACY[0], (2, "2" * 64, "0" * 64), LEGACY[2]]
    fault = tag_fault(records, _upper, legacy_through=3)
    assert fault is not None
    assert fault[0] == 2


def test_after_a_checkpoint_nothing_is_excused_whatever_the_marker() -> None:
    """Once a checkpoint holds, the records checked start after it: an untagged record
    there is foreign even with the marker raised over it."""
    assert tag_fault([(4, "4" * 64, None)], _upper, legacy_through=10) == (
        4,
        "record 4 does not carry the hub's tag: the hub did not write it",
    )


def test_the_prefix_to_close_is_what_was_excused_while_no_checkpoint_held() -> None:
    intact = ChainReport(ok=True, entries=5, head=HEAD)
    assert legacy_prefix_left(intact, 3) == 3
    assert legacy_prefix_left(intact, 0) == 0
    assert legacy_prefix_left(intact, 9) == 5
    assert legacy_prefix_left(replace(intact, checkpoint=a_checkpoint(5)), 3) == 0
    assert legacy_prefix_left(replace(intact, ok=False, first_bad_seq=2, problem="x"), 3) == 0
