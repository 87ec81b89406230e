"""The application factory. Nothing is built at import time."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from hub import bootstrap
from hub.api import openapi, operations, problems, ratelimit
from hub.api.middleware import HubMiddleware
from hub.api.routes import audit, catalogue, consents, exchange, oauth
from hub.logging import configure_logging
from hub.settings import Settings

log = structlog.get_logger("hub")


_YOUNG_THRESHOLD = 10_000
"""Net new container objects before a young collection (CPython's default: 700)."""


def create_app(
    settings: Settings,
    *,
    container: bootstrap.Container | None = None,
    lean: bool = True,
    settle_heap: bool = False,
) -> FastAPI:
    """The hub's ASGI app. With ``container`` (tests) it serves that; else it builds its own.

    ``lean``: ``POST /v1/exchange`` is served past FastAPI's per-request machinery
    (``hub.api.fastpath``); ``False`` leaves every request to the framework, the
    reference the lean route is tested against.

    ``settle_heap``: once its lifespan has built the hub, tune the process's cyclic
    garbage collector for serving (``_settle_heap``). For the process that serves
    (``hub.serving``), not for one that builds apps of its own (tests): it is global.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if container is not None:
            yield
            return
        built = await bootstrap.build(settings)
        app.state.container = built
        log.info("hub_started", agreements=len(built.policies.agreements))
        if settle_heap:
            _settle_heap()
        try:
            yield
        finally:
            await built.aclose()
            log.info("hub_stopped")

    app = FastAPI(
        title="Ketenhub",
        version="0.1.0",
        summary="Privacy-controlled, field-level data exchange for work-care trajectories",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # A redirect's Location would be built from the Host header: answer 404 instead.
        redirect_slashes=False,
        # FastAPI's own OpenTelemetry hooks looked up the environment on every request;
        # the hub reports through its own log events (hub.logging).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    if container is not None:
        app.state.container = container
    problems.install(app)
    ratelimit.install(app)
    openapi.install(app)
    for module in (oauth, catalogue, exchange, consents, audit, operations):
        app.include_router(module.router)
    lean_routes = {("POST", "/v1/exchange"): exchange.lean_route()} if lean else {}
    app.add_middleware(HubMiddleware, lean=lean_routes)
    return app


def app_from_environment() -> FastAPI:
    """The worker entry point for ``ketenhub serve --workers N`` (settings from the environment)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings, settle_heap=True)


def _settle_heap() -> None:
    """The collector out of a serving hub's way; what it collects stays the same.

    Under load (64 requests in flight) the default collector cost a served hub 12-15%
    of its CPU per exchange. A young collection every 700 net new objects
    found the objects of the requests in flight alive, promoted them, and so every
    few hundred requests started a full collection over everything start-up built
    (some 115,000 objects: the app, its schemas, the policies, the libraries),
    which is never garbage. Hence, once start-up is done:

    - ``gc.collect()`` then ``gc.freeze()``: start-up's garbage freed, the rest moved
      to the permanent generation, which no collection walks. Frozen objects are still
      freed by reference counting; only one that later becomes part of a garbage
      cycle would stay (start-up's objects live as long as the hub);
    - a young threshold of 10,000: most requests' objects are freed by reference
      counting before a collection finds them alive; cyclic garbage is still found,
      after at most 10,000 net new objects instead of 700 (a few MB at most).

    Measured served (one uvicorn worker, wrk with 64 connections, the collector's
    own thread CPU from ``gc.callbacks``): 120-175 us per exchange of collection
    before, 75 us frozen only, ~0 us with both; the hub's CPU per exchange, min of 4
    alternated runs, 919 -> 759 us (median 1,174 -> 819 us).
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_YOUNG_THRESHOLD, middle, old)
