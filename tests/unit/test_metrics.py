"""The Prometheus side of the ``Telemetry`` port (``hub.observability.metrics``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from hub.domain.exchange import Outcome
from hub.domain.ids import PartnerId
from hub.observability.metrics import PrometheusTelemetry, prepare_multiprocess_dir

VDAB = PartnerId("vdab")


def samples(metrics: PrometheusTelemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def test_each_field_outcome_is_counted_once_and_each_decision_once() -> None:
    metrics = PrometheusTelemetry([VDAB])
    fields = ["disclosed", "no-consent", "disclosed", "unknown-field"]
    metrics.exchange_decided(VDAB, Outcome.DISCLOSED, None, fields)
    metrics.exchange_decided(VDAB, Outcome.DENIED, "nothing-disclosed", ["no-agreement"])
    found = samples(metrics)
    field = "ketenhub_exchange_fields_total"
    assert found[field, (("outcome", "disclosed"), ("source", "vdab"))] == 2
    assert found[field, (("outcome", "no-consent"), ("source", "vdab"))] == 1
    assert found[field, (("outcome", "unknown-field"), ("source", "vdab"))] == 1
    assert found[field, (("outcome", "no-agreement"), ("source", "vdab"))] == 1
    decision = "ketenhub_exchange_decisions_total"
    assert found[decision, (("decision", "disclosed"), ("reason", "none"), ("source", "vdab"))] == 1
    assert (
        found[
            decision,
            (("decision", "denied"), ("reason", "nothing-disclosed"), ("source", "vdab")),
        ]
        == 1
    )
    # Present at zero from the start, so that a rate sees the first increment.
    assert found[decision, (("decision", "failed"), ("reason", "none"), ("source", "vdab"))] == 0


def test_an_error_code_outside_the_known_ones_is_counted_as_other() -> None:
    """The token endpoint's ``error`` passes through authlib: a label must stay bounded."""
    metrics = PrometheusTelemetry()
    metrics.token_refused("token", "invalid_client")
    metrics.token_refused("token", "85073003328")
    metrics.request_served("/v1/exchange", "BREW", 405, 0.001)
    found = samples(metrics)
    errors = "ketenhub_token_errors_total"
    assert found[errors, (("endpoint", "token"), ("error", "invalid_client"))] == 1
    assert found[errors, (("endpoint", "token"), ("error", "other"))] == 1
    requests = "ketenhub_http_requests_total"
    assert found[requests, (("method", "other"), ("route", "/v1/exchange"), ("status", "405"))] == 1
    assert b"85073003328" not in metrics.render()


def test_hubs_in_one_process_count_apart() -> None:
    first, second = PrometheusTelemetry(), PrometheusTelemetry()
    first.exchange_replayed(VDAB)
    assert samples(first)["ketenhub_exchange_replays_total", (("source", "vdab"),)] == 1
    assert ("ketenhub_exchange_replays_total", (("source", "vdab"),)) not in samples(second)


def test_a_serve_gets_a_fresh_directory_and_removes_those_of_killed_serves(
    tmp_path: Path,
) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # a process id that no process has now
    killed = tmp_path / f"ketenhub-metrics-{ended.pid}-abcd"
    killed.mkdir()
    (killed / "counter_1.db").write_bytes(b"old samples")
    running = tmp_path / f"ketenhub-metrics-{os.getppid()}-efgh"
    running.mkdir()
    unrelated = tmp_path / "ketenhub-metrics-notes"
    unrelated.mkdir()

    made = prepare_multiprocess_dir(str(tmp_path))

    assert made.is_dir()
    assert list(made.iterdir()) == []
    assert made.name.startswith(f"ketenhub-metrics-{os.getpid()}-")
    assert not killed.exists()
    assert running.exists()  # a serve that still runs keeps its samples
    assert unrelated.exists()
