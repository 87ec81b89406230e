"""Simulated partner systems that speak the ``rest`` adapter's wire protocol.

CONTRACT.md section 2: the hub calls ``GET {base_url}/participants/{insz}?fields=a,b``
and expects ``200 {"fields": {...}}`` or ``404`` for a participant the source does
not know. These simulators answer exactly that from a ``Population``, so the demo
and the integration tests exercise the real adapter over real HTTP. The contract
also says what a *failing* source looks like (a timeout, a 5xx, a body of the wrong
shape, values nobody asked for); ``Faults`` lets a test or a demo switch each of
those on while the simulator runs, because the hub's answer to them is part of its
contract too.

The INSZ travels in the URL path, so access logging is switched off on every runner
started here: a simulator must not be the place where national numbers leak into
logs (STYLE.md habit 9).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Self

from aiohttp import web

from hub.demo.population import SOURCE_FIELDS, Population

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

DEFAULT_PORTS: Mapping[str, int] = MappingProxyType(
    {"vdab": 8101, "ocmw-gent": 8102, "in-gent": 8103, "cgg-vagga": 8104, "levanto": 8105}
)
"""Where ``ketenhub demo`` runs each source unless told otherwise."""

_ELEVEN_DIGITS = re.compile(r"[0-9]{11}")
_BODYLESS_STATUSES = frozenset({204, 304})
_SHUTDOWN_TIMEOUT_S = 1.0  # a delayed handler must not hold a test's teardown for a minute


@dataclass(slots=True)
class Faults:
    """Failures to inject into one simulated source; change them while it runs.

    They apply in this order: ``delay_s`` first (so a delay combines with any other
    fault), then ``status`` (answer that status with a small JSON error body),
    then ``garbage`` (a 200 that claims JSON but is not), and only for a
    well-formed request about a known participant ``extra_field`` (add a value that
    was not asked for) and ``wrong_shape`` (valid JSON without the ``fields`` object).
    """

    delay_s: float = 0.0
    status: int | None = None
    garbage: bool = False
    extra_field: bool = False
    wrong_shape: bool = False

    def clear(self) -> None:
        """Back to a healthy source."""
        self.delay_s = 0.0
        self.status = None
        self.garbage = False
        self.extra_field = False
        self.wrong_shape = False


class _SourceHandlers:
    """The request handlers of one source, bound to its population and faults."""

    def __init__(self, source: str, population: Population, faults: Faults) -> None:
        self.source = source
        self.population = population
        self.faults = faults

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "source": self.source})

    async def participant(self, request: web.Request) -> web.Response:
        faults = self.faults
        if faults.delay_s > 0:
            await asyncio.sleep(faults.delay_s)
        if faults.status is not None:
            if faults.status in _BODYLESS_STATUSES:
                return web.Response(status=faults.status)
            return web.json_response({"error": "injected fault"}, status=faults.status)
        if faults.garbage:
            return web.Response(
                body=b"<html><body>Service temporarily unavailable", content_type="application/json"
            )
        insz = request.match_info["insz"]
        if _ELEVEN_DIGITS.fullmatch(insz) is None:
            return _error(400, "an INSZ is 11 digits")
        requested = _requested_fields(request)
        if not requested:
            return _error(400, "the fields parameter names no field")
        values = self.population.values(self.source, insz)
        if values is None:
            return _error(404, "unknown participant")
        # A field the source does not hold, or holds no value for, is simply absent.
        answer = {name: values[name] for name in requested if values.get(name) is not None}
        if faults.extra_field:
            name, value = self._unrequested(requested, values)
            answer[name] = value
        if faults.wrong_shape:
            return web.json_response({"data": answer, "count": len(answer)})
        return web.json_response({"fields": answer})

    def _unrequested(
        self, requested: list[str], values: Mapping[str, object]
    ) -> tuple[str, object]:
        """A real field of this source that was not asked for: the leak the hub must catch."""
        for name in SOURCE_FIELDS[self.source]:
            if name not in requested:
                value = values.get(name)
                return name, "not asked for" if value is None else value
        return "simulator.unrequested", "not asked for"


def _requested_fields(request: web.Request) -> list[str]:
    raw = ",".join(request.query.getall("fields", []))
    return list(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def make_simulator_app(
    source: str, population: Population, faults: Faults | None = None
) -> web.Application:
    """An aiohttp app serving one demo source (CONTRACT.md section 2).

    ``GET /participants/{insz}?fields=a,b`` answers ``200 {"fields": {...}}`` with the
    requested fields that have a value, ``404 {"error": "unknown participant"}``, or
    ``400`` for a malformed INSZ or a missing ``fields`` parameter; ``GET /healthz``
    answers ``200`` and ignores faults. Pass ``faults`` to keep a handle on them.
    Run it with ``access_log=None``: the INSZ is in the path.
    """
    if source not in SOURCE_FIELDS:
        raise ValueError(f"{source!r} is not a demo source")
    handlers = _SourceHandlers(source, population, faults if faults is not None else Faults())
    app = web.Application()
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/participants/{insz}", handlers.participant)
    return app


@dataclass(slots=True)
class Simulators:
    """Running simulators: one aiohttp runner per source, in the loop that started them."""

    host: str
    faults: dict[str, Faults] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    _runners: list[web.AppRunner] = field(default_factory=list, repr=False)

    def url(self, source: str) -> str:
        """The base URL to put in ``partners.yaml`` for ``source``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.ports[source]}"

    async def stop(self) -> None:
        """Close every listening socket and connection; safe to call twice."""
        while self._runners:
            await self._runners.pop().cleanup()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def start_simulators(
    population: Population, ports: Mapping[str, int], host: str = "127.0.0.1"
) -> Simulators:
    """Start one simulator per source in ``ports``, in the running event loop.

    Port ``0`` asks the system for a free port; ``Simulators.ports`` and ``url`` tell
    which one it gave. ``host`` should be an IP address: a name that resolves to
    several addresses would bind port 0 to a different port on each. When one source
    cannot start (its port is taken), the ones already started are stopped again.
    """
    unknown = sorted(set(ports) - set(SOURCE_FIELDS))
    if unknown:
        raise ValueError(f"not demo sources: {', '.join(unknown)}")
    runners: list[web.AppRunner] = []
    all_faults: dict[str, Faults] = {}
    bound: dict[str, int] = {}
    try:
        for source, port in ports.items():
            faults = Faults()
            app = make_simulator_app(source, population, faults)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host, port).start()
            all_faults[source] = faults
            bound[source] = int(runner.addresses[0][1])
    except BaseException:
        for runner in reversed(runners):
            await runner.cleanup()
        raise
    return Simulators(host=host, faults=all_faults, ports=bound, _runners=runners)


class SimulatorThread:
    """The simulators on a thread with its own event loop, for a caller without one.

    ``ketenhub demo`` runs the hub in the foreground and needs its sources beside it;
    a thread keeps them out of the hub's event loop and lets a synchronous CLI
    start and stop them. ``start`` returns once every source listens, or raises
    what stopped one from starting (an ``OSError`` for a port in use).
    """

    def __init__(
        self,
        population: Population,
        ports: Mapping[str, int] = DEFAULT_PORTS,
        host: str = "127.0.0.1",
        *,
        start_timeout_s: float = 10.0,
    ) -> None:
        self._population = population
        self._ports = dict(ports)
        self._host = host
        self._start_timeout_s = start_timeout_s
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._simulators: Simulators | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the simulator thread was already started")
        # The loop exists before the thread does, so that stop() can always reach it.
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(self._loop,), name="ketenhub-simulators", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(self._start_timeout_s):
            self.stop()
            raise TimeoutError("the simulators did not start in time")
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        """Stop the sources and the thread; safe to call twice or after a failed start."""
        thread, loop = self._thread, self._loop
        self._simulators = None
        if thread is None or not thread.is_alive():
            return
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed on its own meanwhile
                loop.call_soon_threadsafe(loop.stop)
        thread.join()

    @property
    def simulators(self) -> Simulators:
        if self._simulators is None:
            raise RuntimeError("the simulators are not running")
        return self._simulators

    @property
    def faults(self) -> Mapping[str, Faults]:
        return self.simulators.faults

    def url(self, source: str) -> str:
        return self.simulators.url(source)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            coroutine = start_simulators(self._population, self._ports, self._host)
            simulators = loop.run_until_complete(coroutine)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that called start()
            self._error = exc
            _close_loop(loop)
            self._ready.set()
            return
        self._simulators = simulators
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(simulators.stop())
            _close_loop(loop)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
