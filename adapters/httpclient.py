"""The ``rest`` adapter's HTTP client: ``GET`` over HTTP/1.1 keep-alive connections.

Why not a general client: the ``rest`` wire protocol (CONTRACT.md section 2) needs one
method, no request body, no cookies, no redirects, no proxy, no compression; what it
needs is bounded waiting and bounded reading. aiohttp, the client before this one,
cost 65-75 us of CPU per call on this machine against about 13 us for this one, and
in the hub about 80 us of an exchange's ~570 us in-process (docs/performance.md).

The HTTP parsing is httptools' (llhttp, the parser of Node.js; uvicorn's too): status
line, headers, ``Content-Length`` and chunked bodies, keep-alive. What this module
adds is the connection's life:

- connections are kept per origin (scheme, host, port) and reused, at most
  ``per_origin`` at a time (a request beyond that waits for one);
- a reused connection that the server had closed meanwhile (no byte of an answer
  came) is replaced once by a new one: a ``GET`` may be sent again;
- an answer is refused while it arrives once its head passes ``MAX_HEAD_BYTES`` or its
  body ``max_body`` bytes (announced or as it flows), or it is not HTTP;
- a body without a length ends when the server closes the connection;
- a connection is reused only when the answer was whole and both sides keep it alive;
  one whose request was abandoned (a timeout: the caller bounds the whole call with
  ``asyncio.timeout``) or failed is closed.

``https`` URLs use TLS with certificate and host name checks (``ssl.create_default_context``
unless a context is given).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self, cast
from urllib.parse import urlsplit

import httptools

_BREAKS = re.compile(r"[\r\n\0]")
_AUTHORITY = re.compile(r"[^:/?#]+://[^/?#]*")
"""A URL's ``scheme://authority``: what comes after it is the request target."""

MAX_HEAD_BYTES = 64 * 1024
"""Status line and headers of an answer: more is refused (a server that never ends them)."""


class HttpError(Exception):
    """The server could not be reached, or its answer is not one the client accepts."""


class BodyTooLargeError(HttpError):
    """The answer's body is (or was announced) larger than the client accepts."""


class _StaleConnectionError(HttpError):
    """A kept connection was closed by the server before any byte of an answer came."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection and the one request on it at a time."""

    def __init__(self, max_body: int) -> None:
        self._max_body = max_body
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[HttpAnswer] | None = None
        self._received = 0
        self._head_done = False
        self._chunks: list[bytes] = []
        self._size = 0
        self._length_known = False
        self._problem: HttpError | None = None
        self.open = True
        self.reusable = False
        self.used = False
        """It answered a request before: it was kept, and the server may have closed it."""

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, but is one).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        self._received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            pass  # a callback refused the answer: ``_problem`` says why
        except httptools.HttpParserError as exc:
            self._problem = self._problem or HttpError(f"not an HTTP answer: {exc}")
        if self._problem is None and not self._head_done and self._received > MAX_HEAD_BYTES:
            self._problem = HttpError("the answer's head is too large")
        if self._problem is not None:
            self._fail(self._problem)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = self.reusable = False
        answer = self._answer
        if answer is None or answer.done():
            return
        if exc is None and self._head_done and not self._length_known and self._problem is None:
            self._finish()  # a body without a length ends when the server closes (not resets)
        elif self._received == 0 and self.used:
            answer.set_exception(_StaleConnectionError("the kept connection was closed"))
        else:
            answer.set_exception(HttpError("the connection was closed before the answer ended"))

    # -- httptools callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        if self._answer is None or self._answer.done():
            # An answer after the one asked for, in the same bytes: its rest could come
            # as the next request's answer, so the connection is not kept.
            self.reusable = False
            self._refuse(HttpError("an answer nobody asked for"))

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self._length_known = True
            with contextlib.suppress(ValueError):
                if int(value) > self._max_body:
                    self._refuse(BodyTooLargeError("the answer's body is too large"))
        elif name == b"transfer-encoding":
            self._length_known = True  # chunked: the parser finds its end
        elif name == b"content-encoding" and value.strip().lower() != b"identity":
            self._refuse(HttpError("the answer is in an encoding the client did not ask for"))

    def on_headers_complete(self) -> None:
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_body:
            self._refuse(BodyTooLargeError("the answer's body is too large"))
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._answer is not None and not self._answer.done():
            self.reusable = self._parser.should_keep_alive()
            self._finish()

    # -- the request ---------------------------------------------------------------

    def send(self, request: bytes) -> asyncio.Future[HttpAnswer]:
        assert self._transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._received = self._size = 0
        self._head_done = self._length_known = self.reusable = False
        self._chunks = []
        self._problem = None
        # The parser goes on from the last answer's end: llhttp reads kept connections.
        self._transport.write(request)
        return self._answer

    def close(self) -> None:
        self.open = self.reusable = False
        if self._transport is not None:
            self._transport.abort()

    def _refuse(self, problem: HttpError) -> None:
        self._problem = self._problem or problem
        raise problem  # stops the parser; ``data_received`` settles the answer

    def _finish(self) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_result(HttpAnswer(self._parser.get_status_code(), b"".join(self._chunks)))
        self._chunks = []

    def _fail(self, problem: HttpError) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(problem)
        self.close()


@dataclass
class _Origin:
    host: str
    port: int
    tls: bool
    slots: asyncio.Semaphore
    idle: list[_Connection] = field(default_factory=list)


class HttpClient:
    """``GET`` requests over kept connections; one client for every source of a hub."""

    def __init__(
        self,
        *,
        max_body: int,
        per_origin: int = 64,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_body = max_body
        self._per_origin = per_origin
        self._ssl = ssl_context
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._authorities: dict[str, tuple[_Origin, str]] = {}
        self._closed = False

    async def get(self, url: str, headers: Mapping[str, str]) -> HttpAnswer:
        """The answer to ``GET url``: ``url`` absolute and already percent-encoded.

        Raises ``HttpError`` (``BodyTooLargeError``) for a server that cannot be reached
        or an answer the client refuses; no time limit of its own (the caller's).
        """
        if self._closed:
            raise HttpError("the client is closed")
        origin, request = self._request(url, headers)
        async with origin.slots:
            try:
                return await self._exchange(origin, await self._connection(origin), request)
            except _StaleConnectionError:
                # The server closed what it kept (restarted?): so, likely, every kept one.
                for kept in origin.idle:
                    kept.close()
                origin.idle.clear()
                return await self._exchange(origin, await self._connection(origin), request)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the kept connections; one still in use closes when its answer is in."""
        self._closed = True
        for origin in self._origins.values():
            for connection in origin.idle:
                connection.close()
            origin.idle.clear()

    def _request(self, url: str, headers: Mapping[str, str]) -> tuple[_Origin, bytes]:
        # scheme://authority, parsed once per source; the rest is the request target.
        found = _AUTHORITY.match(url)
        authority = url if found is None else found.group()
        origin, host = self._authorities.get(authority) or self._origin(authority)
        target = url[len(authority) :].partition("#")[0]
        if not target.startswith("/"):
            target = f"/{target}"  # "http://host" or "http://host?q": the root
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if any(_BREAKS.search(line) for line in lines):
            raise HttpError("a request line or header holds a line break")
        try:
            return origin, ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        except UnicodeEncodeError:
            raise HttpError("a request line or header is not ASCII") from None

    def _origin(self, authority: str) -> tuple[_Origin, str]:
        """The connections of ``scheme://host:port``, and its ``Host`` header."""
        try:
            parts = urlsplit(authority)
            port = parts.port
        except ValueError:
            raise HttpError("not a URL") from None
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise HttpError("not an http or https URL")
        tls = parts.scheme == "https"
        key = (parts.scheme, parts.hostname, port or (443 if tls else 80))
        origin = self._origins.get(key)
        if origin is None:
            origin = _Origin(key[1], key[2], tls, asyncio.Semaphore(self._per_origin))
            self._origins[key] = origin
        found = (origin, parts.netloc.rpartition("@")[2])
        self._authorities[authority] = found
        return found

    async def _exchange(
        self, origin: _Origin, connection: _Connection, request: bytes
    ) -> HttpAnswer:
        """One request on ``connection``, which is kept afterwards only if it may be."""
        answered = False
        try:
            answer = await connection.send(request)
            answered = True
        finally:
            if answered and connection.reusable and connection.open and not self._closed:
                connection.used = True
                origin.idle.append(connection)
            else:
                connection.close()  # failed, abandoned (a timeout), or not to be kept
        return answer

    async def _connection(self, origin: _Origin) -> _Connection:
        while origin.idle:
            connection = origin.idle.pop()
            if connection.open:
                return connection
        loop = asyncio.get_running_loop()
        context = (self._ssl or _default_context()) if origin.tls else None
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(self._max_body),
                origin.host,
                origin.port,
                ssl=context,
                server_hostname=origin.host if context is not None else None,
            )
        except OSError as exc:  # refused, unreachable, or TLS refused (ssl.SSLError)
            raise HttpError("the server could not be reached") from exc
        return connection


@functools.cache
def _default_context() -> ssl.SSLContext:
    """The system's trusted certificates, host names checked: made once, when first needed."""
    return ssl.create_default_context()
