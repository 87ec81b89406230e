"""``ketenhub serve --workers N``: ``/metrics`` counts the requests of every worker.

The hub runs as its own process with two uvicorn workers (simulated sources, SQLite).
Requests are sent over new connections, so that the kernel spreads them over the
workers; every scrape, whichever worker answers it, must then show the exact totals.
The workers' sample files are read one by one to prove that both served, and the
directory they share is fresh for this serve and gone after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import Hub, World, bearer
from tests.e2e.harness import world as make_world

pytestmark = pytest.mark.e2e

WORKERS = 2
CATALOGUE_CALLS = 120
EXCHANGES = 30


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path) as made:
        yield made


def requests_counted(text: str, route: str, status: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "ketenhub_http_requests_total"
                and sample.labels.get("route") == route
                and sample.labels.get("status") == status
            ):
                return sample.value
    return 0.0


def decisions_counted(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ketenhub_exchange_decisions_total"
    )


def catalogue_calls_per_process(directory: Path) -> dict[str, float]:
    """pid -> /v1/catalogue answers, from each worker's own sample file."""
    counted: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = path.stem.removeprefix("counter_")
        for key, value, *_position in MmapedDict.read_all_values_from_file(str(path)):
            _metric, name, labels, _help = json.loads(key)
            if name == "ketenhub_http_requests_total" and labels.get("route") == "/v1/catalogue":
                counted[pid] = counted.get(pid, 0.0) + value
    return counted


def test_every_scrape_sums_the_requests_of_every_worker(world: World, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    client = world.client("gtb", "exchange")
    hub = Hub.start({**world.env, "TMPDIR": str(scratch)}, tmp_path / "hub.log", workers=WORKERS)
    try:
        (directory,) = scratch.glob("ketenhub-metrics-*")
        with httpx.Client(base_url=hub.base, timeout=10) as http:
            headers = bearer(http, client)
        person = world.population.known_to("vdab")[0].insz.digits
        for _ in range(CATALOGUE_CALLS):
            # A new connection each time: the workers accept in turn.
            with httpx.Client(base_url=hub.base, timeout=10) as http:
                assert http.get("/v1/catalogue", headers=headers).status_code == 200
        for _ in range(EXCHANGES):
            with httpx.Client(base_url=hub.base, timeout=10) as http:
                answer = http.post(
                    "/v1/exchange",
                    headers=headers,
                    json={
                        "participant": person,
                        "source": "vdab",
                        "purpose": "trajectory-coordination",
                        "fields": ["trajectory.status"],
                        "actor": {"role": "casemanager-work", "id": "u-1"},
                    },
                )
                assert answer.status_code in (200, 403), answer.text
        per_worker = catalogue_calls_per_process(directory)
        assert len([pid for pid, calls in per_worker.items() if calls > 0]) == WORKERS, per_worker
        assert sum(per_worker.values()) == CATALOGUE_CALLS
        for _ in range(6):
            with httpx.Client(base_url=hub.base, timeout=10) as http:
                scraped = http.get("/metrics")
            assert scraped.status_code == 200
            assert requests_counted(scraped.text, "/v1/catalogue", "200") == CATALOGUE_CALLS
            assert (
                requests_counted(scraped.text, "/v1/exchange", "200")
                + requests_counted(scraped.text, "/v1/exchange", "403")
                == EXCHANGES
            )
            assert decisions_counted(scraped.text) == EXCHANGES
            assert person not in scraped.text
    finally:
        hub.stop()
    assert list(scratch.glob("ketenhub-metrics-*")) == []  # removed when the serve ends
