"""The application factory. Nothing is built at import time."""

from __future__ import annotations

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


def create_app(
    settings: Settings, *, container: bootstrap.Container | None = None, lean: bool = True
) -> FastAPI:
    """The hub's ASGI app. With ``container`` (tests) it serves that; else it builds its own.

    ``lean``: ``POST /v1/exchange`` is served past FastAPI's per-request machinery
    (``hub.api.fastpath``); ``False`` leaves every request to the framework, the
    reference the lean route is tested against.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if container is not None:
            yield
            return
        built = await bootstrap.build(settings)
        app.state.container = built
        log.info("hub_started", agreements=len(built.policies.agreements))
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
    return create_app(settings)
