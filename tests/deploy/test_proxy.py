"""The compose stack's shape, live on this machine: nginx (deploy/nginx, TLS and mutual
TLS) in front of two ``ketenhub serve`` processes in production mode on one throw-away
PostgreSQL, with ``ketenhub simulate`` as the sources and deploy/policies as the policy.

Only the container-specific names differ from deploy/compose.yaml (tests/deploy/nginx.py
says which): the requests below go through the real proxy configuration to real hubs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.demo.population import make_population
from hub.demo.simulator import DEFAULT_PORTS
from tests.deploy import nginx
from tests.deploy.tools import DEPLOY
from tests.e2e.harness import Hub, ketenhub
from tests.pgcluster import PgUnavailableError, pg_cluster, require_or_skip

pytestmark = pytest.mark.e2e

EXCHANGE = {
    "source": "vdab",
    "purpose": "trajectory-coordination",
    "fields": ["trajectory.status"],
    "actor": {"role": "casemanager-work", "id": "u-1"},
}


@dataclass
class Stack:
    env: dict[str, str]
    secrets: Path
    hubs: list[Hub]
    hub_ports: list[int]
    open_url: str
    """The proxy without client certificates (KETENHUB_MTLS=off)."""
    mtls_url: str
    """The proxy that requires a partner certificate (KETENHUB_MTLS=on)."""
    logs: dict[str, Path]
    gtb: tuple[str, str]
    officer: tuple[str, str]
    participant: str

    def tls(self, *, cert: str | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.secrets / "ca.crt"))
        if cert is not None:
            context.load_cert_chain(self.secrets / f"{cert}.crt", self.secrets / f"{cert}.key")
        return context

    def client(self, url: str, *, cert: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=url, verify=self.tls(cert=cert), timeout=15)


@contextlib.contextmanager
def simulators(env: dict[str, str], log: Path) -> Iterator[dict[str, str]]:
    """``ketenhub simulate`` on free ports; yields source -> base URL as it printed them."""
    args = [a for source in DEFAULT_PORTS for a in ("--source", f"{source}=0")]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub", "simulate", "--host", "127.0.0.1", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
            start_new_session=True,
        )
    try:
        assert process.stdout is not None
        urls = {}
        deadline = time.monotonic() + 60
        while len(urls) < len(DEFAULT_PORTS) and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, f"ketenhub simulate stopped: {log.read_text()}"
            source, _, url = line.strip().partition(": ")
            urls[source] = url
        assert set(urls) == set(DEFAULT_PORTS)
        yield urls
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def policy_dir(root: Path, urls: dict[str, str]) -> Path:
    target = root / "policies"
    shutil.copytree(DEPLOY / "policies", target)
    partners = target / "partners.yaml"
    text = partners.read_text()
    for source, port in DEFAULT_PORTS.items():
        assert f"http://simulators:{port}" in text
        text = text.replace(f"http://simulators:{port}", urls[source])
    partners.write_text(text)
    return target


def created(env: dict[str, str], partner: str, scope: str) -> tuple[str, str]:
    made = ketenhub(env, "client", "create", "--partner", partner, "--scope", scope, "--json")
    assert made.returncode == 0, made.stderr
    answer = json.loads(made.stdout)
    return answer["client_id"], answer["client_secret"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    try:
        cluster_context = pg_cluster()
        cluster = cluster_context.__enter__()
    except PgUnavailableError as exc:
        require_or_skip(str(exc))
    try:
        secrets = nginx.make_secrets(root / "secrets")
        open_port, mtls_port = nginx.free_port(), nginx.free_port()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("KETENHUB_")}
        with simulators(base_env, root / "simulators.log") as urls:
            env = {
                **base_env,
                # As deploy/compose.yaml runs them: production mode, password from a file.
                "KETENHUB_ENV": "production",
                "KETENHUB_DATABASE_URL": cluster.url(),
                "KETENHUB_KEY_DIR": str(root / "keys"),
                "KETENHUB_POLICY_DIR": str(policy_dir(root, urls)),
                "KETENHUB_PUBLIC_URL": f"https://localhost:{open_port}",
                "KETENHUB_LOG_FORMAT": "json",
            }
            for args in (("db", "upgrade"), ("keys", "init")):  # compose's `setup` service
                done = ketenhub(env, *args)
                assert done.returncode == 0, done.stderr
            gtb = created(env, "gtb", "exchange consent:write")
            officer = created(env, "hub", "audit:read")
            hubs = [Hub.start(env, root / f"hub-{n}.log") for n in (1, 2)]
            try:
                ports = [int(h.base.rpartition(":")[2]) for h in hubs]
                upstreams = (f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}")
                open_conf = nginx.render(
                    root / "nginx-open",
                    secrets=secrets,
                    mtls="off",
                    upstreams=upstreams,
                    port=open_port,
                )
                mtls_conf = nginx.render(
                    root / "nginx-mtls",
                    secrets=secrets,
                    mtls="on",
                    upstreams=upstreams,
                    port=mtls_port,
                )
                with nginx.running(open_conf, open_port), nginx.running(mtls_conf, mtls_port):
                    yield Stack(
                        env=env,
                        secrets=secrets,
                        hubs=hubs,
                        hub_ports=ports,
                        open_url=f"https://localhost:{open_port}",
                        mtls_url=f"https://localhost:{mtls_port}",
                        logs={
                            "open": open_conf.parent / "access.log",
                            "mtls": mtls_conf.parent / "access.log",
                        },
                        gtb=gtb,
                        officer=officer,
                        participant=make_population(2026).known_to("vdab")[0].insz.digits,
                    )
            finally:
                for hub in hubs:
                    hub.stop()
    finally:
        cluster_context.__exit__(None, None, None)


def bearer(http: httpx.Client, client: tuple[str, str]) -> dict[str, str]:
    token = http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=client)
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def exchange(http: httpx.Client, stack: Stack, headers: dict[str, str]) -> httpx.Response:
    return http.post(
        "/v1/exchange", json={**EXCHANGE, "participant": stack.participant}, headers=headers
    )


def access_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_exchange_through_the_tls_proxy_is_served_by_both_hubs(stack: Stack) -> None:
    with stack.client(stack.open_url) as http:
        auth = bearer(http, stack.gtb)
        answers = [exchange(http, stack, auth) for _ in range(6)]
        for answer in answers:
            assert answer.status_code == 200, answer.text
            assert answer.json()["data"]["trajectory.status"]
            assert int(answer.headers["Strict-Transport-Security"].split("=")[1]) >= 31_536_000
    upstreams = {line["upstream"] for line in access_log(stack.logs["open"])}
    assert {f"127.0.0.1:{port}" for port in stack.hub_ports} <= upstreams
    # Every decision of both hubs is in one audit chain, and it verifies.
    with stack.client(stack.open_url) as http:
        verified = http.get("/v1/audit/verify", headers=bearer(http, stack.officer))
        assert verified.json()["ok"] is True, verified.text


def test_metrics_and_readiness_are_not_served_through_the_proxy(stack: Stack) -> None:
    with stack.client(stack.open_url) as http:
        for path in ("/metrics", "/readyz", "/metrics?x=1", "//metrics", "/%6detrics"):
            answer = http.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"] == "application/problem+json"
        assert http.get("/healthz").status_code == 200
    # The hubs themselves serve both on the internal network.
    direct = stack.hubs[0].base
    assert httpx.get(f"{direct}/metrics", timeout=5).status_code == 200
    assert httpx.get(f"{direct}/readyz", timeout=5).status_code == 200


def test_the_trace_id_of_the_callers_traceparent_comes_back_as_correlation_id(
    stack: Stack,
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with stack.client(stack.open_url) as http:
        answer = http.get(
            "/v1/catalogue",
            headers={
                **bearer(http, stack.gtb),
                "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
            },
        )
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Correlation-Id"] == trace_id


def test_the_proxys_access_log_holds_no_insz(stack: Stack) -> None:
    with stack.client(stack.open_url) as http:
        listed = http.get(
            "/v1/consents",
            params={"participant": stack.participant},
            headers=bearer(http, stack.gtb),
        )
    assert listed.status_code == 200, listed.text
    log = stack.logs["open"].read_text()
    assert '"path":"/v1/consents"' in log
    assert stack.participant not in log
    assert re.search(r"(?<!\d)\d{11}(?!\d)", log) is None


def test_mutual_tls_refuses_a_partner_without_a_certificate_of_the_partner_ca(
    stack: Stack,
) -> None:
    before = len(access_log(stack.logs["mtls"])) if stack.logs["mtls"].exists() else 0
    with stack.client(stack.mtls_url) as http:
        refused = http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=stack.gtb
        )
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["reason"] == "client-certificate-required"
    # A certificate from another CA (the proxy's own, serverAuth only) is no better.
    with stack.client(stack.mtls_url, cert="tls") as http:
        assert http.get("/v1/catalogue").status_code == 403
    # None of it reached a hub.
    assert all(line["upstream"] == "" for line in access_log(stack.logs["mtls"])[before:])


def test_mutual_tls_serves_a_partner_with_its_certificate(stack: Stack) -> None:
    with stack.client(stack.mtls_url, cert="partner-demo") as http:
        answer = exchange(http, stack, bearer(http, stack.gtb))
    assert answer.status_code == 200, answer.text
    assert access_log(stack.logs["mtls"])[-1]["client_cert"] == "SUCCESS"


def test_tls_below_1_2_and_non_aead_ciphers_are_refused(stack: Stack) -> None:
    port = int(stack.open_url.rpartition(":")[2])
    strong = stack.tls()
    strong.maximum_version = ssl.TLSVersion.TLSv1_2
    with httpx.Client(verify=strong) as http:
        assert http.get(f"{stack.open_url}/healthz").status_code == 200
    weak = stack.tls()
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA")  # CBC only
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=weak) as http:
        http.get(f"https://localhost:{port}/healthz")


def test_one_hub_down_the_other_serves_every_exchange(stack: Stack) -> None:
    """nginx tries the next hub when one refuses the connection; a POST it had already
    sent is never sent twice (proxy_next_upstream leaves non-idempotent requests)."""
    down = stack.hubs[1]
    down.kill()
    try:
        with stack.client(stack.open_url) as http:
            auth = bearer(http, stack.gtb)
            statuses = [exchange(http, stack, auth).status_code for _ in range(6)]
        assert statuses == [200] * 6
    finally:
        stack.hubs[1] = restart(down, stack.hub_ports[1], stack.env)


def restart(hub: Hub, port: int, env: dict[str, str]) -> Hub:
    """The same hub again on its old port, where the proxy expects it."""
    with hub.log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    again = Hub(process, hub.base, hub.log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{hub.base}/healthz", timeout=1).status_code == 200:
                return again
        time.sleep(0.2)
    again.kill()
    raise AssertionError(f"the hub did not start again: {hub.log.read_text()[-2000:]}")
