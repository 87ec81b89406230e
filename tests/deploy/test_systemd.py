"""deploy/systemd/ketenhub.service and deploy/ketenhub.env.example, for a plain host.

``systemd-analyze verify`` loads the unit as systemd would (unknown keys, bad values,
an ExecStart that is not executable); ``systemd-analyze security --offline`` scores its
sandbox. The unit's commands point at /opt/ketenhub, so the checks run on a copy that
points at this virtualenv's ``ketenhub`` instead.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from hub.settings import Settings
from tests.deploy.tools import DEPLOY, VENV_BIN, assert_ketenhub_takes, tool

UNIT = DEPLOY / "systemd" / "ketenhub.service"
ENV_EXAMPLE = DEPLOY / "ketenhub.env.example"
INSTALLED = "/opt/ketenhub/bin/ketenhub"
UNIT_VARIABLES = {"KETENHUB_LISTEN_HOST", "KETENHUB_LISTEN_PORT", "KETENHUB_WORKERS"}
"""Settings of the unit's command line, not of the hub."""


def directives() -> list[tuple[str, str]]:
    """(key, value) of every directive, in order (a key may repeat, as in systemd)."""
    pairs = []
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            pairs.append((key, value))
    return pairs


def example_env() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


@pytest.fixture
def local_unit(tmp_path: Path) -> Path:
    text = UNIT.read_text()
    assert INSTALLED in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(INSTALLED, str(VENV_BIN / "ketenhub")))
    return unit


def test_systemd_loads_the_unit_without_a_complaint(local_unit: Path) -> None:
    done = subprocess.run(
        [tool("systemd-analyze"), "verify", str(local_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert local_unit.name not in done.stderr, done.stderr


def test_the_sandbox_scores_at_most_2_of_10_exposure(local_unit: Path) -> None:
    done = subprocess.run(
        [tool("systemd-analyze"), "security", "--offline=true", "--threshold=20", str(local_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert score is not None
    assert float(score[1]) <= 2.0


def test_the_unit_runs_unprivileged_from_the_env_file_and_does_not_restart_a_refusal() -> None:
    unit = dict(directives())
    assert unit["User"] == unit["Group"] == "ketenhub"
    assert unit["EnvironmentFile"] == "/etc/ketenhub/ketenhub.env"
    assert unit["NoNewPrivileges"] == "yes"
    assert unit["ProtectSystem"] == "strict"
    assert unit["CapabilityBoundingSet"] == ""
    assert unit["StateDirectory"] == "ketenhub"
    assert unit["UMask"] == "0077"
    # `ketenhub serve` exits 2 when it refuses to start (settings, policy, keys):
    # restarting cannot help, so systemd must not loop on it.
    assert unit["RestartPreventExitStatus"] == "2"
    # The key directory is the one place the hub writes: inside StateDirectory.
    assert example_env()["KETENHUB_KEY_DIR"].startswith("/var/lib/ketenhub/")


def test_every_command_of_the_unit_is_a_real_ketenhub_command() -> None:
    env = example_env()
    commands = [v for k, v in directives() if k in {"ExecStartPre", "ExecStart"}]
    assert len(commands) == 3
    for command in commands:
        assert command.startswith(INSTALLED + " ")
        variables = set(re.findall(r"\$\{(\w+)\}", command))
        assert variables <= set(env), variables - set(env)
        args = re.sub(r"\$\{(\w+)\}", lambda m: env[m[1]], command).split()[1:]
        assert_ketenhub_takes(args, where=command)


def test_the_env_example_is_a_valid_production_configuration(tmp_path: Path) -> None:
    env = example_env()
    assert "KETENHUB_DATABASE_PASSWORD" not in env  # only its _FILE form
    assert not [k for k, v in env.items() if re.search(r"//[^/@:]+:[^/@]+@", v)]
    hub_settings = {k: v for k, v in env.items() if k not in UNIT_VARIABLES}
    password = tmp_path / "db_password"
    password.write_text("s3cret\n")
    hub_settings["KETENHUB_DATABASE_PASSWORD_FILE"] = str(password)
    settings = Settings.from_env(hub_settings)
    assert settings.production
    assert settings.public_url == env["KETENHUB_PUBLIC_URL"]
    assert "s3cret" in settings.database_url  # the password reached the URL from its file
    # Each name the example sets is one the hub reads (a typo would be ignored silently).
    source = "\n".join(
        p.read_text() for p in (DEPLOY.parent / "hub").rglob("*.py") if "demo" not in p.parts
    )
    for name in hub_settings:
        base = name.removesuffix("_FILE")
        assert f'"{base}"' in source or f"'{base}'" in source, name
