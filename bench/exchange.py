"""Sections 1 and 6: the exchange path against a bare proxy, and revocation under load.

One hub (``ketenhub serve``, SQLite, durable commits) and one simulated source run
as processes of their own; wrk, with one thread, is the load generator for both the
hub and the baseline proxy, and its own CPU time is reported. The workload is the
full path: token verification, a decision that needs a consent, the source call,
the audit append and the response.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench import processes
from bench.common import Figures, rounded, stopwatch
from hub.demo.population import make_population

SOURCE = "vdab"
REQUESTER = "gtb"
PURPOSE = "trajectory-coordination"
FIELDS = ["trajectory.status", "trajectory.start_date", "icf.assessment"]
CONSENTED_FIELD = "icf.assessment"
PARTICIPANTS = 200
CONNECTIONS = 64


@dataclass
class Client:
    base: str
    client_id: str
    secret: str

    def token(self) -> str:
        basic = base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        request = urllib.request.Request(
            f"{self.base}/oauth/token",
            data=urllib.parse.urlencode({"grant_type": "client_credentials"}).encode(),
            headers={"Authorization": f"Basic {basic}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            token: str = json.load(answer)["access_token"]
            return token


def _post(base: str, path: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _body(insz: str, actor: str = "gtb-bench-1") -> dict[str, Any]:
    return {
        "participant": insz,
        "source": SOURCE,
        "purpose": PURPOSE,
        "fields": FIELDS,
        "actor": {"role": "casemanager-work", "id": actor},
    }


def _grant(base: str, token: str, insz: str) -> str:
    status, answer = _post(
        base,
        "/v1/consents",
        token,
        {
            "participant": insz,
            "recipient": REQUESTER,
            "purpose": PURPOSE,
            "fields": [CONSENTED_FIELD],
            "evidence": "Bench: synthetic participant.",
        },
    )
    if status != 201:
        raise RuntimeError(f"consent grant answered {status}: {answer}")
    consent_id: str = answer["id"]
    return consent_id


def _pace_ms(connections: int, rate: float) -> float:
    return connections / rate * 1000.0


def _run_load(
    base: str,
    token: str | None,
    bodies: list[str],
    work: Path,
    *,
    seconds: float,
    rate: float | None,
) -> dict[str, float]:
    connections = CONNECTIONS if rate is None else 32
    delay = None if rate is None else _pace_ms(connections, rate)
    name = "peak" if rate is None else "paced"
    script = processes.wrk_script(work / f"{name}.lua", token, bodies, delay)
    return processes.wrk(base, script, connections=connections, seconds=seconds)


def _measure(
    running: processes.Running,
    token: str | None,
    bodies: list[str],
    work: Path,
    *,
    seconds: float,
    half_rate: float | None,
    split: bool = False,
) -> dict[str, float]:
    """Peak, then paced at ``half_rate`` (half of this peak when None). ``split``: also
    where a paced request's time went, by the hub's own metrics (``latency_split``)."""
    _run_load(
        running.base, token, bodies, work, seconds=1, rate=None
    )  # warm up: caches, pools, JIT-free
    cpu_before = running.cpu_s()
    with stopwatch() as watch:
        peak = _run_load(running.base, token, bodies, work, seconds=seconds, rate=None)
    server_cpu = running.cpu_s() - cpu_before
    rps = peak["requests"] / (peak["duration_us"] / 1e6)
    rate = half_rate if half_rate is not None else rps / 2
    before = _scrape(running.base) if split else ""
    paced = _run_load(running.base, token, bodies, work, seconds=seconds, rate=rate)
    shares = latency_split(before, _scrape(running.base)) if split else {}
    return {f"split_{key}": figure for key, figure in shares.items()} | {
        "rps": rps,
        "p50_ms": peak["p50_us"] / 1000,
        "p99_ms": peak["p99_us"] / 1000,
        "p999_ms": peak["p999_us"] / 1000,
        "errors": peak["status_errors"] + peak["timeouts"] + peak["read_errors"],
        "server_cpu_us_per_req": server_cpu / peak["requests"] * 1e6,
        "loadgen_cpu_us_per_req": watch.children_cpu_s / peak["requests"] * 1e6,
        "loadgen_cpu_share": watch.children_cpu_s / watch.wall_s,
        "paced_rate": paced["requests"] / (paced["duration_us"] / 1e6),
        "paced_p50_ms": paced["p50_us"] / 1000,
        "paced_p99_ms": paced["p99_us"] / 1000,
        "paced_errors": paced["status_errors"] + paced["timeouts"] + paced["read_errors"],
        "requests": peak["requests"] + paced["requests"],
    }


def _scrape(base: str) -> str:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


_SPLIT: Mapping[str, tuple[str, Mapping[str, str], float]] = {
    # key: (histogram, labels its samples must have, scale of the mean)
    "request_ms": ("ketenhub_http_request_duration_seconds", {"route": "/v1/exchange"}, 1e3),
    "source_call_ms": ("ketenhub_source_request_duration_seconds", {}, 1e3),
    "append_ms": ("ketenhub_audit_append_duration_seconds", {}, 1e3),
    "write_turn_ms": ("ketenhub_db_write_turn_wait_seconds", {}, 1e3),
    "commit_ms": ("ketenhub_db_commit_duration_seconds", {}, 1e3),
    "group_transactions": ("ketenhub_db_group_transactions", {}, 1.0),
}


def _sums(text: str) -> dict[str, list[float]]:
    """Each ``_SPLIT`` histogram's [sum, count] over the samples with its labels."""
    found = {key: [0.0, 0.0] for key in _SPLIT}
    for family in text_string_to_metric_families(text):
        for key, (histogram, labels, _) in _SPLIT.items():
            if family.name != histogram:
                continue
            for sample in family.samples:
                if labels.items() <= sample.labels.items():
                    if sample.name == f"{histogram}_sum":
                        found[key][0] += sample.value
                    elif sample.name == f"{histogram}_count":
                        found[key][1] += sample.value
    return found


def latency_split(before: str, after: str) -> dict[str, float]:
    """Where the hub's time went between two scrapes of its ``/metrics`` (every
    worker's, summed): the mean of each ``_SPLIT`` histogram over what it observed
    in between, timings in ms.

    ``append_ms`` runs from an audit write being queued to its commit being durable.
    ``write_turn_ms`` (waiting for another process's group) and ``commit_ms`` are parts
    of one group's cycle within it; the rest of it is waiting for the group before,
    the group's own work, and the event loop's turns between.
    """
    start, end = _sums(before), _sums(after)
    split: dict[str, float] = {}
    for key, (_, _, scale) in _SPLIT.items():
        total, count = (b - a for a, b in zip(start[key], end[key], strict=True))
        if count > 0:
            split[key] = total / count * scale
    return split


def participants() -> list[str]:
    """The INSZ of the people the bench asks about: ``PARTICIPANTS`` the source knows."""
    return [p.insz.digits for p in make_population().known_to(SOURCE)[:PARTICIPANTS]]


def prepare(work: Path, ports: Mapping[str, int]) -> tuple[dict[str, str], dict[str, Any]]:
    """A migrated hub database in ``work`` with an OAuth client for the requester.

    Returns the hub's environment and the client as ``ketenhub client create --json``
    made it (``client_id``, ``client_secret``).
    """
    env = processes.hub_env(work, processes.policies_for(ports, work / "policies"))
    processes.ketenhub(env, "db", "upgrade")
    made = json.loads(
        processes.ketenhub(
            env,
            "client",
            "create",
            "--partner",
            REQUESTER,
            "--scope",
            "exchange consent:write",
            "--json",
        )
    )
    return env, made


def ready(
    hub: processes.Running, made: Mapping[str, Any], people: list[str]
) -> tuple[str, dict[str, str]]:
    """A token for the client ``prepare`` made, and every participant's consent (by
    INSZ), once an exchange has been checked to be the full disclosure measured."""
    token = Client(hub.base, made["client_id"], made["client_secret"]).token()
    consents = {insz: _grant(hub.base, token, insz) for insz in people}
    status, answer = _post(hub.base, "/v1/exchange", token, _body(people[0]))
    if status != 200 or sorted(answer["data"]) != sorted(FIELDS):
        raise RuntimeError(f"the bench workload is not a full disclosure: {answer}")
    return token, consents


def request_bodies(people: list[str]) -> list[str]:
    """The workload: one exchange request's JSON body per participant."""
    return [json.dumps(_body(insz)) for insz in people]


def load(
    hub: processes.Running, token: str, bodies: list[str], work: Path, *, seconds: float
) -> dict[str, float]:
    """wrk at full speed against ``hub``, as the exchange section's peak phase."""
    return _run_load(hub.base, token, bodies, work, seconds=seconds, rate=None)


def run(*, quick: bool, workers: int = 2) -> tuple[Figures, Figures]:
    """The ``exchange`` and ``revocation`` sections, from one set of processes."""
    seconds = 2.0 if quick else 10.0
    people = participants()
    with processes.workdir() as tmp, processes.sources([SOURCE], Path(tmp)) as ports:
        work = Path(tmp)
        env, made = prepare(work, ports)
        bodies = request_bodies(people)
        with processes.hub(env, work, workers) as hub:
            token, consents = ready(hub, made, people)
            hub_figures = _measure(
                hub, token, bodies, work, seconds=seconds, half_rate=None, split=True
            )
            revocation = asyncio.run(_revocation(hub.base, token, consents, seconds=seconds / 2))
        verify = json.loads(processes.ketenhub(env, "audit", "verify"))
        with processes.proxy(f"http://127.0.0.1:{ports[SOURCE]}", work, workers) as proxy:
            proxy_figures = _measure(
                proxy, None, bodies, work, seconds=seconds, half_rate=hub_figures["paced_rate"]
            )
    exchange: Figures = {
        "workers": workers,
        "hub_rps": rounded(hub_figures["rps"], 1),
        "proxy_rps": rounded(proxy_figures["rps"], 1),
        "ratio": rounded(hub_figures["rps"] / proxy_figures["rps"]),
    }
    for key in ("p50_ms", "p99_ms", "p999_ms"):
        exchange[f"hub_{key}"] = rounded(hub_figures[key])
        exchange[f"proxy_{key}"] = rounded(proxy_figures[key])
    exchange |= {
        "half_peak_rate": rounded(hub_figures["paced_rate"], 1),
        "hub_half_peak_p50_ms": rounded(hub_figures["paced_p50_ms"]),
        "hub_half_peak_p99_ms": rounded(hub_figures["paced_p99_ms"]),
        "proxy_half_peak_p50_ms": rounded(proxy_figures["paced_p50_ms"]),
        "proxy_half_peak_p99_ms": rounded(proxy_figures["paced_p99_ms"]),
        "hub_added_p50_ms": rounded(hub_figures["paced_p50_ms"] - proxy_figures["paced_p50_ms"]),
        "hub_added_p99_ms": rounded(hub_figures["paced_p99_ms"] - proxy_figures["paced_p99_ms"]),
        # Where the hub's own time went at that rate (its metrics, every worker's):
        **{
            f"hub_half_peak_{key.removeprefix('split_')}": rounded(figure)
            for key, figure in hub_figures.items()
            if key.startswith("split_")
        },
        "hub_errors": hub_figures["errors"] + hub_figures["paced_errors"],
        "proxy_errors": proxy_figures["errors"] + proxy_figures["paced_errors"],
        "hub_cpu_us_per_req": rounded(hub_figures["server_cpu_us_per_req"], 1),
        "proxy_cpu_us_per_req": rounded(proxy_figures["server_cpu_us_per_req"], 1),
        "loadgen_cpu_us_per_req": rounded(hub_figures["loadgen_cpu_us_per_req"], 1),
        "loadgen_cpu_share": rounded(hub_figures["loadgen_cpu_share"]),
        "audit_entries": verify["entries"],
        "audit_verifies": verify["ok"],
        "hub_requests": hub_figures["requests"],
    }
    return exchange, revocation


async def _revocation(
    base: str, token: str, consents: dict[str, str], *, seconds: float
) -> Figures:
    """Revoke consents while exchanges for the same people run; count stale disclosures.

    A disclosure is stale when its request was sent after the revoke of the consent it
    needed had returned: it was decided after the revoke, so the field must be withheld.
    """
    revoked_at: dict[str, float] = {}
    stale = 0
    exchanges = 0
    people = list(consents)
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def exchanging(offset: int) -> None:
            nonlocal stale, exchanges
            i = offset
            while time.monotonic() < deadline:
                insz = people[i % len(people)]
                i += 7
                sent = time.monotonic()
                async with session.post(f"{base}/v1/exchange", json=_body(insz)) as answer:
                    document = await answer.json()
                exchanges += 1
                disclosed = CONSENTED_FIELD in document.get("data", {})
                returned = revoked_at.get(insz)
                if disclosed and returned is not None and sent > returned:
                    stale += 1

        async def revoking() -> None:
            pause = seconds / (len(people) + 1)
            for insz in people:
                if time.monotonic() >= deadline:
                    return
                url = f"{base}/v1/consents/{consents[insz]}/revoke"
                async with session.post(url) as answer:
                    if answer.status != 200:
                        raise RuntimeError(f"revoke answered {answer.status}")
                revoked_at[insz] = time.monotonic()
                await asyncio.sleep(pause)

        await asyncio.gather(revoking(), *(exchanging(k) for k in range(16)))
    return {"revokes": len(revoked_at), "exchanges": exchanges, "stale_disclosures": stale}
