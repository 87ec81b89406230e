"""End to end: ``ketenhub serve`` as its own process, simulated sources, real HTTP."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.demo.population import make_population
from hub.demo.simulator import SimulatorThread
from tests.conftest import Backend
from tests.e2e.harness import REPO, Hub, free_port, ketenhub
from tests.e2e.harness import world as make_world

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(
    tmp_path: Path, fresh_databases: Backend
) -> Iterator[tuple[dict[str, str], SimulatorThread]]:
    """A new, empty database on the run's backend (on SQLite, the world's own file)."""
    url = None if fresh_databases.name == "sqlite" else fresh_databases.empty(tmp_path)
    with make_world(tmp_path, database_url=url) as made:
        yield made.env, made.simulators


def start_hub(env: dict[str, str], log: Path) -> tuple[Hub, str]:
    hub = Hub.start(env, log)
    return hub, hub.base


def test_serve_token_exchange_audit_and_offline_verify(
    world: tuple[dict[str, str], SimulatorThread],
    tmp_path: Path,
) -> None:
    env, _ = world
    made = ketenhub(env, "client", "create", "--partner", "gtb", "--scope", "exchange", "--json")
    assert made.returncode == 0, made.stderr
    gtb = json.loads(made.stdout)
    assert set(gtb) == {"client_id", "client_secret"}

    server, base = start_hub(env, tmp_path / "hub.log")
    try:
        with httpx.Client(base_url=base, timeout=5) as http:
            token = http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(gtb["client_id"], gtb["client_secret"]),
            )
            assert token.status_code == 200, token.text
            bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            person = make_population(2026).known_to("vdab")[0].insz.digits
            answer = http.post(
                "/v1/exchange",
                json={
                    "participant": person,
                    "source": "vdab",
                    "purpose": "trajectory-coordination",
                    "fields": ["trajectory.status", "icf.assessment"],
                    "actor": {"role": "casemanager-work", "id": "u-1"},
                },
                headers=bearer,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["withheld"] == [
                {"field": "icf.assessment", "reason": "no-consent"}
            ]

            # A client made while the hub runs works at once (CONTRACT.md 6).
            officer = json.loads(
                ketenhub(
                    env, "client", "create", "--partner", "hub", "--scope", "audit:read", "--json"
                ).stdout
            )
            officer_token = http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": officer["client_id"],
                    "client_secret": officer["client_secret"],
                },
            ).json()["access_token"]
            officer_auth = {"Authorization": f"Bearer {officer_token}"}
            events = http.get("/v1/audit/events", headers=officer_auth).json()["items"]
            assert [e["decision"] for e in events] == ["disclosed"]
            assert http.get("/v1/audit/verify", headers=officer_auth).json()["ok"] is True
    finally:
        returncode = server.stop()
    stderr = server.output()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert returncode in {0, -signal.SIGTERM}, stderr
    assert '"event": "hub_stopped"' in stderr
    assert person not in stderr

    verified = ketenhub(env, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["entries"] == 1


def test_serve_refuses_an_invalid_policy_directory_and_names_file_and_line(
    world: tuple[dict[str, str], SimulatorThread],
    tmp_path: Path,
) -> None:
    env, _ = world
    agreement = Path(env["KETENHUB_POLICY_DIR"]) / "agreements" / "ocmw-gent-leefloon.yaml"
    agreement.write_text(
        agreement.read_text().replace("recipients: [gtb, vdab]", "recipients: [gtb, nobody]")
    )
    refused = ketenhub(env, "serve", "--port", str(free_port()))
    assert refused.returncode != 0
    assert re.search(r"agreements/ocmw-gent-leefloon\.yaml:\d+: .*nobody", refused.stderr)
    checked = ketenhub(env, "policy", "check", env["KETENHUB_POLICY_DIR"])
    assert checked.returncode == 1
    assert "nobody" in checked.stderr
    assert ketenhub(env, "policy", "check", str(REPO / "policies")).returncode == 0
