"""End to end: ``ketenhub serve`` as its own process, simulated sources, real HTTP."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.demo.population import make_population
from hub.demo.simulator import SimulatorThread

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
SOURCES = ("vdab", "ocmw-gent", "in-gent", "cgg-vagga", "levanto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ketenhub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[dict[str, str], SimulatorThread]]:
    # The simulators bind port 0 and the policies are written after: no port can be
    # taken by someone else between choosing and binding it.
    with SimulatorThread(make_population(2026), ports=dict.fromkeys(SOURCES, 0)) as simulators:
        policies = tmp_path / "policies"
        shutil.copytree(REPO / "policies", policies)
        partners = policies / "partners.yaml"
        text = partners.read_text()
        for source, port in zip(SOURCES, (8101, 8102, 8103, 8104, 8105), strict=True):
            text = text.replace(f"http://127.0.0.1:{port}", simulators.url(source))
        partners.write_text(text)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KETENHUB_")},
            "KETENHUB_POLICY_DIR": str(policies),
            "KETENHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}",
            "KETENHUB_KEY_DIR": str(tmp_path / "keys"),
        }
        yield env, simulators


def start_hub(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """``ketenhub serve`` on a free port; another port if that one was taken meanwhile."""
    for _ in range(5):
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while server.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    return server, base
            except httpx.TransportError:
                time.sleep(0.1)
        server.kill()
        _, stderr = server.communicate(timeout=10)
        if "address already in use" not in stderr.lower():
            raise AssertionError(f"the hub did not start: {stderr}")
    raise AssertionError("no free port for the hub")


def test_serve_token_exchange_audit_and_offline_verify(
    world: tuple[dict[str, str], SimulatorThread],
) -> None:
    env, _ = world
    made = ketenhub(env, "client", "create", "--partner", "gtb", "--scope", "exchange", "--json")
    assert made.returncode == 0, made.stderr
    gtb = json.loads(made.stdout)
    assert set(gtb) == {"client_id", "client_secret"}

    server, base = start_hub(env)
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
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert server.returncode in {0, -signal.SIGTERM}, stderr
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
