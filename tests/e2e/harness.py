"""The hub as its own process beside simulated sources: shared by the e2e and soak tests.

A ``World`` is a copied policy directory whose sources point at simulators on
ephemeral ports, a database (an SQLite file under the world's directory, or a
PostgreSQL database the caller made) and a key directory, all under one temporary
directory. A ``Hub`` is ``ketenhub serve`` started in that world in its own process
group, so that a crash test can SIGKILL it with every worker at once, and with its log
in a file (a pipe nobody reads would fill up and stall a hub under load).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from hub.demo.population import Population, make_population
from hub.demo.simulator import SimulatorThread

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("vdab", "ocmw-gent", "in-gent", "cgg-vagga", "levanto")
DEMO_PORTS = (8101, 8102, 8103, 8104, 8105)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ketenhub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """One ``ketenhub`` command in ``env``, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass(frozen=True, slots=True)
class World:
    env: dict[str, str]
    simulators: SimulatorThread
    population: Population
    root: Path

    @property
    def database(self) -> Path:
        """The SQLite file (for a world on SQLite)."""
        return self.root / "hub.db"

    @property
    def database_url(self) -> str:
        return self.env["KETENHUB_DATABASE_URL"]

    @property
    def on_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def client(self, partner: str, scope: str) -> tuple[str, str]:
        """``ketenhub client create``: the new client's id and secret."""
        made = ketenhub(
            self.env, "client", "create", "--partner", partner, "--scope", scope, "--json"
        )
        assert made.returncode == 0, made.stderr
        created = json.loads(made.stdout)
        return created["client_id"], created["client_secret"]

    def clients(self, *specs: tuple[str, str]) -> list[tuple[str, str]]:
        """Several clients (partner, scope) at once: each command starts a Python.

        On a new database each of them migrates it first, all at the same time.
        """
        with ThreadPoolExecutor(len(specs)) as pool:
            return list(pool.map(lambda spec: self.client(*spec), specs))

    def verify_offline(self) -> dict[str, Any]:
        """``ketenhub audit verify``: asserts it exits 0 and returns its report."""
        verified = ketenhub(self.env, "audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        report: dict[str, Any] = json.loads(verified.stdout)
        assert report["ok"] is True, report
        return report

    def audit_rows(self) -> dict[int, tuple[str, str | None]]:
        """Every committed audit record, straight from the database: seq -> (decision, id)."""
        rows = self.query("SELECT seq, decision, disclosure_id FROM audit_events")
        return {int(seq): (str(decision), disclosure_id) for seq, decision, disclosure_id in rows}

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        """One read, straight from the database (not through the hub), on either backend."""
        if self.on_postgres:
            import psycopg  # noqa: PLC0415 - the PostgreSQL driver only for a PostgreSQL world

            url = make_url(self.database_url)
            with psycopg.connect(
                host=url.host,
                port=url.port,
                user=url.username,
                password=url.password,
                dbname=url.database,
            ) as connection:
                return [tuple(row) for row in connection.execute(statement).fetchall()]
        connection = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30)
        try:
            return [tuple(row) for row in connection.execute(statement).fetchall()]
        finally:
            connection.close()


@contextlib.contextmanager
def world(
    root: Path,
    *,
    timeouts: dict[str, float] | None = None,
    database_url: str | None = None,
) -> Iterator[World]:
    """Simulators on port 0, then the policies written with their ports (no race).

    ``timeouts`` overrides a source's ``timeout_s`` (a soak makes a slow source time
    out sooner than the demo's 3 s). ``database_url`` is a database the caller made
    (e.g. on a ``tests.pgcluster`` cluster); by default an SQLite file in ``root``.
    """
    population = make_population(2026)
    with SimulatorThread(population, ports=dict.fromkeys(SOURCES, 0)) as simulators:
        policies = root / "policies"
        shutil.copytree(REPO / "policies", policies)
        partners = policies / "partners.yaml"
        text = partners.read_text()
        for source, port in zip(SOURCES, DEMO_PORTS, strict=True):
            url = simulators.url(source)
            text = text.replace(f"http://127.0.0.1:{port}", url)
            if timeouts and source in timeouts:
                text = text.replace(
                    f"base_url: {url}\n      timeout_s: 3",
                    f"base_url: {url}\n      timeout_s: {timeouts[source]}",
                )
        partners.write_text(text)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KETENHUB_")},
            "KETENHUB_POLICY_DIR": str(policies),
            "KETENHUB_DATABASE_URL": database_url or f"sqlite:///{root / 'hub.db'}",
            "KETENHUB_KEY_DIR": str(root / "keys"),
            # Load must not be throttled: these tests are about loss, not about limits.
            "KETENHUB_RATE_LIMIT": "off",
            "KETENHUB_TOKEN_RATE_LIMIT": "off",
        }
        yield World(env=env, simulators=simulators, population=population, root=root)


class Hub:
    """``ketenhub serve`` in its own session: ``kill`` reaches every worker it forked."""

    def __init__(self, process: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.process = process
        self.base = base
        self.log = log

    @classmethod
    def start(cls, env: dict[str, str], log: Path, *, workers: int = 1) -> Hub:
        """On a free port; another port if that one was taken meanwhile."""
        for _ in range(5):
            port = free_port()
            command = [sys.executable, "-m", "hub", "serve", "--port", str(port)]
            with log.open("ab") as sink:
                process = subprocess.Popen(
                    [*command, "--workers", str(workers)],
                    env=env,
                    stdout=sink,
                    stderr=sink,
                    start_new_session=True,
                )
            hub = cls(process, f"http://127.0.0.1:{port}", log)
            if hub._wait_ready(workers):
                return hub
            hub.kill()
            if "address already in use" not in log.read_text().lower():
                raise AssertionError(f"the hub did not start: {log.read_text()[-4000:]}")
        raise AssertionError("no free port for the hub")

    def _wait_ready(self, workers: int) -> bool:
        deadline = time.monotonic() + 30
        ready = 0
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"{self.base}/healthz", timeout=1)
                # Only the hub's own answer counts: until the hub binds, whoever took the
                # port meanwhile (a simulator on an ephemeral port) may answer 200 too.
                if answer.status_code == 200 and "x-correlation-id" in answer.headers:
                    # With several workers, each must have started before load arrives.
                    ready += 1
                    if ready >= workers:
                        return True
                    time.sleep(0.2)
            except httpx.TransportError:
                time.sleep(0.1)
        return False

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL to the whole process group: no shutdown, no last checkpoint."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait: a graceful shutdown; returns the exit status."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def output(self) -> str:
        return self.log.read_text()


def bearer(http: httpx.Client, client: tuple[str, str], scope: str | None = None) -> dict[str, str]:
    """A token from the hub's own token endpoint, as an Authorization header."""
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    token = http.post("/oauth/token", data=data, auth=client)
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}
