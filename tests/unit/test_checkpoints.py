"""Signed checkpoints and record tags, the pure part (``hub.domain.checkpoints``)."""

from __future__ import annotations

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
    read_claims,
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
