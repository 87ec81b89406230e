"""The rest adapter's HTTP client (``adapters.httpclient``) against raw loopback servers.

What the adapter's own tests (test_rest_adapter.py, test_source_failures.py) do not
reach: connections kept and reused, and never reused when that could hand one
request another's answer; bodies delimited every way HTTP allows; the bounds on a
head and on the number of connections; header injection; TLS. The servers are raw
asyncio TCP servers, so that they can do what no web framework would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.httpclient import MAX_HEAD_BYTES, BodyTooLargeError, HttpClient, HttpError

R = asyncio.StreamReader
W = asyncio.StreamWriter
Reply = Callable[[R, W, "Server"], Awaitable[None]]
BOUND_S = 10
"""A test's own limit on a call: reaching it means the client hung."""


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def request(reader: asyncio.StreamReader) -> str:
    return (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")


@dataclass
class Server:
    """Serves each connection with ``reply`` until it returns; counts what it saw."""

    reply: Reply
    ssl_context: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[str] = field(default_factory=list)
    open_now: int = 0
    most_open: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    _server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.reply(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()
            self.closed.set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        port = self._server.sockets[0].getsockname()[1]
        scheme = "https" if self.ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{port}/participants/1?fields=a"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()


def keep_answering(body: bytes = b"{}", *extra: str) -> Reply:
    async def reply(reader: R, writer: W, s: Server) -> None:
        while True:
            s.requests.append(await request(reader))
            writer.write(ok(body, *extra))
            await writer.drain()

    return reply


async def get(client: HttpClient, url: str) -> tuple[int, bytes]:
    async with asyncio.timeout(BOUND_S):
        answer = await client.get(url, {"Accept": "application/json"})
    return answer.status, answer.body


async def test_a_connection_is_kept_and_reused_and_the_request_is_as_sent() -> None:
    async with Server(keep_answering(b'{"fields":{}}')) as server, HttpClient(max_body=1024) as c:
        for _ in range(5):
            assert await get(c, server.url) == (200, b'{"fields":{}}')
    assert server.connections == 1
    assert server.requests[0] == (
        "GET /participants/1?fields=a HTTP/1.1\r\nHost: "
        f"{server.url.split('/')[2]}\r\nAccept: application/json\r\n\r\n"
    )


async def test_the_target_and_host_sent_for_urls_of_every_shape() -> None:
    async with Server(keep_answering()) as server, HttpClient(max_body=1024) as client:
        authority = server.url.split("/")[2]
        for url, target in [
            (f"http://{authority}", "/"),
            (f"http://{authority}?x=1", "/?x=1"),
            (f"http://{authority}/a/b%20c?x=1,2#fragment", "/a/b%20c?x=1,2"),
            (f"http://user:secret@{authority}/p", "/p"),
        ]:
            await get(client, url)
            assert server.requests[-1].startswith(
                f"GET {target} HTTP/1.1\r\nHost: {authority}\r\n"
            ), server.requests[-1]
        assert "secret" not in "".join(server.requests)
    assert server.connections == 1  # one origin, however it was written


async def test_closing_the_client_closes_the_kept_connections() -> None:
    async with Server(keep_answering()) as server:
        client = HttpClient(max_body=1024)
        await get(client, server.url)
        assert not server.closed.is_set()
        await client.close()
        await asyncio.wait_for(server.closed.wait(), BOUND_S)
        with pytest.raises(HttpError):
            await get(client, server.url)


async def test_a_kept_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def once_per_connection(reader: R, writer: W, s: Server) -> None:
        s.requests.append(await request(reader))
        writer.write(ok(b"{}"))  # keep-alive announced, then closed at once after
        await writer.drain()

    async with Server(once_per_connection) as server, HttpClient(max_body=1024) as client:
        for _ in range(3):
            assert await get(client, server.url) == (200, b"{}")
            await asyncio.sleep(0.05)  # the close reaches the client while it is idle ...
        assert server.connections == 3
        # ... or does not yet: the request goes out on the dead connection and is sent
        # again on a new one. Either way the caller gets its answer.
        for _ in range(3):
            assert await get(client, server.url) == (200, b"{}")
        assert len(server.requests) == 6


async def test_connection_close_is_honoured() -> None:
    answering = Server(keep_answering(b"{}", "Connection: close"))
    async with answering as server, HttpClient(max_body=1024) as client:
        for _ in range(3):
            assert await get(client, server.url) == (200, b"{}")
    assert server.connections == 3


async def test_a_body_without_a_length_ends_with_the_connection() -> None:
    async def until_close(reader: R, writer: W, _: Server) -> None:
        await request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n")
        for part in (b'{"fields":', b'{"a": 1}', b"}"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)

    async with Server(until_close) as server, HttpClient(max_body=1024) as client:
        assert await get(client, server.url) == (200, b'{"fields":{"a": 1}}')
        assert await get(client, server.url) == (200, b'{"fields":{"a": 1}}')
    assert server.connections == 2


async def test_a_chunked_body_is_read_whole_and_the_connection_kept() -> None:
    async def chunked(reader: R, writer: W, _: Server) -> None:
        while True:
            await request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b'{"fields"', b':{"a":', b"1}}"):
                writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")

    async with Server(chunked) as server, HttpClient(max_body=1024) as client:
        assert await get(client, server.url) == (200, b'{"fields":{"a":1}}')
        assert await get(client, server.url) == (200, b'{"fields":{"a":1}}')
    assert server.connections == 1


async def test_an_abandoned_request_never_hands_its_late_answer_to_the_next() -> None:
    async def slow_first(reader: R, writer: W, s: Server) -> None:
        while True:
            s.requests.append(await request(reader))
            if len(s.requests) == 1:
                await asyncio.sleep(0.3)
            body = b"first" if len(s.requests) == 1 else b"second"
            writer.write(ok(body))
            await writer.drain()

    async with Server(slow_first) as server, HttpClient(max_body=1024) as client:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await client.get(server.url, {})
        await asyncio.sleep(0.4)  # the late answer has arrived on the abandoned connection
        assert await get(client, server.url) == (200, b"second")
    assert server.connections == 2


@pytest.mark.parametrize("pause_s", [0.05, 0], ids=["later", "in-the-same-bytes"])
async def test_an_answer_nobody_asked_for_retires_the_connection(pause_s: float) -> None:
    async def chatty(reader: R, writer: W, s: Server) -> None:
        while True:
            s.requests.append(await request(reader))
            writer.write(ok(b'"mine"'))
            if pause_s:
                await writer.drain()
                await asyncio.sleep(pause_s)
            writer.write(ok(b'"nobody asked"')[:-3])  # a second answer, its end still to come
            await writer.drain()

    async with Server(chatty) as server, HttpClient(max_body=1024) as client:
        for _ in range(3):
            assert await get(client, server.url) == (200, b'"mine"')
            await asyncio.sleep(0.2)
    assert server.connections == 3


@pytest.mark.parametrize(
    ("head", "problem"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 1), HttpError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Encoding: gzip\r\n\r\n{}", HttpError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n", BodyTooLargeError),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", HttpError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", HttpError),  # then closed
    ],
)
async def test_answers_that_are_refused(head: bytes, problem: type[HttpError]) -> None:
    async def reply(reader: R, writer: W, _: Server) -> None:
        await request(reader)
        writer.write(head)
        await writer.drain()

    async with Server(reply) as server, HttpClient(max_body=1024) as client:
        with pytest.raises(problem):
            await get(client, server.url)


async def test_a_body_over_the_cap_is_refused_while_it_flows() -> None:
    async def endless(reader: R, writer: W, _: Server) -> None:
        await request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"400\r\n" + b"a" * 1024 + b"\r\n")
            await writer.drain()

    async with Server(endless) as server, HttpClient(max_body=64 * 1024) as client:
        with pytest.raises(BodyTooLargeError):
            await get(client, server.url)


async def test_connections_per_origin_are_bounded() -> None:
    release = asyncio.Event()

    async def held(reader: R, writer: W, _: Server) -> None:
        while True:
            await request(reader)
            await release.wait()
            writer.write(ok(b"{}"))
            await writer.drain()

    async with Server(held) as server, HttpClient(max_body=1024, per_origin=2) as client:
        calls = [asyncio.create_task(get(client, server.url)) for _ in range(6)]
        await asyncio.sleep(0.2)
        assert server.connections == 2
        release.set()
        assert await asyncio.gather(*calls) == [(200, b"{}")] * 6
    assert server.most_open == 2


@pytest.mark.parametrize(
    "headers",
    [{"traceparent": "00-x\r\nX-Injected: 1"}, {"X-A\nB": "1"}, {"X": "\0"}, {"X": "é"}],
)
async def test_a_header_that_could_split_the_request_is_refused_unsent(
    headers: dict[str, str],
) -> None:
    async with Server(keep_answering()) as server, HttpClient(max_body=1024) as client:
        with pytest.raises(HttpError):
            await client.get(server.url, headers)
    assert server.connections == 0


async def test_urls_it_cannot_get() -> None:
    async with HttpClient(max_body=1024) as client:
        for url in ("ftp://127.0.0.1/x", "http:///x", "no-url", "http://127.0.0.1:99999/x"):
            with pytest.raises(HttpError):
                await client.get(url, {})


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ketenhub test source")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client
    context that trusts that certificate (and checks host names, as the default does)."""
    cert, key = _certificate(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


async def test_https_with_a_trusted_certificate(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_context, client_context = tls
    async with (
        Server(keep_answering(b'{"tls":true}'), ssl_context=server_context) as server,
        HttpClient(max_body=1024, ssl_context=client_context) as client,
    ):
        assert server.url.startswith("https://")
        for _ in range(3):
            assert await get(client, server.url) == (200, b'{"tls":true}')
    assert server.connections == 1


async def test_https_with_a_certificate_the_system_does_not_trust_is_refused(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, _ = tls
    async with (
        Server(keep_answering(), ssl_context=server_context) as server,
        HttpClient(max_body=1024) as client,
    ):
        with pytest.raises(HttpError):
            await get(client, server.url)
    assert server.requests == []


def test_the_same_on_uvloop_which_the_served_hub_runs(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """uvloop's transports are not ``asyncio.Transport`` subclasses, and its TLS is its own."""
    scenarios: list[Callable[[], Awaitable[None]]] = [
        test_a_connection_is_kept_and_reused_and_the_request_is_as_sent,
        test_a_kept_connection_the_server_closed_is_replaced_without_an_error,
        test_a_body_without_a_length_ends_with_the_connection,
        test_a_chunked_body_is_read_whole_and_the_connection_kept,
        test_an_abandoned_request_never_hands_its_late_answer_to_the_next,
        lambda: test_an_answer_nobody_asked_for_retires_the_connection(0),
        test_a_body_over_the_cap_is_refused_while_it_flows,
        lambda: test_https_with_a_trusted_certificate(tls),
        lambda: test_https_with_a_certificate_the_system_does_not_trust_is_refused(tls),
    ]
    for scenario in scenarios:
        uvloop.run(scenario())  # type: ignore[arg-type]
