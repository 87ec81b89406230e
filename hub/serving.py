"""Running the hub under uvicorn: shared by ``ketenhub serve`` and ``ketenhub demo``."""

from __future__ import annotations

import asyncio
import os

import uvicorn

from hub import bootstrap
from hub.db import migrate
from hub.db.database import check_reachable
from hub.settings import Settings


def run_server(settings: Settings, host: str, port: int, workers: int) -> None:
    """Check, migrate, then serve until stopped.

    Fails fast, before listening: ``PolicyError`` for an invalid policy directory,
    ``ServiceUnavailableError`` for a database that cannot be reached, ``KeyRingError``
    for a key directory that is unusable or missing while the database holds data.
    """
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
    }
    if workers > 1:
        os.environ.update(settings.as_env())
        uvicorn.run(
            "hub.api.app:app_from_environment",
            factory=True,
            workers=workers,
            **common,  # type: ignore[arg-type]
        )
    else:
        from hub.api.app import create_app  # noqa: PLC0415 - the CLI's other commands stay light

        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]


async def _check_keys(settings: Settings) -> None:
    """Build the hub once: loads (or, for a database without data, makes) the keys.

    Workers that start later then find a complete key directory.
    """
    container = await bootstrap.build(settings)
    await container.aclose()
