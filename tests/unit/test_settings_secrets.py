"""Secrets from files or the environment, and what production refuses in the settings
(``hub.settings``, issue #5)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import make_url

from hub.settings import SECRET_SETTINGS, Settings, SettingsError

if TYPE_CHECKING:
    from pathlib import Path

SECRET = "s3cret-p@ss/w:rd"
PG = "postgresql+psycopg://ketenhub@db.internal:5432/ketenhub"
PRODUCTION = {
    "KETENHUB_ENV": "production",
    "KETENHUB_DATABASE_URL": PG,
    "KETENHUB_KEY_DIR": "/run/secrets/ketenhub-keys",
    "KETENHUB_PUBLIC_URL": "https://hub.example.be",
}


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(env, cwd=tmp_path)


def error(tmp_path: Path, **env: str) -> str:
    with pytest.raises(SettingsError) as caught:
        settings(tmp_path, **env)
    message = str(caught.value)
    assert SECRET not in message
    assert "\n" not in message
    return message


def a_file(tmp_path: Path, content: str, name: str = "secret") -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


# -- _FILE ------------------------------------------------------------------------------------


def test_every_secret_setting_may_come_from_a_file() -> None:
    assert set(SECRET_SETTINGS) == {"KETENHUB_DATABASE_URL", "KETENHUB_DATABASE_PASSWORD"}


def test_the_database_url_from_a_file_loses_one_trailing_newline(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    found = settings(tmp_path, KETENHUB_DATABASE_URL_FILE=a_file(tmp_path, url + "\n"))
    assert found.database_url == url


def test_a_password_from_a_file_is_put_into_the_url(tmp_path: Path) -> None:
    found = settings(
        tmp_path,
        KETENHUB_DATABASE_URL=PG,
        KETENHUB_DATABASE_PASSWORD_FILE=a_file(tmp_path, SECRET + "\n"),
    )
    parsed = make_url(found.database_url)
    assert parsed.password == SECRET
    assert (parsed.username, parsed.host, parsed.port, parsed.database) == (
        "ketenhub",
        "db.internal",
        5432,
        "ketenhub",
    )
    assert SECRET not in repr(found)


def test_a_password_from_the_environment_is_put_into_the_url(tmp_path: Path) -> None:
    found = settings(tmp_path, KETENHUB_DATABASE_URL=PG, KETENHUB_DATABASE_PASSWORD=SECRET)
    assert make_url(found.database_url).password == SECRET


@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_a_setting_and_its_file_both_set_is_an_error_naming_both(tmp_path: Path, name: str) -> None:
    env = {name: SECRET, f"{name}_FILE": a_file(tmp_path, SECRET)}
    message = error(tmp_path, **env)
    assert f"{name} and {name}_FILE are both set" in message


def test_an_unreadable_file_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    message = error(tmp_path, KETENHUB_DATABASE_PASSWORD_FILE=str(tmp_path / "absent"))
    assert message.startswith("KETENHUB_DATABASE_PASSWORD_FILE: cannot read")
    assert "FileNotFoundError" in message


def test_an_empty_file_is_an_error(tmp_path: Path) -> None:
    message = error(tmp_path, KETENHUB_DATABASE_URL_FILE=a_file(tmp_path, "\n"))
    assert "is empty" in message


def test_a_url_with_a_password_and_a_password_setting_is_an_error(tmp_path: Path) -> None:
    url = "postgresql+psycopg://ketenhub:other@db/ketenhub"
    message = error(tmp_path, KETENHUB_DATABASE_URL=url, KETENHUB_DATABASE_PASSWORD=SECRET)
    assert "KETENHUB_DATABASE_URL holds a password and KETENHUB_DATABASE_PASSWORD" in message
    assert "other" not in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql+psycopg://db.internal/ketenhub", "names no user"),
        ("sqlite:///var/hub.db", "SQLite"),
        (None, "SQLite"),  # the default database is an SQLite file
    ],
)
def test_a_password_for_a_url_that_cannot_take_one_is_an_error(
    tmp_path: Path, url: str | None, problem: str
) -> None:
    env = {"KETENHUB_DATABASE_PASSWORD": SECRET}
    if url is not None:
        env["KETENHUB_DATABASE_URL"] = url
    assert problem in error(tmp_path, **env)


def test_workers_get_the_merged_url_and_not_the_forms_it_was_read_from(tmp_path: Path) -> None:
    source = {
        "KETENHUB_DATABASE_URL_FILE": a_file(tmp_path, PG),
        "KETENHUB_DATABASE_PASSWORD": SECRET,
        "PATH": os.environ.get("PATH", ""),
    }
    found = settings(tmp_path, **source)
    environ = dict(source)

    found.export(environ)

    assert "KETENHUB_DATABASE_URL_FILE" not in environ
    assert "KETENHUB_DATABASE_PASSWORD" not in environ
    assert Settings.from_env(environ, cwd=tmp_path) == found  # a worker reads the same


# -- production ---------------------------------------------------------------------------------


def test_complete_production_settings_pass(tmp_path: Path) -> None:
    found = settings(tmp_path, **PRODUCTION)
    assert found.production
    assert found.as_env()["KETENHUB_ENV"] == "production"


def test_the_environment_is_development_unless_told() -> None:
    found = Settings.from_env({})
    assert found.environment == "development"
    assert not found.production


def test_an_unknown_environment_is_an_error(tmp_path: Path) -> None:
    assert "KETENHUB_ENV must be" in error(tmp_path, KETENHUB_ENV="prod")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"KETENHUB_PUBLIC_URL": ""}, "KETENHUB_PUBLIC_URL is unset"),
        ({"KETENHUB_PUBLIC_URL": "http://hub.example.be"}, "must be an https URL"),
        ({"KETENHUB_RATE_LIMIT": "off"}, "KETENHUB_RATE_LIMIT=off"),
        ({"KETENHUB_TOKEN_RATE_LIMIT": "off"}, "KETENHUB_TOKEN_RATE_LIMIT=off"),
        ({"KETENHUB_DATABASE_URL": ""}, "set KETENHUB_DATABASE_URL"),
        ({"KETENHUB_KEY_DIR": ""}, "set KETENHUB_KEY_DIR"),
    ],
    ids=["no-public-url", "http", "rate-off", "token-rate-off", "default-db", "default-keys"],
)
def test_production_refuses_incomplete_or_unsafe_settings(
    tmp_path: Path, change: dict[str, str], problem: str
) -> None:
    message = error(tmp_path, **(PRODUCTION | change))
    assert "KETENHUB_ENV=production" in message
    assert problem in message


def test_a_database_url_from_a_file_counts_as_set_in_production(tmp_path: Path) -> None:
    env = PRODUCTION | {
        "KETENHUB_DATABASE_URL": "",
        "KETENHUB_DATABASE_URL_FILE": a_file(tmp_path, PG),
    }
    assert settings(tmp_path, **env).database_url == PG
