"""``POST /v1/exchange`` (CONTRACT.md 3): the field-level disclosure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import Response

from hub.api.answers import Disclosure
from hub.api.deps import ContainerDep, check_identifiers, require
from hub.api.openapi import PROTECTED, answer, problems, secured
from hub.api.problems import PROBLEM_JSON
from hub.api.schemas import ExchangeBody
from hub.domain.errors import InvalidInputError
from hub.domain.exchange import Actor, ExchangeRequest
from hub.domain.ids import FieldName, Insz, PartnerId, Purpose, Role
from hub.domain.principal import Principal, Scope

router = APIRouter(prefix="/v1", tags=["exchange"])
_OK = 200


@router.post(
    "/exchange",
    summary="Ask a source for fields of one participant",
    responses={
        200: answer(Disclosure, "At least one field disclosed; the others are in withheld"),
        **PROTECTED,
        **problems(
            400,
            403,
            404,
            409,
            422,
            502,
            503,
            504,
            415,
            s400="The body is not JSON",
            s415="The body's media type is not application/json",
            s403="Nothing disclosed (reason nothing-disclosed, with withheld and audit_seq)",
            s404="The source does not know the participant (reason unknown-participant)",
            s409="An Idempotency-Key raced with itself and cannot be replayed; send again",
            s422="Invalid request, INSZ, source, or an Idempotency-Key reused with another body",
            s502="The source failed (reason source-unavailable); nothing disclosed",
            s503="The hub could not record the decision; nothing disclosed",
            s504="The source timed out (reason source-unavailable); nothing disclosed",
        ),
    },
    openapi_extra=secured(Scope.EXCHANGE),
)
async def exchange(
    body: ExchangeBody,
    hub: ContainerDep,
    principal: Annotated[Principal, Depends(require(Scope.EXCHANGE))],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    check_identifiers(
        body.fields,
        purpose=body.purpose,
        **{"actor.role": body.actor.role, "actor.id": body.actor.id},
    )
    request = ExchangeRequest(
        requester=principal.partner,
        participant=Insz.parse(body.participant),
        source=PartnerId(body.source),
        purpose=Purpose(body.purpose),
        fields=tuple(FieldName(f) for f in body.fields),
        actor=Actor(Role(body.actor.role), body.actor.id),
    )
    if idempotency_key is not None and not idempotency_key.strip():
        raise InvalidInputError("invalid-idempotency-key", "Idempotency-Key must not be empty.")
    answer = await hub.exchange.exchange(request, idempotency_key)
    headers = {"Idempotency-Replayed": "true"} if answer.replayed else None
    # The exact bytes encoded before the audit record committed: nothing can fail after.
    return Response(
        answer.content,
        status_code=answer.status,
        media_type="application/json" if answer.status == _OK else PROBLEM_JSON,
        headers=headers,
    )
