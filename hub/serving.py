"""Running the hub under uvicorn: shared by ``ketenhub serve`` and ``ketenhub demo``."""

from __future__ import annotations

import os

import uvicorn

from hub import bootstrap
from hub.db import migrate
from hub.settings import Settings


def run_server(settings: Settings, host: str, port: int, workers: int) -> None:
    """Check the policies (raises ``PolicyError``), migrate, then serve until stopped."""
    bootstrap.load_policies(settings)
    migrate.upgrade(settings.database_url)
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
