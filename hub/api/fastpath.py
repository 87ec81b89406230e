"""A lean path past the framework for the hottest route, equal to it by construction.

FastAPI's per-request machinery around ``POST /v1/exchange`` (routing over every
route, ``solve_dependencies``, body parsing then a separate validation, its inner
middlewares and wrapped sends) cost about a quarter of the hub's CPU per exchange.
A *lean route* serves the one request shape that is nearly every call, a valid
JSON body with a valid token, without that machinery, and hands everything else to
the framework, which stays the one definition of the route:

- ``hub.api.middleware.HubMiddleware`` dispatches to a lean route by exact method
  and path, inside its own wrapping (correlation id, metrics, body limit, security
  headers, the 500), so every answer carries the same headers either way;
- a lean route first checks, without side effects, that the framework would have
  parsed the request into the same values without a single error (media type,
  headers, body). When anything is off, it passes the request on to the framework
  (``framework``), with the body it has read replayed (``BufferedBody.replay``), so
  that every error (400, 413, 415, 422, their order against 401, 429 and 403, and
  their ``errors`` detail) is the framework's own answer;
- only then does it run the route's own steps (the same dependency and endpoint
  functions), and an error they raise is answered by the app's own exception
  handler, found as Starlette's ``ExceptionMiddleware`` finds it
  (``hub.api.problems.handled``).

Tests: ``tests/api/test_exchange_route_equivalence.py`` sends the same good and bad
requests through both paths and compares status, headers and body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LeanRoute = Callable[[Scope, Receive, Send, ASGIApp], Awaitable[None]]
"""``(scope, receive, send, framework)``: serve the request, or call ``framework``."""


@dataclass(frozen=True, slots=True)
class BufferedBody:
    """A request body read in full (``body``), or what stopped the read.

    ``messages`` are the ASGI messages received, ``error`` the exception ``receive``
    raised (the hub's body limit raises one): ``replay`` gives them again, in order,
    so that the framework reading after a lean route sees exactly what it would have.
    """

    body: bytes | None
    messages: tuple[Message, ...]
    error: Exception | None

    def replay(self, receive: Receive) -> Receive:
        pending = list(self.messages)
        error = self.error

        async def replayed() -> Message:
            nonlocal error
            if pending:
                return pending.pop(0)
            if error is not None:
                raised, error = error, None
                raise raised
            return await receive()

        return replayed


async def buffer_body(receive: Receive) -> BufferedBody:
    """Read the whole body as Starlette's ``Request.body`` does; never raises."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    try:
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # http.disconnect: Starlette's ClientDisconnect
                return BufferedBody(None, tuple(messages), None)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return BufferedBody(b"".join(chunks), tuple(messages), None)
    except Exception as exc:  # noqa: BLE001 - replayed to the framework, which decides
        return BufferedBody(None, tuple(messages), exc)
