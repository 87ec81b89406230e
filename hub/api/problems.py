"""The one place that turns errors into RFC 9457 problem+json responses.

A foreign exception's text never reaches a client: validation errors are reduced
to where and what (never the input, which may be an INSZ), and anything unexpected
is a bare 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.domain.errors import HubError, UnauthenticatedError, problem_type
from hub.domain.principal import Scope

PROBLEM_JSON = "application/problem+json"


def problem_response(
    status: int, document: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        dict(document), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def generic_problem(status: int, reason: str, detail: str) -> dict[str, Any]:
    return {
        "type": problem_type(reason),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "reason": reason,
    }


async def _hub_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HubError)
    headers = None
    if isinstance(exc, UnauthenticatedError):
        headers = {"WWW-Authenticate": 'Bearer realm="ketenhub", error="invalid_token"'}
    elif exc.status == HTTPStatus.FORBIDDEN and exc.reason == "insufficient-scope":
        headers = {"WWW-Authenticate": 'Bearer realm="ketenhub", error="insufficient_scope"'}
    return problem_response(exc.status, exc.to_problem(), headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return await _invalid_json(request)
    if isinstance(exc.body, bytes) and exc.body:
        # FastAPI passes a body on unread, as bytes, when its media type is not JSON (RFC
        # 9110 15.5.16). The token was checked already: it is a dependency of the route.
        return problem_response(
            415,
            generic_problem(
                415, "unsupported-media-type", "The request body must be application/json."
            ),
        )
    document = generic_problem(422, "invalid-request", "The request does not match the API.")
    document["errors"] = [_located(e) for e in errors[:20]]
    return problem_response(422, document)


def _located(error: Mapping[str, Any]) -> dict[str, Any]:
    location = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "extra_forbidden" and location:
        # The unknown member's name is the client's input (it may be anything, an INSZ too).
        location[-1] = "<unknown member>"
    return {"location": location, "message": str(error.get("msg", ""))}


async def _invalid_json(request: Request) -> Response:
    """400, once the caller has passed what a well-formed body would have to pass first.

    FastAPI reads a JSON body before it runs the route's dependencies; every other bad
    body is judged after the token. So that the order is one (413, 401, 429, 403, then
    400 or 422), the token, rate limit and scope are checked here first: a caller
    without a valid token learns nothing about how its body is read.
    """
    route = request.scope.get("route")
    extra: Mapping[str, Any] = getattr(route, "openapi_extra", None) or {}
    requirements: list[Mapping[str, list[str]]] = extra.get("security") or []
    if requirements:
        # deps imports this module (through the rate limiter's 429): import when used.
        from hub.api.deps import require  # noqa: PLC0415

        scopes = [scope for r in requirements for names in r.values() for scope in names]
        try:
            await require(Scope(scopes[0]) if scopes else None)(request)
        except HubError as refused:
            return await handled(request, refused)
    return problem_response(
        400, generic_problem(400, "invalid-json", "The request body is not valid JSON.")
    )


async def handled(request: Request, exc: HubError) -> Response:
    """The app's own answer to ``exc``: its most specific handler by the exception's MRO,
    as Starlette's ``ExceptionMiddleware`` picks it (the hub registers none by status)."""
    handlers = request.app.exception_handlers
    handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), _hub_error)
    answer: Response = await handler(request, exc)
    return answer


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == HTTPStatus.BAD_REQUEST:
        # FastAPI's own 400: a body its JSON parser could not read (bytes, depth, size).
        return await _invalid_json(request)
    reason = {
        404: "not-found",
        405: "method-not-allowed",
        413: "body-too-large",
    }.get(status, "http-error")
    headers = dict(exc.headers) if exc.headers else None
    if status == HTTPStatus.METHOD_NOT_ALLOWED:
        headers = _allowed(request, headers)
    return problem_response(
        status, generic_problem(status, reason, HTTPStatus(status).description or ""), headers
    )


def _allowed(request: Request, named: Mapping[str, str] | None) -> dict[str, str] | None:
    """RFC 9110 15.5.6: every method of the resource, also when two routes serve one path.

    Starlette names only the methods of the first route whose path matches; the
    document knows them all (and the header then says what the document says).
    """
    path = request.url.path
    paths: Mapping[str, Mapping[str, Any]] = request.app.openapi().get("paths", {})
    for template, operations in paths.items():
        if _template(template).fullmatch(path):
            return {**(named or {}), "Allow": ", ".join(sorted(m.upper() for m in operations))}
    return None if named is None else dict(named)


@cache
def _template(path: str) -> re.Pattern[str]:
    """A path template of the document as Starlette matches it (a parameter: no ``/``)."""
    parts = re.split(r"\{[^}]+\}", path)
    return re.compile("[^/]+".join(re.escape(p) for p in parts))


def install(app: FastAPI) -> None:
    app.add_exception_handler(HubError, _hub_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Unexpected exceptions are answered by hub.api.middleware, inside the security headers.
