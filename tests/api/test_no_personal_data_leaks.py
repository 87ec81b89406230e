"""STYLE.md habit 9 and CONTRACT.md 4: no INSZ and no disclosed value in logs or storage."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from hub.logging import configure_logging, redact_text
from tests.api.conftest import Hub
from tests.conftest import stored_bytes


@pytest.fixture
def log_lines() -> io.StringIO:
    buffer = io.StringIO()
    configure_logging("debug", json=True, stream=buffer)
    yield buffer
    structlog.reset_defaults()


async def test_an_exchange_logs_events_without_insz_or_values(
    hub: Hub, log_lines: io.StringIO
) -> None:
    person = hub.person("vdab", "ocmw-gent")
    await hub.consent("gtb", person, ["icf.assessment"], evidence=f"signed by {person}")
    disclosed = await hub.exchange(
        "gtb",
        participant=person,
        source="vdab",
        fields=["trajectory.status", "icf.assessment", "trajectory.plan"],
    )
    assert disclosed.status_code == 200
    await hub.exchange(
        "gtb", participant=hub.stranger(), source="vdab", fields=["trajectory.status"]
    )
    hub.simulators.faults["ocmw-gent"].status = 500
    await hub.exchange(
        "gtb", participant=person, source="ocmw-gent", fields=["social_assistance.leefloon"]
    )
    output = log_lines.getvalue()
    events = [json.loads(line) for line in output.splitlines()]
    assert {"consent_granted", "exchange_decided"} <= {e["event"] for e in events}
    decisions = [e["decision"] for e in events if e["event"] == "exchange_decided"]
    assert decisions == ["disclosed", "denied", "failed"]
    assert person not in output
    assert hub.stranger() not in output
    for value in disclosed.json()["data"].values():
        assert json.dumps(value) not in output


async def test_no_disclosed_value_is_stored_in_clear(hub: Hub) -> None:
    person = hub.person("vdab")
    response = await hub.exchange(
        "gtb",
        participant=person,
        source="vdab",
        fields=["trajectory.plan"],
        headers={"Idempotency-Key": "kept"},
    )
    plan = response.json()["data"]["trajectory.plan"]
    await hub.container.db.dispose()
    raw = stored_bytes(hub.database_url)
    for goal in plan["goals"]:
        assert goal.encode() not in raw


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("participant 85073003328 asked", "participant <redacted-insz> asked"),
        ("85.07.30-033.28", "<redacted-insz>"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer <redacted>"),
        ("token eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln", "token <redacted-token>"),
        ("seq 123456789012 is a long number", "seq 123456789012 is a long number"),
    ],
)
def test_the_redaction_processor_removes_insz_shapes_and_tokens(text: str, expected: str) -> None:
    assert redact_text(text) == expected
