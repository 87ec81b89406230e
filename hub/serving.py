"""Running the hub under uvicorn: shared by ``ketenhub serve`` and ``ketenhub demo``."""

from __future__ import annotations

import asyncio
import os
import shutil

import uvicorn

from hub import bootstrap
from hub.auth.production import check_key_dir
from hub.db import migrate
from hub.db.database import check_reachable
from hub.observability.metrics import MULTIPROCESS_ENV, prepare_multiprocess_dir
from hub.settings import Settings


def run_server(settings: Settings, host: str, port: int, workers: int) -> None:
    """Check, migrate, then serve until stopped.

    Fails fast, before listening: ``PolicyError`` for an invalid policy directory,
    ``ServiceUnavailableError`` for a database that cannot be reached, ``KeyRingError``
    for a key directory that is unusable or missing while the database holds data, or
    (``ProductionRefusalError``) one that production refuses.
    """
    if settings.production:  # before anything else is touched: hub.auth.production
        check_key_dir(settings.key_dir)
    bootstrap.load_policies(settings)
    check_reachable(settings.database_url)
    migrate.upgrade(settings.database_url)
    asyncio.run(_check_keys(settings))
    common: dict[str, object] = {
        "host": host,
        "port": port,
        # URLs can carry an INSZ in a query string: the hub logs its own events instead.
        "access_log": False,
        "server_header": False,
        "log_level": "warning",
        "lifespan": "on",
        # uvicorn's own log lines go through the hub's logging (hub.logging: redacted).
        "log_config": None,
    }
    if workers > 1:
        _serve_workers(settings, workers, common)
    else:
        from hub.api.app import create_app  # noqa: PLC0415 - the CLI's other commands stay light

        uvicorn.run(create_app(settings, settle_heap=True), **common)  # type: ignore[arg-type]


def _serve_workers(settings: Settings, workers: int, common: dict[str, object]) -> None:
    """N uvicorn workers; their metrics in a fresh directory that any worker's
    ``/metrics`` sums (prometheus_client multiprocess mode), removed when they stop."""
    metrics_dir = prepare_multiprocess_dir()
    os.environ[MULTIPROCESS_ENV] = str(metrics_dir)
    try:
        settings.export(os.environ)
        uvicorn.run(
            "hub.api.app:app_from_environment",
            factory=True,
            workers=workers,
            **common,  # type: ignore[arg-type]
        )
    finally:
        os.environ.pop(MULTIPROCESS_ENV, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)


async def _check_keys(settings: Settings) -> None:
    """Build the hub once: loads (or, for a database without data, makes) the keys.

    Workers that start later then find a complete key directory.
    """
    container = await bootstrap.build(settings)
    await container.aclose()
