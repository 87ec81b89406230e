"""Invariant 5 of issue #3, at start: the hub makes keys only for a database without
data, refuses to start on missing or damaged keys or an unreachable database, and
says why;"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub import bootstrap
from hub.auth.keys import KeyRingError
from hub.clock import FixedClock
from hub.domain.ids import PartnerId
from hub.settings import Settings
from tests.api.conftest import NOW

PROBLEM = "application/problem+json"
OPEN = ["trajectory.status", "trajectory.start_date"]
LOCK_WAIT_S = 0.2
"""The hub's wait for another writer's lock in these tests (10 s in service)."""


# -- keys missing or damaged ------------------------------------------------------------


async def _build(settings: Settings) -> bootstrap.Container:
    return await bootstrap.build(settings, clock=FixedClock(NOW), sources={})


async def _hub_with_data(settings: Settings) -> None:
    """A hub has run on this database: a client and a consent exist, made with its keys."""
    container = await _build(settings)
    try:
        await container.clients.create(PartnerId("gtb"), frozenset({"exchange"}), None)
    finally:
        await container.aclose()


async def test_keys_are_made_for_a_database_without_data(settings: Settings) -> None:
    assert not settings.key_dir.exists()
    container = await _build(settings)
    await container.aclose()
    assert (settings.key_dir / "keys.json").is_file()
    again = await _build(settings)  # and found again, not replaced
    try:
        assert again.keys.jwks() == container.keys.jwks()
    finally:
        await again.aclose()


async def test_missing_keys_for_a_database_with_data_refuse_to_start(settings: Settings) -> None:
    await _hub_with_data(settings)
    shutil.rmtree(settings.key_dir)
    with pytest.raises(KeyRingError) as refused:
        await _build(settings)
    assert str(settings.key_dir) in refused.value.detail
    assert "keys.json is missing" in refused.value.detail
    assert not settings.key_dir.exists()  # nothing made in its place


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:10])


def _garble(path: Path) -> None:
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")


def _replace_by_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda d: (d / "keys.json").unlink(), "keys.json"),
        (lambda d: _truncate(d / "keys.json"), "keys.json"),
        (lambda d: _truncate(d / "pseudonym.key"), "pseudonym.key"),
        (lambda d: (d / "seal.key").unlink(), "seal.key"),
        (lambda d: _replace_by_directory(d / "seal.key"), "seal.key"),
        (lambda d: _garble(next(d.glob("signing-*.pem"))), "signing-"),
        (lambda d: next(d.glob("signing-*.pem")).unlink(), "signing-"),
    ],
    ids=[
        "index-removed",
        "index-truncated",
        "pseudonym-truncated",
        "seal-removed",
        "seal-unreadable",
        "signing-garbled",
        "signing-removed",
    ],
)
async def test_damaged_keys_for_a_database_with_data_refuse_to_start(
    settings: Settings, damage: Any, named: str
) -> None:
    await _hub_with_data(settings)
    kept = {p.name: p.read_bytes() for p in settings.key_dir.iterdir() if p.is_file()}
    damage(settings.key_dir)
    with pytest.raises(KeyRingError) as refused:
        await _build(settings)
    assert str(settings.key_dir) in refused.value.detail
    assert named in refused.value.detail
    # Nothing was made in place of the damaged key: no new file, the others untouched.
    left = {p.name: p.read_bytes() for p in settings.key_dir.iterdir() if p.is_file()}
    assert set(left) <= set(kept)
    assert sum(left[name] == kept[name] for name in left) >= len(kept) - 1


# -- ketenhub serve refuses to start ------------------------------------------------------


def _serve(settings: Settings, **env: str) -> subprocess.CompletedProcess[str]:
    """``ketenhub serve`` that must refuse before it listens (bounded: it would serve forever)."""
    environment = {**os.environ, **settings.as_env(), **env}
    return subprocess.run(
        [sys.executable, "-m", "hub", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_serve_refuses_an_unreachable_database_with_a_clear_message(settings: Settings) -> None:
    url = f"postgresql+psycopg://ketenhub:s3cret@127.0.0.1:{_closed_port()}/ketenhub"
    refused = _serve(settings, KETENHUB_DATABASE_URL=url)
    assert refused.returncode == 2
    assert "cannot be reached" in refused.stderr
    assert "KETENHUB_DATABASE_URL" in refused.stderr
    assert "s3cret" not in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr


async def test_serve_refuses_missing_keys_for_a_database_with_data(settings: Settings) -> None:
    await _hub_with_data(settings)
    shutil.rmtree(settings.key_dir)
    refused = _serve(settings)
    assert refused.returncode == 2
    assert f"The key directory {settings.key_dir} is not usable" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not settings.key_dir.exists()


@pytest.mark.parametrize("with_data", [True, False], ids=["data", "fresh"])
async def test_a_key_directory_that_is_not_a_directory_refuses_to_start(
    settings: Settings, with_data: bool
) -> None:
    if with_data:
        await _hub_with_data(settings)
        shutil.rmtree(settings.key_dir)
    settings.key_dir.write_bytes(b"not a directory")
    with pytest.raises(KeyRingError) as refused:
        await _build(settings)
    assert str(settings.key_dir) in refused.value.detail
    assert settings.key_dir.read_bytes() == b"not a directory"
