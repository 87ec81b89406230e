"""``POST /oauth/token`` and ``GET /.well-known/jwks.json`` (CONTRACT.md 3)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hub.api.answers import Jwks
from hub.api.deps import ContainerDep
from hub.api.openapi import answer, oauth_errors, problems

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
        **oauth_errors(
            400,
            401,
            429,
            s400="RFC 6749 5.2 error: invalid_request, invalid_client (credentials in the "
            "body), invalid_grant, unauthorized_client, unsupported_grant_type, invalid_scope",
            s401="invalid_client, with a Basic challenge (the Authorization header or no "
            "credentials were tried)",
            s429="slow_down (RFC 8628 3.5): too many requests for this client id; "
            "Retry-After says when to retry",
        ),
        **problems(413, s413="Body over 1 MiB (problem+json: the hub's limit, before OAuth)"),
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


@router.get(
    "/.well-known/jwks.json",
    summary="The hub's public signing keys (RFC 7517)",
    response_model=None,
    responses={200: answer(Jwks, "A JWK Set")},
)
async def jwks(hub: ContainerDep) -> JSONResponse:
    return JSONResponse(hub.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})
