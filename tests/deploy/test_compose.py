"""deploy/compose.yaml, rendered by ``docker-compose config`` (no engine needed).

What is checked is what the issue asks of the stack: PostgreSQL, two hubs behind a
TLS proxy with optional mutual TLS, the simulators; secrets from files outside the
repository; the hubs on an internal network only; migrations once, before the hubs.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import DEPLOY, REPO, assert_ketenhub_takes, tool

HUBS = ("hub-1", "hub-2")
KETENHUB_SERVICES = ("setup", *HUBS, "simulators")


def render(**settings: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETENHUB_")}
    env.update(settings)
    done = subprocess.run(
        [tool("docker-compose"), "-f", str(DEPLOY / "compose.yaml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rendered: dict[str, Any] = yaml.safe_load(done.stdout)
    return rendered


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return render()


def published(port: str | dict[str, Any]) -> tuple[int, int]:
    """(host port, container port) from either syntax (docker-compose 1.x or Compose v2)."""
    if isinstance(port, dict):
        return int(port["published"]), int(port["target"])
    host, _, container = port.rpartition(":")
    return int(host.rpartition(":")[2]), int(container)


def ketenhub_args(service: dict[str, Any]) -> list[str]:
    """The ``ketenhub`` arguments a service runs: its command after the image's entrypoint."""
    command = service["command"]
    return command if isinstance(command, list) else command.split()


def test_the_stack_has_postgres_two_hubs_a_proxy_and_the_simulators(
    stack: dict[str, Any],
) -> None:
    assert set(stack["services"]) == {"postgres", "setup", *HUBS, "simulators", "proxy"}
    for name in HUBS:
        assert ketenhub_args(stack["services"][name])[0] == "serve"


def test_only_the_proxy_publishes_a_port_and_the_hubs_sit_on_an_internal_network(
    stack: dict[str, Any],
) -> None:
    services = stack["services"]
    publishing = {name for name, service in services.items() if service.get("ports")}
    assert publishing == {"proxy"}
    assert [published(p) for p in services["proxy"]["ports"]] == [(8443, 443)]
    assert stack["networks"]["backend"]["internal"] is True
    assert set(services["proxy"]["networks"]) == {"edge", "backend"}
    for name in (*HUBS, "postgres", "setup"):
        assert "edge" not in services[name]["networks"], name
    for name in HUBS:
        assert "backend" in services[name]["networks"]
        assert "expose" not in services[name]


def test_secrets_are_files_outside_the_repository_and_reach_the_hub_as_file_settings(
    stack: dict[str, Any],
) -> None:
    for name, secret in stack["secrets"].items():
        path = Path(secret["file"])
        assert path.parent == DEPLOY / "secrets", name
        ignored = subprocess.run(
            ["git", "-C", str(REPO), "check-ignore", "-q", str(path)], check=False
        )
        assert ignored.returncode == 0, f"{path} is not ignored by git"
    for name in (*HUBS, "setup"):
        service = stack["services"][name]
        environment = service["environment"]
        mounted = {s["source"] if isinstance(s, dict) else s for s in service["secrets"]}
        assert environment["KETENHUB_DATABASE_PASSWORD_FILE"] == "/run/secrets/db_password"
        assert "db_password" in mounted
        # No password in the URL or anywhere in the environment in clear.
        assert re.search(r"//[^/@:]+:[^/@]+@", environment["KETENHUB_DATABASE_URL"]) is None
        assert not [k for k in environment if "PASSWORD" in k and not k.endswith("_FILE")]
        assert environment["KETENHUB_ENV"] == "production"
        assert environment["KETENHUB_PUBLIC_URL"].startswith("https://")
    postgres = stack["services"]["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert "POSTGRES_PASSWORD" not in postgres


def test_migrations_run_once_before_the_hubs_start(stack: dict[str, Any]) -> None:
    services = stack["services"]
    setup = services["setup"]
    script = " ".join(setup["command"])
    assert "ketenhub db upgrade" in script
    assert setup["restart"] == "no"
    for name in HUBS:
        depends = services[name]["depends_on"]
        assert depends["setup"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"


def test_every_ketenhub_command_the_stack_runs_exists() -> None:
    """Each service's arguments are a real ``ketenhub`` command (``--help`` parses them)."""
    stack = render()
    commands = [ketenhub_args(stack["services"][name]) for name in (*HUBS, "simulators")]
    setup_script = stack["services"]["setup"]["command"][0]
    commands += [c.split() for c in re.findall(r"ketenhub ([a-z ]+[a-z])", setup_script)]
    assert len(commands) >= 5
    for args in commands:
        assert_ketenhub_takes(args, where=f"ketenhub {' '.join(args)}")


def test_the_containers_are_read_only_and_without_capabilities(stack: dict[str, Any]) -> None:
    for name in KETENHUB_SERVICES:
        service = stack["services"][name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert Path(service["build"]["context"]) == REPO
    assert stack["services"]["proxy"]["read_only"] is True


@pytest.mark.parametrize("mtls", ["off", "on"])
def test_every_bind_mount_exists_in_either_mtls_mode(mtls: str) -> None:
    stack = render(KETENHUB_MTLS=mtls)
    sources = []
    for service in stack["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("/"):
                sources.append(Path(source))
    assert DEPLOY / "nginx" / "mtls" / f"{mtls}.conf" in sources
    missing = [str(path) for path in sources if not path.exists()]
    assert not missing


def test_the_published_port_and_public_url_are_settings() -> None:
    stack = render(KETENHUB_HTTPS_PORT="9443", KETENHUB_PUBLIC_URL="https://hub.example.be")
    assert [published(p) for p in stack["services"]["proxy"]["ports"]] == [(9443, 443)]
    for name in HUBS:
        assert stack["services"][name]["environment"]["KETENHUB_PUBLIC_URL"] == (
            "https://hub.example.be"
        )


def test_the_sources_in_the_policy_are_the_simulators_service(stack: dict[str, Any]) -> None:
    partners = yaml.safe_load((DEPLOY / "policies" / "partners.yaml").read_text())["partners"]
    urls = [p["source"]["base_url"] for p in partners if "source" in p]
    assert urls
    assert {re.sub(r":\d+$", "", u) for u in urls} == {"http://simulators"}
    assert "sources" in stack["services"]["simulators"]["networks"]
    for name in HUBS:
        assert "sources" in stack["services"][name]["networks"]
