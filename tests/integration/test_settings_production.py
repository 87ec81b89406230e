"""Production mode and secrets from files, through the real ``ketenhub`` commands (issue #5).

Every refusal exits 2 with one plain line naming the problem, before the hub listens
or changes anything; a key directory made by ``ketenhub keys init`` passes, and the
hub then serves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy.engine import make_url

from hub.auth.keys import FileKeyRing, Origin
from tests.e2e.harness import Hub, ketenhub

if TYPE_CHECKING:
    from pathlib import Path

    from hub.settings import Settings

SECRET = "pw-that-must-not-show"


@pytest.fixture
def production(settings: Settings) -> dict[str, str]:
    """A complete production environment whose key directory is not made yet."""
    return {
        **os.environ,
        **settings.as_env(),
        "KETENHUB_ENV": "production",
        "KETENHUB_PUBLIC_URL": "https://hub.test",
        "KETENHUB_RATE_LIMIT": "50/second",
        "KETENHUB_TOKEN_RATE_LIMIT": "30/minute",
    }


def refused(done: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    message = done.stderr.strip()
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    for part in expected:
        assert part in message, message
    return message


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``ketenhub serve`` that must refuse before it listens (bounded: it would serve forever)."""
    return subprocess.run(
        [sys.executable, "-m", "hub", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_never_makes_keys(production: dict[str, str], settings: Settings) -> None:
    refused(serve(production), "does not exist", "ketenhub keys init")
    assert not settings.key_dir.exists()
    refused(
        ketenhub(production, "client", "create", "--partner", "gtb", "--scope", "exchange"),
        "does not exist",
    )
    assert not settings.key_dir.exists()


@pytest.mark.parametrize("origin", [Origin.DEVELOPMENT, Origin.DEMO])
def test_production_refuses_keys_made_on_the_fly(
    production: dict[str, str], settings: Settings, origin: Origin
) -> None:
    FileKeyRing.load_or_create(settings.key_dir, origin=origin)
    refused(serve(production), f"are {origin.value} keys", "ketenhub keys init")
    for command in (("keys", "rotate"), ("audit", "verify"), ("keys", "status")):
        refused(ketenhub(production, *command), f"are {origin.value} keys")


def test_production_refuses_keys_others_can_read(
    production: dict[str, str], settings: Settings
) -> None:
    ketenhub(production, "keys", "init")
    (settings.key_dir / "pseudonym.key").chmod(0o644)
    refused(serve(production), "pseudonym.key can be read by group or others (mode 0644)")


def test_production_refuses_keys_inside_a_repository(
    production: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    env = production | {"KETENHUB_KEY_DIR": str(tmp_path / "repo" / "keys")}
    refused(ketenhub(env, "keys", "init"), "inside the source tree or repository")
    assert not (tmp_path / "repo" / "keys").exists()
    FileKeyRing.load_or_create(tmp_path / "repo" / "keys", origin=Origin.KEYS_INIT)
    refused(serve(env), "inside the source tree or repository")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"KETENHUB_PUBLIC_URL": ""}, "KETENHUB_PUBLIC_URL is unset"),
        ({"KETENHUB_RATE_LIMIT": "off"}, "KETENHUB_RATE_LIMIT=off"),
    ],
)
def test_production_refuses_incomplete_settings(
    production: dict[str, str], change: dict[str, str], problem: str
) -> None:
    env = production | change
    ketenhub(production, "keys", "init")
    refused(serve(env), "KETENHUB_ENV=production", problem)


def test_production_never_makes_a_master_key_on_the_fly(
    production: dict[str, str], settings: Settings
) -> None:
    ketenhub(production, "keys", "init")
    for made in settings.key_dir.glob("master-*"):
        made.unlink()
    refused(serve(production), "master-keys.json")
    refused(ketenhub(production, "keys", "rotate-master"), "master-keys.json")
    assert not list(settings.key_dir.glob("master-*"))


def test_the_demo_refuses_production(production: dict[str, str], settings: Settings) -> None:
    refused(ketenhub(production, "demo", "--port", "0"), "refuses KETENHUB_ENV=production")
    assert not settings.key_dir.exists()


def test_keys_made_by_keys_init_serve_in_production(
    production: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    made = ketenhub(production, "keys", "init")
    assert made.returncode == 0, made.stderr
    assert ketenhub(production, "keys", "init").returncode == 2  # never twice
    assert (settings.key_dir / "master-keys.json").is_file()  # data keys' master, made too

    hub = Hub.start(production, tmp_path / "hub.log")
    try:
        jwks = httpx.get(f"{hub.base}/.well-known/jwks.json", timeout=10).json()
        assert len(jwks["keys"]) == 1
        rotated = ketenhub(production, "keys", "rotate")
        assert rotated.returncode == 0, rotated.stderr
    finally:
        hub.stop()  # uvicorn ends by re-raising the SIGTERM it handled: no exit status to hold
    assert "hub_stopped" in hub.output()
    assert FileKeyRing.load(settings.key_dir).origin is Origin.KEYS_INIT


# -- secrets from files -----------------------------------------------------------------------


def test_the_database_url_may_come_from_a_file(settings: Settings, tmp_path: Path) -> None:
    url_file = tmp_path / "database-url"
    url_file.write_text(settings.database_url + "\n")
    env = {**os.environ, **settings.as_env(), "KETENHUB_DATABASE_URL_FILE": str(url_file)}
    del env["KETENHUB_DATABASE_URL"]

    done = ketenhub(env, "client", "create", "--partner", "gtb", "--scope", "exchange", "--json")

    assert done.returncode == 0, done.stderr
    assert ketenhub(env, "audit", "verify").returncode == 0


def test_a_setting_given_twice_or_a_password_where_none_fits_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET)
    base = {**os.environ, **settings.as_env()}

    twice = base | {"KETENHUB_DATABASE_URL_FILE": str(secret_file)}
    message = refused(
        ketenhub(twice, "db", "upgrade"), "KETENHUB_DATABASE_URL and KETENHUB_DATABASE_URL_FILE"
    )
    assert SECRET not in message

    misplaced = base | {"KETENHUB_DATABASE_PASSWORD_FILE": str(secret_file)}
    if settings.database_url.startswith("sqlite"):
        message = refused(ketenhub(misplaced, "db", "upgrade"), "SQLite")
    else:
        with_one = make_url(settings.database_url).set(password="other")
        misplaced["KETENHUB_DATABASE_URL"] = with_one.render_as_string(hide_password=False)
        message = refused(ketenhub(misplaced, "db", "upgrade"), "give the password in one place")
    assert SECRET not in message
    assert "other" not in message
