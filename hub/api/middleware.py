"""Pure ASGI middleware: request body limit and headers every response carries.

Pure ASGI rather than ``BaseHTTPMiddleware``: it adds no task and no copy per request
on the exchange path.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.problems import PROBLEM_JSON, generic_problem

MAX_BODY_BYTES = 1024 * 1024

_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_SET_BY_US = frozenset(name for name, _ in _SECURITY_HEADERS)
_NO_STORE = (b"cache-control", b"no-store")
_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_DOCS_CSP = (b"content-security-policy", b"frame-ancestors 'none'")
"""No page of the hub may be framed (clickjacking), the documentation page included."""
_DOCS = ("/docs",)
"""The API documentation page runs Swagger UI's scripts; everything else runs none."""
log = structlog.get_logger("hub.api")


class BodyTooLargeError(HTTPException):
    """An HTTPException, so that FastAPI's body parsing passes it on to our 413 handler."""

    def __init__(self) -> None:
        super().__init__(413)


class HubMiddleware:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        documentation = str(scope.get("path", "")).startswith(_DOCS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k not in _SET_BY_US]
                headers.extend(_SECURITY_HEADERS)
                if not any(k == b"cache-control" for k, _ in headers):
                    headers.append(_NO_STORE)
                headers.append(_DOCS_CSP if documentation else _CSP)
                message = {**message, "headers": headers}
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await _too_large(send_with_headers)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send_with_headers(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            if not started:
                await _too_large(send_with_headers)
        except Exception as exc:  # noqa: BLE001 - the last line of defence answers, not crashes
            # Here rather than in Starlette's outermost error middleware, so that a 500
            # carries the same headers as every other answer (CONTRACT.md 5).
            log.error("unexpected_error", error_type=type(exc).__name__)  # noqa: TRY400 - no values
            if not started:
                await _send_problem(
                    send_with_headers,
                    500,
                    "internal-error",
                    "The hub failed; nothing was disclosed.",
                )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Any) -> None:
    await _send_problem(
        send, 413, "body-too-large", f"Request bodies are limited to {MAX_BODY_BYTES} bytes."
    )


async def _send_problem(send: Any, status: int, reason: str, detail: str) -> None:
    body = json.dumps(generic_problem(status, reason, detail)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
