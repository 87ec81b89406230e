"""The bench's latency split reads the hub's own metrics, as the hub names them."""

from __future__ import annotations

import pytest

from bench.exchange import latency_split
from hub.domain.ids import PartnerId
from hub.observability.metrics import PrometheusTelemetry


def test_the_split_is_the_mean_of_what_was_observed_between_two_scrapes() -> None:
    metrics = PrometheusTelemetry([PartnerId("vdab")])
    metrics.audit_appended(9.0)  # before the first scrape: not counted
    metrics.request_served("/v1/exchange", "POST", 200, 9.0)
    before = metrics.render().decode()
    for appended in (0.002, 0.004):
        metrics.audit_appended(appended)
    metrics.write_group_committed(1, 0.0005, 0.001)
    metrics.write_group_committed(3, 0.0015, 0.003)
    metrics.source_called(PartnerId("vdab"), "ok", 0.001)
    metrics.request_served("/v1/exchange", "POST", 200, 0.005)
    metrics.request_served("/v1/exchange", "POST", 403, 0.007)
    metrics.request_served("/v1/catalogue", "GET", 200, 1.0)  # another route: not counted

    split = latency_split(before, metrics.render().decode())

    assert split == pytest.approx(
        {
            "request_ms": 6.0,
            "source_call_ms": 1.0,
            "append_ms": 3.0,
            "write_turn_ms": 1.0,
            "commit_ms": 2.0,
            "group_transactions": 2.0,
        }
    )


def test_a_timing_nothing_observed_is_left_out() -> None:
    metrics = PrometheusTelemetry()
    before = metrics.render().decode()
    metrics.audit_appended(0.002)
    assert latency_split(before, metrics.render().decode()) == pytest.approx({"append_ms": 2.0})
