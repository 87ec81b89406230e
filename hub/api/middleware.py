"""Pure ASGI middleware: correlation id, request metrics, request body limit, and
headers every response carries.

Pure ASGI rather than ``BaseHTTPMiddleware``: it adds no task and no copy per request
on the exchange path.

Correlation (``hub.observability.tracecontext``): a request's correlation id is the
trace id of its W3C ``traceparent`` header when that is valid, else 16 random bytes
(hex). It is set as the request's trace (a context variable), which puts it on every
log line of the request and which the REST adapter passes on to sources, and returned
as ``X-Correlation-Id``.

Metrics: each answered request is counted by its route's template (never the raw
path: a path can hold a consent id), method and status, and timed to its last byte.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.fastpath import LeanRoute
from hub.api.problems import PROBLEM_JSON, generic_problem
from hub.observability import tracecontext
from hub.observability.metrics import UNMATCHED_ROUTE, PrometheusTelemetry

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
CORRELATION_HEADER = b"x-correlation-id"
_TRACEPARENT = b"traceparent"
_CONTENT_LENGTH = b"content-length"
log = structlog.get_logger("hub.api")


class BodyTooLargeError(HTTPException):
    """An HTTPException, so that FastAPI's body parsing passes it on to our 413 handler."""

    def __init__(self) -> None:
        super().__init__(413)


class HubMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body: int = MAX_BODY_BYTES,
        new_trace_id: Callable[[], str] = tracecontext.new_trace_id,
        lean: Mapping[tuple[str, str], LeanRoute] | None = None,
    ) -> None:
        """``lean``: routes served past the framework, by exact method and path
        (``hub.api.fastpath``); the framework (``app``) serves every other request."""
        self.app = app
        self.max_body = max_body
        self.new_trace_id = new_trace_id
        self.lean = dict(lean or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        declared, traceparent = _read_headers(scope)
        trace = None if traceparent is None else tracecontext.parse_traceparent(traceparent)
        if trace is None:
            trace = tracecontext.Trace(self.new_trace_id())
        # Every log line of the request carries it (hub.logging's add_correlation_id).
        trace_token = tracecontext.CURRENT.set(trace)
        status: list[int | None] = [None]  # set when the answer starts
        try:
            await self._serve(scope, receive, send, declared=declared, trace=trace, status=status)
        finally:
            tracecontext.CURRENT.reset(trace_token)
            metrics = _metrics_of(scope)
            if metrics is not None:
                route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
                metrics.request_served(
                    route, scope["method"], status[0] or 500, time.perf_counter() - started
                )

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        declared: int | None,
        trace: tracecontext.Trace,
        status: list[int | None],
    ) -> None:
        documentation = str(scope.get("path", "")).startswith(_DOCS)
        correlation = (CORRELATION_HEADER, trace.trace_id.encode())

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k not in _SET_BY_US]
                headers.extend(_SECURITY_HEADERS)
                if not any(k == b"cache-control" for k, _ in headers):
                    headers.append(_NO_STORE)
                headers.append(_DOCS_CSP if documentation else _CSP)
                headers.append(correlation)
                message = {**message, "headers": headers}
            await send(message)

        if declared is not None and declared > self.max_body:
            await _too_large(send_with_headers)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLargeError
            return message

        lean = (
            self.lean.get((scope["method"], scope["path"]))
            if self.lean and not scope.get("root_path")
            else None
        )
        try:
            if lean is None:
                await self.app(scope, limited_receive, send_with_headers)
            else:
                await lean(scope, limited_receive, send_with_headers, self.app)
        except BodyTooLargeError:
            if status[0] is None:
                await _too_large(send_with_headers)
        except Exception as exc:  # noqa: BLE001 - the last line of defence answers, not crashes
            # Here rather than in Starlette's outermost error middleware, so that a 500
            # carries the same headers as every other answer (CONTRACT.md 5).
            log.error("unexpected_error", error_type=type(exc).__name__)  # noqa: TRY400 - no values
            if status[0] is None:
                await _send_problem(
                    send_with_headers,
                    500,
                    "internal-error",
                    "The hub failed; nothing was disclosed.",
                )


def _read_headers(scope: Scope) -> tuple[int | None, str | None]:
    """``Content-Length`` and ``traceparent``, in one pass over the headers.

    More than one ``traceparent`` is no trace at all (W3C Trace Context 3.2: a vendor
    cannot tell which one is meant).
    """
    length: int | None = None
    traceparent: str | None = None
    parents = 0
    for name, value in scope.get("headers", []):
        if name == _CONTENT_LENGTH:
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == _TRACEPARENT:
            parents += 1
            traceparent = value.decode("latin-1")
    return length, traceparent if parents == 1 else None


def _metrics_of(scope: Scope) -> PrometheusTelemetry | None:
    """The serving hub's metrics (none before its lifespan has built it)."""
    app = scope.get("app")
    container = None if app is None else getattr(app.state, "container", None)
    return None if container is None else container.metrics


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
