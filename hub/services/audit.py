"""The audit log: appending with signed checkpoints, and the privacy officer's view
(CONTRACT.md section 4)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from hub.domain.audit import AuditEntry, AuditRecord, ChainReport
from hub.domain.checkpoints import (
    CHECKPOINT_TYP,
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
from hub.domain.errors import ServiceUnavailableError
from hub.domain.exchange import Outcome
from hub.domain.ids import Insz, PartnerId, Purpose
from hub.domain.moments import format_timestamp
from hub.domain.principal import Principal
from hub.ports import AuditQuery, Clock, Database, KeyRing, UnitOfWork
from hub.services.paging import Page, check_limit, decode_position, encode_cursor

log = structlog.get_logger("hub.audit")


class AuditTrail:
    """Appends to the chain inside the caller's transaction, signing checkpoints.

    Every use case that records an event appends through this, so that each
    ``CHECKPOINT_EVERY``-th record is signed in its own transaction.
    """

    def __init__(self, *, keys: KeyRing, clock: Clock) -> None:
        self._keys = keys
        self._clock = clock

    def append(self, uow: UnitOfWork, entry: AuditEntry) -> AuditRecord:
        record = uow.audit.append(entry, tag=self.tag)
        if checkpoint_due(record.seq):
            uow.audit.add_checkpoint(self._sign(record.seq, record.hash))
        return record

    def checkpoint_head(self, uow: UnitOfWork) -> Checkpoint | None:
        """Sign the newest record unless a checkpoint names it already, whoever wrote
        the records since the last one (tools that write a log apart from the hub; the
        hub itself signs with ``checkpoint_own_head``)."""
        seq, head = uow.audit.head()
        latest = uow.audit.latest_checkpoint()
        if seq == 0 or (latest is not None and latest.seq >= seq):
            return None
        checkpoint = self._sign(seq, head)
        uow.audit.add_checkpoint(checkpoint)
        return checkpoint

    def checkpoint_own_head(self, uow: UnitOfWork) -> Checkpoint | None:
        """``checkpoint_head`` (the hub stops), but only when every record since the
        newest checkpoint carries the hub's tag or is excused legacy (``tag_fault``).

        A checkpoint vouches for everything below it and ends the legacy prefix's
        excuse: signed over a record someone else appended, it would hide that record
        for good. So a fault is logged and nothing is signed; ``verify`` reports it.
        """
        seq, _head = uow.audit.head()
        latest = uow.audit.latest_checkpoint()
        if seq == 0 or (latest is not None and latest.seq >= seq):
            return None
        after = 0 if latest is None else latest.seq
        fault = tag_fault(
            uow.audit.tags_after(after), self.tag, legacy_through=uow.audit.legacy_through()
        )
        if fault is not None:
            log.error("audit_checkpoint_refused", first_bad_seq=fault[0], problem=fault[1])
            return None
        return self.checkpoint_head(uow)

    def checkpoint_legacy(self, uow: UnitOfWork, seq: int, head: str) -> Checkpoint | None:
        """Sign record ``seq``, the end of a legacy prefix a verification just excused,
        unless a checkpoint at or above it exists or the record is no longer ``head``."""
        latest = uow.audit.latest_checkpoint()
        if latest is not None and latest.seq >= seq:
            return None
        if uow.audit.hash_at(seq) != head:
            return None
        checkpoint = self._sign(seq, head)
        uow.audit.add_checkpoint(checkpoint)
        return checkpoint

    @staticmethod
    def committed(record: AuditRecord) -> None:
        """After the commit: a checkpoint signed with ``record`` is logged, so that the
        log shipped off the machine holds the hash too (an anchor outside the database)."""
        if checkpoint_due(record.seq):
            log.info("audit_checkpoint", seq=record.seq, head=record.hash)

    def tag(self, record_hash: str) -> str:
        """The record's tag: proves the hub wrote it (``hub.domain.checkpoints``)."""
        return record_tag(self._keys, record_hash)

    def _sign(self, seq: int, head: str) -> Checkpoint:
        at = format_timestamp(self._clock.now())
        jws = self._keys.sign(checkpoint_claims(seq, head, at), typ=CHECKPOINT_TYP)
        return Checkpoint(seq, head, at, jws)


class AuditService:
    def __init__(self, *, db: Database, keys: KeyRing, trail: AuditTrail) -> None:
        self._db = db
        self._keys = keys
        self._trail = trail

    async def events(
        self,
        principal: Principal,
        *,
        participant: Insz | None = None,
        partner: PartnerId | None = None,
        purpose: Purpose | None = None,
        decision: Outcome | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[AuditRecord]:
        check_limit(limit)
        before = decode_position(cursor)
        query = AuditQuery(
            participant=None if participant is None else self._keys.pseudonym(participant),
            partner=partner,
            purpose=purpose,
            decision=decision,
            since=None if since is None else format_timestamp(since),
            until=None if until is None else format_timestamp(until),
            visible_to=None if principal.is_operator else principal.partner,
            before_seq=before,
        )
        found = await self._db.read(lambda uow: uow.audit.page(query, limit + 1))
        items = list(found[:limit])
        more = len(found) > limit
        return Page(items, encode_cursor(str(items[-1].seq)) if more and items else None)

    async def verify(self) -> ChainReport:
        """``verify_log``; when it passed by excusing a legacy prefix (records from
        before migration 0003), the hub then signs a checkpoint over that prefix, so that
        from now on nothing is excused (``hub.domain.checkpoints``). Signing only after
        the whole log verified is what keeps this from blessing someone else's records.
        """
        report, legacy = await _verified(self._db, self._keys, ())
        if legacy is not None:
            try:
                signed = await self._db.write(
                    lambda uow: self._trail.checkpoint_legacy(uow, *legacy)
                )
            except ServiceUnavailableError:
                # The answer stands; the next verification or the stop signs it.
                log.warning("audit_legacy_checkpoint_not_signed", seq=legacy[0])
            else:
                if signed is not None:
                    log.info("audit_checkpoint", seq=signed.seq, head=signed.head, legacy=True)
        return report

    async def checkpoint(self) -> Checkpoint | None:
        """Sign the newest record when every record since the newest checkpoint is the
        hub's (the hub stops: CONTRACT.md 4)."""
        signed = await self._db.write(self._trail.checkpoint_own_head)
        if signed is not None:
            log.info("audit_checkpoint", seq=signed.seq, head=signed.head)
        return signed


def record_tag(keys: KeyRing, record_hash: str) -> str:
    return keys.digest(record_hash, context=_TAG_CONTEXT)


_TAG_CONTEXT = "audit-record"


def read_checkpoint(keys: KeyRing, jws: str) -> Checkpoint | None:
    """The checkpoint a compact JWS holds when one of the hub's keys signed it."""
    return read_claims(keys.verify(jws, typ=CHECKPOINT_TYP), jws)


async def verify_log(
    db: Database, keys: KeyRing, anchors: Sequence[Checkpoint] = ()
) -> ChainReport:
    """The whole log: the chain, held against the newest stored checkpoint and against
    ``anchors``, checkpoints kept elsewhere (``read_checkpoint``), and the tags of the
    records after the newest checkpoint that holds (a legacy prefix excused while none
    does: ``hub.domain.checkpoints.tag_fault``). Also used offline by the CLI."""
    report, _legacy = await _verified(db, keys, anchors)
    return report


async def _verified(
    db: Database, keys: KeyRing, anchors: Sequence[Checkpoint]
) -> tuple[ChainReport, tuple[int, str] | None]:
    """``verify_log``'s report, and the seq and hash of the last legacy record it
    excused (None when it excused none)."""

    def check(uow: UnitOfWork) -> tuple[ChainReport, tuple[int, str] | None]:
        # The checkpoint first: one read now names a record the log already held.
        stored = uow.audit.latest_checkpoint()
        report = uow.audit.verify()
        held = [Anchor(a, a.seq, uow.audit.hash_at(a.seq)) for a in anchors]
        if stored is not None:
            found = read_checkpoint(keys, stored.jws)
            held.append(Anchor(found, stored.seq, uow.audit.hash_at(stored.seq)))
        report = hold_against(report, held)
        after = 0 if report.checkpoint is None else report.checkpoint.seq
        legacy_through = uow.audit.legacy_through()
        report = hold_tags(
            report,
            uow.audit.tags_after(after),
            lambda h: record_tag(keys, h),
            legacy_through=legacy_through,
        )
        last = legacy_prefix_left(report, legacy_through)
        last_hash = uow.audit.hash_at(last) if last else None
        return report, None if last_hash is None else (last, last_hash)

    return await db.scan(check)
