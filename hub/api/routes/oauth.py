"""``POST /oauth/token`` and ``GET /.well-known/jwks.json`` (CONTRACT.md 3)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hub.api.deps import ContainerDep

router = APIRouter(tags=["oauth"])


@router.post(
    "/oauth/token",
    summary="OAuth 2.0 client credentials (RFC 6749 4.4; RFC 7523 private_key_jwt)",
    responses={
        200: {
            "description": "An access token (RFC 6749 5.1)",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["access_token", "token_type", "expires_in"],
                        "properties": {
                            "access_token": {"type": "string"},
                            "token_type": {"const": "Bearer"},
                            "expires_in": {"type": "integer", "maximum": 900},
                            "scope": {"type": "string"},
                        },
                    }
                }
            },
        },
        400: {"description": "RFC 6749 5.2 error (error, error_description, problem members)"},
        401: {"description": "invalid_client"},
        429: {"description": "slow_down: too many requests for this client id (Retry-After)"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {"const": "client_credentials"},
                            "scope": {"type": "string"},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                            "client_assertion_type": {
                                "const": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                            },
                            "client_assertion": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
)
async def token(request: Request, hub: ContainerDep) -> JSONResponse:
    body = await request.body()
    answer = await hub.token_endpoint.handle(
        url=str(request.url),
        headers=dict(request.headers),
        body=body,
        db=hub.db,
        remote=request.client.host if request.client else None,
    )
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


@router.get("/.well-known/jwks.json", summary="The hub's public signing keys (RFC 7517)")
async def jwks(hub: ContainerDep) -> JSONResponse:
    return JSONResponse(hub.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})
