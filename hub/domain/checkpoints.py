"""Signed checkpoints of the audit log: what proves that no record was cut off its end.

The hash chain (``hub.domain.audit``) proves that no stored record was changed,
removed, inserted or reordered, but not that the newest records are all still there:
a log cut short is a valid chain. So the hub signs a checkpoint, ``{seq, head}`` (the
seq and hash of a record), at every ``CHECKPOINT_EVERY``-th record, in that record's
own transaction, and one more when it stops (CONTRACT.md 4).

Checking the newest checkpoint is enough. Records cut off below it are missing; and a
record changed anywhere before it with every later hash made anew (the one change
the chain alone cannot see) changes the hash at the checkpoint's seq, which only the
hub's key could sign again. Checkpoints kept outside the database (a privacy
officer's copy of one ``GET /v1/audit/verify`` answered) are checked the same way,
and also catch a log cut short together with its newest checkpoints.

The records after the newest checkpoint are covered by their ``tag``: an HMAC of the
record's hash under a hub key, written with the record. A record someone appended
with a well-made hash but without the key has no valid tag.

Records written before tags existed (migration 0003) have none: the *legacy prefix*,
records 1 to ``legacy_through`` (recorded once by migration 0005). Their missing tag
is excused only while no checkpoint holds (every checkpoint the hub signs lies at or
above the prefix, so once one holds, the prefix is below it and nothing is excused),
and only for an unbroken run of untagged records from seq 1: an untagged record after
a tagged one is never legacy, whatever ``legacy_through`` says.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from hub.domain.audit import ChainReport

CHECKPOINT_EVERY: Final = 100
CHECKPOINT_TYP: Final = "ketenhub-audit-checkpoint+jwt"
"""The JWS ``typ`` (RFC 8725 3.11): a checkpoint never passes for a token or a receipt."""


def checkpoint_due(seq: int) -> bool:
    """Whether the record ``seq`` is one the hub signs a checkpoint for as it appends it."""
    return seq > 0 and seq % CHECKPOINT_EVERY == 0


def checkpoint_claims(seq: int, head: str, at: str) -> dict[str, Any]:
    """What a checkpoint signs: record ``seq`` has hash ``head``; signed at ``at``."""
    return {"seq": seq, "head": head, "at": at}


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    head: str
    at: str
    jws: str
    """The compact JWS the hub signed over ``checkpoint_claims``."""

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "head": self.head, "at": self.at, "jws": self.jws}


def read_claims(claims: Mapping[str, Any] | None, jws: str) -> Checkpoint | None:
    """The checkpoint in signature-checked claims; None when they are not one."""
    if claims is None:
        return None
    seq, head, at = claims.get("seq"), claims.get("head"), claims.get("at")
    if type(seq) is not int or seq < 1 or not isinstance(head, str) or not isinstance(at, str):
        return None
    return Checkpoint(seq, head, at, jws)


@dataclass(frozen=True, slots=True)
class Anchor:
    """A checkpoint to hold the log against, and what the log holds at its seq."""

    found: Checkpoint | None
    """The checkpoint as its signature proves it; None when the signature does not hold."""
    seq: int
    """The seq it claims (the stored column for one kept in the database)."""
    stored_hash: str | None
    """The hash of the log's record ``seq``; None when there is no such record."""


def hold_against(report: ChainReport, anchors: Iterable[Anchor]) -> ChainReport:
    """The chain's report, made a failure when a checkpoint shows the log cut or rewritten.

    ``report`` is the chain check's; a damaged chain is reported as it is. Each anchor
    whose signature does not hold, whose record is missing (records cut off the end) or
    whose record's hash is not the signed one (the log rewritten up to it) makes the
    report fail; the lowest seq such a fault points at is reported.
    """
    if not report.ok:
        return report
    faults: list[tuple[int, str]] = []
    confirmed: Checkpoint | None = None
    for anchor in anchors:
        found = anchor.found
        if found is None or found.seq != anchor.seq:
            unsigned = f"the checkpoint for record {anchor.seq} is not signed by the hub"
            faults.append((anchor.seq, unsigned))
        elif anchor.stored_hash is None:
            cut = (
                f"records cut off the end: a signed checkpoint names record {found.seq}, "
                f"the log ends at {report.entries}"
            )
            faults.append((report.entries + 1, cut))
        elif anchor.stored_hash != found.head:
            rewritten = (
                f"record {found.seq} is not the one its signed checkpoint names: "
                "the log was rewritten up to it"
            )
            faults.append((found.seq, rewritten))
        elif confirmed is None or found.seq > confirmed.seq:
            confirmed = found
    if faults:
        seq, problem = min(faults)
        return replace(report, ok=False, first_bad_seq=seq, problem=problem, checkpoint=confirmed)
    return replace(report, checkpoint=confirmed)


TagRow = tuple[int, str, str | None]
"""A record's seq, hash and tag, as stored."""


def hold_tags(
    report: ChainReport,
    records: Iterable[TagRow],
    tag: Callable[[str], str],
    *,
    legacy_through: int = 0,
) -> ChainReport:
    """The report, made a failure at the first record whose tag is not the hub's.

    ``records`` are the ones after the newest confirmed checkpoint (the checkpoint
    covers those before it); ``tag`` makes the hub's tag of a hash;
    ``legacy_through`` is where the legacy prefix ends (``tag_fault``).
    """
    if not report.ok:
        return report
    fault = tag_fault(records, tag, legacy_through=legacy_through)
    if fault is None:
        return report
    seq, problem = fault
    return replace(report, ok=False, first_bad_seq=seq, problem=problem)


def tag_fault(
    records: Iterable[TagRow], tag: Callable[[str], str], *, legacy_through: int = 0
) -> tuple[int, str] | None:
    """The first record of ``records`` whose tag is not the hub's, and why; None if none.

    A missing tag is excused for record ``seq`` only when ``seq <= legacy_through`` and
    the records before it in ``records`` are seqs 1 to ``seq - 1``, all untagged: the
    legacy prefix starts the log. ``records`` that start after a checkpoint (not at
    seq 1) therefore excuse nothing, and neither does a tagged record before an
    untagged one.
    """
    legacy = 1  # the seq the legacy prefix continues with; 0 once it has ended
    for seq, hash_, found in records:
        if found is None and legacy and seq == legacy and seq <= legacy_through:
            legacy += 1
            continue
        legacy = 0
        if found is None or not hmac.compare_digest(found, tag(hash_)):
            return seq, f"record {seq} does not carry the hub's tag: the hub did not write it"
    return None


def legacy_prefix_left(report: ChainReport, legacy_through: int) -> int:
    """The seq of the newest legacy record the verifier excused in ``report``, 0 if none.

    ``report`` is the whole verification's (``hold_tags`` applied): while it holds and
    no checkpoint did, records 1 to ``min(legacy_through, entries)`` were excused; a
    checkpoint over that record closes the window (the hub signs one).
    """
    if not report.ok or report.checkpoint is not None:
        return 0
    return min(legacy_through, report.entries)
