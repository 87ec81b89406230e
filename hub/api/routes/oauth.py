"""``POST /oauth/token`` and ``GET /.well-known/jwks.json`` (CONTRACT.md 3)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hub.api.deps import ContainerDep

router = APIRouter(tags=["oauth"])


@router.post(
    "/oauth/token",
    summary="OAuth 2.0 client credentials (RFC 6749 4.4; RFC 7523 private_key_jwt)",
    responses={400: {"description": "RFC 6749 5.2 error"}, 401: {"description": "invalid_client"}},
)
async def token(request: Request, hub: ContainerDep) -> JSONResponse:
    body = await request.body()
    answer = await hub.token_endpoint.handle(
        url=str(request.url), headers=dict(request.headers), body=body, db=hub.db
    )
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


@router.get("/.well-known/jwks.json", summary="The hub's public signing keys (RFC 7517)")
async def jwks(hub: ContainerDep) -> JSONResponse:
    return JSONResponse(hub.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})
