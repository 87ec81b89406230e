"""The one place that turns errors into RFC 9457 problem+json responses.

A foreign exception's text never reaches a client: validation errors are reduced
to where and what (never the input, which may be an INSZ), and anything unexpected
is a bare 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.domain.errors import HubError, UnauthenticatedError, problem_type

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


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(
            400, generic_problem(400, "invalid-json", "The request body is not valid JSON.")
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


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == HTTPStatus.BAD_REQUEST:
        # FastAPI's own 400: a body its JSON parser could not read (bytes, depth, size).
        return problem_response(
            400, generic_problem(400, "invalid-json", "The request body is not valid JSON.")
        )
    reason = {
        404: "not-found",
        405: "method-not-allowed",
        413: "body-too-large",
    }.get(status, "http-error")
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(
        status, generic_problem(status, reason, HTTPStatus(status).description or ""), headers
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(HubError, _hub_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Unexpected exceptions are answered by hub.api.middleware, inside the security headers.
