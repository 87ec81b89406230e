"""``GET /v1/catalogue`` and ``GET /v1/agreements``: what is in force (any valid token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from hub.api.answers import AgreementPage, CataloguePage
from hub.api.deps import ContainerDep, require
from hub.api.openapi import PROTECTED, answer, limit_query, secured
from hub.domain.agreements import Agreement
from hub.domain.principal import Principal
from hub.policy.decide import brussels_day
from hub.services.paging import DEFAULT_LIMIT, check_limit, decode_position, encode_cursor

router = APIRouter(prefix="/v1", tags=["policy"])
Authenticated = Annotated[Principal, Depends(require(None))]


def _page(items: list[dict[str, Any]], cursor: str | None, limit: int) -> dict[str, Any]:
    check_limit(limit)
    start = decode_position(cursor) or 0
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return {"items": chunk, "next_cursor": encode_cursor(str(start + limit)) if more else None}


@router.get(
    "/catalogue",
    summary="The fields each source offers",
    response_model=None,
    responses={200: answer(CataloguePage, "A page of catalogue fields"), **PROTECTED},
    openapi_extra=secured(None),
)
async def catalogue(
    hub: ContainerDep,
    _principal: Authenticated,
    cursor: str | None = None,
    limit: Annotated[int, limit_query()] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    items = [
        {"source": f.source, "name": f.name, "category": f.category, "special": f.special}
        for source in sorted(hub.policies.catalogue)
        for f in sorted(hub.policies.catalogue[source].values(), key=lambda f: f.name)
    ]
    return _page(items, cursor, limit)


@router.get(
    "/agreements",
    summary="The processing agreements in force today",
    response_model=None,
    responses={200: answer(AgreementPage, "A page of agreements in force"), **PROTECTED},
    openapi_extra=secured(None),
)
async def agreements(
    hub: ContainerDep,
    _principal: Authenticated,
    cursor: str | None = None,
    limit: Annotated[int, limit_query()] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    today = brussels_day(hub.clock.now())
    items = [_agreement(a) for a in hub.policies.all_in_force(today)]
    return _page(items, cursor, limit)


def _agreement(a: Agreement) -> dict[str, Any]:
    return {
        "id": a.id,
        "version": a.version,
        "title": a.title,
        "provider": a.provider,
        "recipients": sorted(a.recipients),
        "purpose": a.purpose,
        "legal_basis": a.legal_basis,
        "special_category_condition": a.special_category_condition,
        "fields": sorted(a.fields),
        "roles": sorted(a.roles),
        "consent_required": a.consent_required,
        "valid_from": a.valid_from.isoformat(),
        "valid_until": None if a.valid_until is None else a.valid_until.isoformat(),
        "retention_days": a.retention_days,
    }
