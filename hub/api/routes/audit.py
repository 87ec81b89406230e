"""The privacy officer's API (CONTRACT.md 4, scope ``audit:read``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from hub.api.answers import AuditEventPage, Verification
from hub.api.deps import ContainerDep, parse_moment, require
from hub.api.openapi import PROTECTED, answer, limit_query, secured
from hub.api.schemas import Slug
from hub.domain.exchange import Outcome
from hub.domain.ids import Insz, PartnerId, Purpose
from hub.domain.principal import Principal, Scope
from hub.services.paging import DEFAULT_LIMIT

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Officer = Annotated[Principal, Depends(require(Scope.AUDIT_READ))]


@router.get(
    "/events",
    summary="Audit events, newest first",
    response_model=None,
    responses={200: answer(AuditEventPage, "A page of audit events"), **PROTECTED},
    openapi_extra=secured(Scope.AUDIT_READ),
)
async def events(  # noqa: PLR0917
    hub: ContainerDep,
    principal: Officer,
    participant: Annotated[str | None, Query(max_length=32)] = None,
    partner: Slug | None = None,
    purpose: Slug | None = None,
    decision: Outcome | None = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, limit_query()] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    page = await hub.audit.events(
        principal,
        participant=None if participant is None else Insz.parse(participant),
        partner=None if partner is None else PartnerId(partner),
        purpose=None if purpose is None else Purpose(purpose),
        decision=decision,
        since=None if since is None else parse_moment(since, name="since"),
        until=None if until is None else parse_moment(until, name="until"),
        cursor=cursor,
        limit=limit,
    )
    return {"items": [r.as_dict() for r in page.items], "next_cursor": page.next_cursor}


@router.get(
    "/verify",
    summary="Verify the whole hash chain",
    response_model=None,
    responses={200: answer(Verification, "Whether the log is intact"), **PROTECTED},
    openapi_extra=secured(Scope.AUDIT_READ),
)
async def verify(hub: ContainerDep, _principal: Officer) -> dict[str, Any]:
    return (await hub.audit.verify()).as_dict()
