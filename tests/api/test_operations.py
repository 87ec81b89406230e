"""Operations (issue #5): ``/healthz``, ``/readyz``, ``/metrics`` and the correlation id.

The real app over the API tests' hub (``hub`` fixture: real SQLite file, real
simulated sources over HTTP).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from hub.domain.errors import ServiceUnavailableError
from hub.logging import INSZ_IN_TEXT, configure_logging
from tests.api.conftest import Hub

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


class UnusableSigningKey:
    """The hub's keys, except that the signing key cannot sign (a lost or unreadable key)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        raise ServiceUnavailableError("keys-unavailable", "The signing key cannot be used.")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(hub: Hub) -> tuple[str, Samples]:
    response = await hub.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("debug", json=True, stream=buffer)
    yield buffer
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "ketenhub"]:
        root.removeHandler(handler)


async def test_healthz_answers_without_the_database(hub: Hub) -> None:
    await hub.container.db.dispose()
    response = await hub.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ok_when_database_policy_and_signing_key_are(hub: Hub) -> None:
    response = await hub.http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "policy": "ok", "signing-key": "ok"},
    }


async def test_readyz_names_an_unreachable_database_and_says_no_more(hub: Hub) -> None:
    await hub.container.db.dispose()
    response = await hub.http.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["reason"] == "not-ready"
    assert problem["checks"] == {"database": "failed", "policy": "ok", "signing-key": "ok"}
    assert "database" in problem["detail"]
    assert not re.search(r"(?i)select|sqlite|/tmp|traceback", response.text)


async def test_readyz_names_a_signing_key_that_cannot_sign(hub: Hub) -> None:
    hub.container.keys = UnusableSigningKey(hub.container.keys)  # type: ignore[assignment]
    response = await hub.http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "ok",
        "policy": "ok",
        "signing-key": "failed",
    }


async def test_probes_are_not_audited_not_authenticated_and_not_rate_limited(hub: Hub) -> None:
    before = hub.container.db
    head = await before.read(lambda uow: uow.audit.head())
    for _ in range(50):
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await hub.http.get(path)).status_code == 200
    assert await before.read(lambda uow: uow.audit.head()) == head


async def test_metrics_count_requests_decisions_sources_audit_and_token_errors(
    hub: Hub,
) -> None:
    person = hub.person("vdab", "ocmw-gent")
    assert (await hub.consent("gtb", person, ["icf.assessment"])).status_code == 201
    disclosed = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=["trajectory.status", "icf.assessment"]
    )
    assert disclosed.status_code == 200
    denied = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=["trajectory.colour"]
    )
    assert denied.status_code == 403
    unknown = await hub.exchange(
        "gtb", participant=hub.stranger(), source="vdab", fields=["trajectory.status"]
    )
    assert unknown.status_code == 404
    hub.simulators.faults["ocmw-gent"].status = 500
    failed = await hub.exchange(
        "gtb", participant=person, source="ocmw-gent", fields=["social_assistance.leefloon"]
    )
    assert failed.status_code == 502
    granted = await hub.consent("gtb", person, ["trajectory.plan"])
    consent_id = granted.json()["id"]
    revoked = await hub.http.post(f"/v1/consents/{consent_id}/revoke", headers=hub.auth("gtb"))
    assert revoked.status_code == 200
    forged = await hub.http.get("/v1/catalogue", headers={"Authorization": "Bearer eyJx.eyJ.x"})
    assert forged.status_code == 401
    refused = await hub.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
    )
    assert refused.status_code in (400, 401)

    text, samples = await scrape(hub)
    decisions = "ketenhub_exchange_decisions_total"
    assert value(samples, decisions, source="vdab", decision="disclosed", reason="none") == 1
    assert (
        value(samples, decisions, source="vdab", decision="denied", reason="nothing-disclosed") == 1
    )
    assert (
        value(samples, decisions, source="vdab", decision="denied", reason="unknown-participant")
        == 1
    )
    assert (
        value(
            samples, decisions, source="ocmw-gent", decision="failed", reason="source-unavailable"
        )
        == 1
    )
    fields = "ketenhub_exchange_fields_total"
    assert value(samples, fields, source="vdab", outcome="disclosed") == 2
    assert value(samples, fields, source="vdab", outcome="unknown-field") == 1
    assert value(samples, fields, source="vdab", outcome="unknown-participant") == 1
    assert value(samples, fields, source="ocmw-gent", outcome="source-unavailable") == 1

    calls = "ketenhub_source_request_duration_seconds_count"
    assert value(samples, calls, source="vdab", outcome="ok") == 1
    assert value(samples, calls, source="vdab", outcome="unknown-participant") == 1
    assert value(samples, calls, source="ocmw-gent", outcome="failed") == 1
    # Every audited exchange was timed from queued to durable, and nothing else.
    assert value(samples, "ketenhub_audit_append_duration_seconds_count") == 4
    assert value(samples, "ketenhub_audit_append_duration_seconds_sum") > 0

    errors = "ketenhub_token_errors_total"
    assert value(samples, errors, endpoint="bearer", error="invalid_token") == 1
    assert value(samples, errors, endpoint="token", error="invalid_client") == 1

    requests = "ketenhub_http_requests_total"
    assert value(samples, requests, route="/v1/exchange", method="POST", status="200") == 1
    assert value(samples, requests, route="/v1/exchange", method="POST", status="502") == 1
    revoke_route = "/v1/consents/{consent_id}/revoke"
    assert value(samples, requests, route=revoke_route, method="POST", status="200") == 1
    # Labels hold templates and names, never an id or a number a client sent.
    assert consent_id not in text
    assert INSZ_IN_TEXT.search(text) is None
    assert person not in text
    assert "nobody" not in text


async def test_metrics_time_every_group_commit(hub: Hub) -> None:
    _, before = await scrape(hub)
    person = hub.person("vdab")
    assert (await hub.consent("gtb", person, ["icf.assessment"])).status_code == 201
    for _ in range(3):
        answer = await hub.exchange(
            "gtb", participant=person, source="vdab", fields=["icf.assessment"]
        )
        assert answer.status_code == 200
    _, after = await scrape(hub)

    def grown(name: str) -> float:
        return value(after, name) - value(before, name)

    # Four write transactions (the grant, three exchanges), each in a durable group.
    assert grown("ketenhub_db_group_transactions_sum") == 4
    groups = grown("ketenhub_db_group_transactions_count")
    assert 1 <= groups <= 4
    assert grown("ketenhub_db_write_turn_wait_seconds_count") == groups
    assert grown("ketenhub_db_commit_duration_seconds_count") == groups
    assert grown("ketenhub_db_commit_duration_seconds_sum") > 0


async def test_metrics_count_calls_without_a_token_or_without_the_scope(hub: Hub) -> None:
    assert (await hub.http.get("/v1/catalogue")).status_code == 401
    narrow = await hub.http.get("/v1/audit/events", headers=hub.auth("gtb", "exchange"))
    assert narrow.status_code == 403

    _, samples = await scrape(hub)
    errors = "ketenhub_token_errors_total"
    assert value(samples, errors, endpoint="bearer", error="invalid_request") == 1
    assert value(samples, errors, endpoint="bearer", error="insufficient_scope") == 1


async def test_an_unknown_path_is_counted_without_its_path(hub: Hub) -> None:
    person = hub.person("vdab")
    response = await hub.http.get(f"/participants/{person}")
    assert response.status_code == 404
    text, samples = await scrape(hub)
    assert (
        value(
            samples, "ketenhub_http_requests_total", route="unmatched", method="GET", status="404"
        )
        == 1
    )
    assert person not in text


async def test_the_correlation_id_is_the_traceparent_trace_id_in_header_and_logs(
    hub: Hub, log_lines: io.StringIO
) -> None:
    person = hub.person("vdab")
    response = await hub.exchange(
        "gtb",
        participant=person,
        source="vdab",
        fields=["trajectory.status"],
        headers={"traceparent": TRACEPARENT},
    )
    assert response.status_code == 200
    assert response.headers["x-correlation-id"] == TRACE
    events = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    decided = [e for e in events if e["event"] == "exchange_decided"]
    assert len(decided) == 1
    assert decided[0]["correlation_id"] == TRACE


@pytest.mark.parametrize(
    "traceparent",
    [None, "00-nonsense", f"ff-{TRACE}-00f067aa0ba902b7-01", TRACEPARENT.upper()],
    ids=["absent", "garbled", "version-ff", "uppercase"],
)
async def test_without_a_valid_traceparent_each_request_gets_a_new_id(
    hub: Hub, traceparent: str | None
) -> None:
    headers = {} if traceparent is None else {"traceparent": traceparent}
    made = {
        (await hub.http.get("/healthz", headers=headers)).headers["x-correlation-id"]
        for _ in range(3)
    }
    assert len(made) == 3
    assert TRACE not in made
    for correlation_id in made:
        assert re.fullmatch(r"[0-9a-f]{32}", correlation_id)


async def test_every_answer_carries_a_correlation_id_errors_included(hub: Hub) -> None:
    answers = [
        await hub.http.get("/v1/catalogue"),  # 401
        await hub.http.post("/v1/exchange", content=b"x" * (2 * 1024 * 1024)),  # 413
        await hub.http.get("/nowhere"),  # 404
        await hub.http.get("/.well-known/jwks.json", headers={"traceparent": TRACEPARENT}),
    ]
    assert [a.status_code for a in answers] == [401, 413, 404, 200]
    assert all(re.fullmatch(r"[0-9a-f]{32}", a.headers["x-correlation-id"]) for a in answers)
    assert answers[-1].headers["x-correlation-id"] == TRACE
