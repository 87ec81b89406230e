"""The serving hub tunes the cyclic garbage collector once it has started
(``hub.api.app._settle_heap``); an app built by anyone else leaves it alone.

Each test restores the collector as it found it (``gc.unfreeze``, the thresholds):
the test process builds many apps and must not keep their objects frozen.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog

from hub.api.app import app_from_environment, create_app
from hub.settings import Settings


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector as the test found it, afterwards; nothing frozen before."""
    thresholds = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@asynccontextmanager
async def started(app: Any) -> AsyncIterator[None]:
    """The ASGI lifespan as uvicorn drives it: start-up, then (after) shutdown."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    answer = await asyncio.wait_for(outbox.get(), 30)
    assert answer["type"] == "lifespan.startup.complete", answer
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        answer = await asyncio.wait_for(outbox.get(), 30)
        await task
        assert answer["type"] == "lifespan.shutdown.complete", answer


@pytest.mark.usefixtures("collector")
async def test_a_served_hub_freezes_start_up_and_collects_young_objects_less_often(
    settings: Settings,
) -> None:
    """Serving (``settle_heap=True``): start-up's objects leave the collector's walks,
    and a young collection waits for 10,000 net new objects instead of 700."""
    app = create_app(settings, settle_heap=True)
    async with started(app):
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold()[0] == 10_000
        # The collector still runs: cyclic garbage made now is still found.
        collected = gc.collect()
        assert collected >= 0
        assert gc.isenabled()


@pytest.mark.usefixtures("collector")
async def test_an_app_built_otherwise_leaves_the_collector_alone(settings: Settings) -> None:
    """Tests and embedders build apps in a process of their own: the collector is global."""
    thresholds = gc.get_threshold()
    async with started(create_app(settings)):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == thresholds


@pytest.mark.usefixtures("collector")
async def test_the_worker_entry_point_settles_the_heap(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ketenhub serve --workers N``: each worker's app (from the environment) settles."""
    exported: dict[str, str] = {}
    settings.export(exported)
    for name in [n for n in os.environ if n.startswith("KETENHUB_")]:
        monkeypatch.delenv(name)
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    # The entry point configures logging, as a worker's start does: put it back after.
    logging_config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        async with started(app_from_environment()):
            assert gc.get_freeze_count() > 10_000
            assert gc.get_threshold()[0] == 10_000
    finally:
        structlog.configure(**logging_config)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
