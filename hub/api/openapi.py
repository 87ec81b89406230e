"""What the OpenAPI document says about errors and security, so it describes the API as it is.

FastAPI would document every 422 as its own ``HTTPValidationError``; the hub answers
every error as RFC 9457 problem+json, and partners generate clients from this document.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Query
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict

from hub.api import answers
from hub.api.problems import PROBLEM_JSON
from hub.domain.principal import Scope
from hub.services.paging import MAX_LIMIT

SCHEME = "oauth2"
COMPONENTS = "#/components/schemas/"


class Problem(BaseModel):
    """RFC 9457 problem details; ``reason`` is the contract's machine-readable reason."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    reason: str | None = None


class OAuthError(BaseModel):
    """RFC 6749 5.2 error response of the token endpoint, with the problem members beside."""

    model_config = ConfigDict(extra="allow")

    error: str
    error_description: str | None = None
    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None


def oauth_errors(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of the token endpoint: RFC 6749 5.2 errors, ``application/json``."""
    return {
        status: {
            "description": descriptions.get(f"s{status}", HTTPStatus(status).phrase),
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}
            },
        }
        for status in statuses
    }


def limit_query() -> Any:
    """``limit`` of a list answer (CONTRACT.md 5), as the document states it.

    The bounds are documented, not enforced here: the service checks them, so that the
    ``422`` names its reason (``invalid-limit``) rather than a generic validation error.
    """
    return Query(
        description=f"Items per page, 1 to {MAX_LIMIT}",
        json_schema_extra={"minimum": 1, "maximum": MAX_LIMIT},
    )


def answer(model: type[BaseModel], description: str) -> dict[str, Any]:
    """One ``responses=`` entry: a JSON success answer described by one of ``answers``."""
    assert model in answers.DOCUMENTED, model
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"{COMPONENTS}{model.__name__}"}}},
    }


def problems(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for these statuses, each a problem+json; ``descriptions`` by ``sNNN``."""
    return {
        status: {
            "description": descriptions.get(f"s{status}", HTTPStatus(status).phrase),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def secured(scope: Scope | None) -> dict[str, Any]:
    """``openapi_extra=`` naming the token scope an operation needs."""
    return {"security": [{SCHEME: [] if scope is None else [str(scope)]}]}


PROTECTED = problems(
    401,
    403,
    413,
    422,
    429,
    503,
    s401="No valid access token (reason invalid-token). The checks come in one order: "
    "body size (413), token (401), rate limit (429), scope (403), then the body (400, 422)",
    s403="The token lacks the scope (reason insufficient-scope), or the contract forbids it",
    s413="Body over 1 MiB",
    s422="Invalid request (reason names the rule)",
    s429="Too many requests for this client (reason rate-limited); Retry-After says when to retry",
    s503="A dependency of the hub failed; nothing was disclosed",
)


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {})["Problem"] = Problem.model_json_schema()
            components["schemas"]["OAuthError"] = OAuthError.model_json_schema()
            for model in answers.DOCUMENTED:
                found = model.model_json_schema(ref_template=f"{COMPONENTS}{{model}}")
                components["schemas"].update(found.pop("$defs", {}))
                components["schemas"][model.__name__] = found
            components["securitySchemes"] = {
                SCHEME: {
                    "type": "oauth2",
                    "description": "Client credentials: client_secret_basic, "
                    "client_secret_post or private_key_jwt (RFC 7523).",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": "/oauth/token",
                            "scopes": {
                                str(Scope.EXCHANGE): "Ask sources for fields",
                                str(Scope.CONSENT_WRITE): "Record, list and revoke consents",
                                str(Scope.AUDIT_READ): "Read and verify the audit log",
                            },
                        }
                    },
                }
            }
            for name in ("HTTPValidationError", "ValidationError"):
                components["schemas"].pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
