"""The privacy officer's view of the audit log (CONTRACT.md section 4)."""

from __future__ import annotations

from datetime import datetime

from hub.domain.audit import AuditRecord, ChainReport
from hub.domain.exchange import Outcome
from hub.domain.ids import Insz, PartnerId, Purpose
from hub.domain.moments import format_timestamp
from hub.domain.principal import Principal
from hub.ports import AuditQuery, Database, KeyRing
from hub.services.paging import Page, check_limit, decode_position, encode_cursor


class AuditService:
    def __init__(self, *, db: Database, keys: KeyRing) -> None:
        self._db = db
        self._keys = keys

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
        return await verify_log(self._db)


async def verify_log(db: Database) -> ChainReport:
    """The chain check over the whole log (also used offline by the CLI)."""
    return await db.scan(lambda uow: uow.audit.verify())
