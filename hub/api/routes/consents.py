"""Consents (CONTRACT.md 3, scope ``consent:write``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from consent.model import Consent
from hub.api.answers import ConsentPage, GrantedConsent, RevokedConsent
from hub.api.deps import ContainerDep, check_identifiers, parse_moment, require
from hub.api.openapi import PROTECTED, answer, limit_query, problems, secured
from hub.api.schemas import CONSENT_ID_PATTERN, ConsentBody
from hub.domain.ids import FieldName, Insz, PartnerId, Purpose
from hub.domain.moments import iso_utc
from hub.domain.principal import Principal, Scope
from hub.services.paging import DEFAULT_LIMIT

router = APIRouter(prefix="/v1/consents", tags=["consents"])
Writer = Annotated[Principal, Depends(require(Scope.CONSENT_WRITE))]


def _item(consent: Consent, participant: str, now: Any) -> dict[str, Any]:
    return {
        "id": consent.id,
        "participant": participant,
        "recipient": consent.recipient,
        "purpose": consent.purpose,
        "fields": sorted(consent.fields),
        "status": str(consent.status_at(now)),
        "valid_until": iso_utc(consent.valid_until),
        "granted_at": iso_utc(consent.granted_at),
        "revoked_at": iso_utc(consent.revoked_at),
    }


@router.post(
    "",
    status_code=201,
    summary="Record a consent the participant gave to the calling partner",
    responses={
        201: answer(GrantedConsent, "The consent, active, with its signed receipt"),
        **PROTECTED,
        **problems(
            400,
            403,
            415,
            s403="recipient is not the token's partner, or scope missing",
            s415="The body's media type is not application/json",
        ),
    },
    openapi_extra=secured(Scope.CONSENT_WRITE),
)
async def grant(body: ConsentBody, hub: ContainerDep, principal: Writer) -> JSONResponse:
    participant = Insz.parse(body.participant)
    valid_until = (
        None
        if body.valid_until is None
        else parse_moment(body.valid_until, name="valid_until", end_of_day=True)
    )
    check_identifiers(body.fields, purpose=body.purpose)
    granted = await hub.consents.grant(
        principal,
        participant=participant,
        recipient=PartnerId(body.recipient),
        purpose=Purpose(body.purpose),
        fields=[FieldName(f) for f in body.fields],
        valid_until=valid_until,
        evidence=body.evidence,
    )
    document = {
        **_item(granted.consent, participant.digits, hub.clock.now()),
        "receipt": granted.receipt,
    }
    return JSONResponse(document, status_code=201)


@router.get(
    "",
    summary="The consents of a participant given to the calling partner",
    response_model=None,
    responses={200: answer(ConsentPage, "A page of consents"), **PROTECTED},
    openapi_extra=secured(Scope.CONSENT_WRITE),
)
async def list_consents(
    hub: ContainerDep,
    principal: Writer,
    participant: Annotated[str, Query(max_length=32)],
    cursor: str | None = None,
    limit: Annotated[int, limit_query()] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    insz = Insz.parse(participant)
    page = await hub.consents.page(principal, participant=insz, cursor=cursor, limit=limit)
    now = hub.clock.now()
    return {
        "items": [_item(c, insz.digits, now) for c in page.items],
        "next_cursor": page.next_cursor,
    }


@router.post(
    "/{consent_id}/revoke",
    summary="Revoke a consent; it blocks every exchange decided after this returns",
    response_model=None,
    responses={
        200: answer(RevokedConsent, "The consent, revoked"),
        **PROTECTED,
        **problems(404, s404="No such consent given to the calling partner"),
    },
    openapi_extra=secured(Scope.CONSENT_WRITE),
)
async def revoke(
    hub: ContainerDep,
    principal: Writer,
    consent_id: Annotated[str, Path(max_length=64, pattern=CONSENT_ID_PATTERN)],
) -> dict[str, Any]:
    consent = await hub.consents.revoke(principal, consent_id)
    return {"id": consent.id, "status": "revoked", "revoked_at": iso_utc(consent.revoked_at)}
