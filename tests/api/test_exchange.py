"""CONTRACT.md 3: POST /v1/exchange, every status it names, against real simulated sources."""

from __future__ import annotations

import pytest

from tests.api.conftest import Hub
from tests.conftest import connect

OPEN = ["trajectory.status", "trajectory.start_date"]
PROBLEM = "application/problem+json"
NO_AUDIT = {  # a trigger that fails every audit insert, as a full disk would
    "sqlite": [
        (
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    ],
    "postgresql": [
        (
            "CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
        ),
        (
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION no_audit()"
        ),
    ],
}


async def test_open_part_is_disclosed_without_consent_and_audited(hub: Hub) -> None:
    person = hub.person("vdab")
    response = await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "disclosure_id",
        "participant",
        "source",
        "purpose",
        "data",
        "withheld",
        "audit_seq",
    }
    assert body["participant"] == person
    assert body["source"] == "vdab"
    assert body["purpose"] == "trajectory-coordination"
    expected = hub.population.values("vdab", person)
    assert expected is not None
    assert body["data"] == {f: expected[f] for f in OPEN if expected[f] is not None}
    assert body["audit_seq"] == 1
    assert response.headers["x-content-type-options"] == "nosniff"
    assert hub.sources["vdab"].asked == [frozenset(OPEN)]


async def test_the_source_is_asked_only_for_fields_that_may_be_disclosed(hub: Hub) -> None:
    person = hub.person("vdab")
    response = await hub.exchange(
        "gtb",
        participant=person,
        source="vdab",
        fields=["trajectory.status", "icf.assessment", "trajectory.colour"],
    )
    assert response.status_code == 200
    assert response.json()["withheld"] == [
        {"field": "icf.assessment", "reason": "no-consent"},
        {"field": "trajectory.colour", "reason": "unknown-field"},
    ]
    assert hub.sources["vdab"].asked == [frozenset({"trajectory.status"})]


async def test_nothing_disclosed_is_403_with_every_reason_and_the_source_is_not_asked(
    hub: Hub,
) -> None:
    person = hub.person("vdab")
    response = await hub.exchange(
        "penhouder-antwerpen",
        participant=person,
        source="vdab",
        fields=["icf.assessment", "trajectory.plan"],
        role="penhouder",
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["reason"] == "nothing-disclosed"
    assert problem["status"] == 403
    assert {"type", "title", "detail"} <= set(problem)
    assert problem["withheld"] == [
        {"field": "icf.assessment", "reason": "field-not-allowed"},
        {"field": "trajectory.plan", "reason": "field-not-allowed"},
    ]
    assert problem["audit_seq"] == 1
    assert hub.sources["vdab"].asked == []


@pytest.mark.parametrize(
    ("partner", "source", "fields", "purpose", "role", "reason"),
    [
        (
            "levanto",
            "ocmw-gent",
            ["social_assistance.leefloon"],
            "trajectory-coordination",
            "service-provider",
            "no-agreement",
        ),
        (
            "gtb",
            "vdab",
            ["trajectory.status"],
            "marketing",
            "casemanager-work",
            "purpose-not-allowed",
        ),
        (
            "ocmw-gent",
            "vdab",
            ["trajectory.plan"],
            "trajectory-coordination",
            "social-worker",
            "field-not-allowed",
        ),
        (
            "gtb",
            "vdab",
            ["trajectory.plan"],
            "trajectory-coordination",
            "penhouder",
            "role-not-allowed",
        ),
        (
            "gtb",
            "vdab",
            ["icf.assessment"],
            "trajectory-coordination",
            "casemanager-work",
            "no-consent",
        ),
    ],
)
async def test_each_reason_reaches_the_partner(
    hub: Hub, partner: str, source: str, fields: list[str], purpose: str, role: str, reason: str
) -> None:
    person = hub.person("vdab", "ocmw-gent")
    response = await hub.exchange(
        partner, participant=person, source=source, fields=fields, purpose=purpose, role=role
    )
    assert response.status_code == 403
    assert response.json()["withheld"] == [{"field": fields[0], "reason": reason}]


async def test_a_consented_art9_field_is_disclosed_and_the_consent_is_audited(hub: Hub) -> None:
    person = hub.person("vdab")
    granted = await hub.consent("gtb", person, ["icf.assessment"])
    assert granted.status_code == 201
    response = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=["icf.assessment"]
    )
    assert response.status_code == 200
    assert "icf.assessment" in response.json()["data"]
    events = await hub.http.get("/v1/audit/events", headers=hub.auth("gtb"))
    (event,) = events.json()["items"]
    assert event["consents"] == [granted.json()["id"]]
    assert event["agreement"] == "vdab-health-assessment@1"


async def test_a_revoke_counts_for_the_very_next_request(hub: Hub) -> None:
    person = hub.person("vdab")
    consent_id = (await hub.consent("gtb", person, ["icf.assessment"])).json()["id"]
    first = await hub.exchange("gtb", participant=person, source="vdab", fields=["icf.assessment"])
    assert first.status_code == 200
    revoked = await hub.http.post(f"/v1/consents/{consent_id}/revoke", headers=hub.auth("gtb"))
    assert revoked.status_code == 200
    again = await hub.exchange("gtb", participant=person, source="vdab", fields=["icf.assessment"])
    assert again.status_code == 403
    assert again.json()["withheld"] == [{"field": "icf.assessment", "reason": "consent-revoked"}]


async def test_a_field_the_source_has_no_value_for_is_not_available(hub: Hub) -> None:
    person = next(
        p.insz.digits
        for p in hub.population.known_to("vdab")
        if p.records["vdab"].get("trajectory.end_advice") is None
    )
    response = await hub.exchange(
        "gtb",
        participant=person,
        source="vdab",
        fields=["trajectory.status", "trajectory.end_advice"],
    )
    assert response.status_code == 200
    assert response.json()["withheld"] == [
        {"field": "trajectory.end_advice", "reason": "not-available"}
    ]


async def test_an_unknown_participant_is_404_and_recorded_as_denied(hub: Hub) -> None:
    response = await hub.exchange("gtb", participant=hub.stranger(), source="vdab", fields=OPEN)
    assert response.status_code == 404
    assert response.json()["reason"] == "unknown-participant"
    events = (await hub.http.get("/v1/audit/events", headers=hub.auth("hub"))).json()["items"]
    assert events[0]["decision"] == "denied"
    assert events[0]["fields_disclosed"] == []


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"status": 500}, 502),
        ({"status": 302}, 502),
        ({"garbage": True}, 502),
        ({"extra_field": True}, 502),
        ({"wrong_shape": True}, 502),
        ({"delay_s": 2.0}, 504),
    ],
)
async def test_a_failing_source_discloses_nothing_and_is_recorded_as_failed(
    hub: Hub, fault: dict[str, object], status: int
) -> None:
    for name, value in fault.items():
        setattr(hub.simulators.faults["vdab"], name, value)
    response = await hub.exchange("gtb", participant=hub.person("vdab"), source="vdab", fields=OPEN)
    assert response.status_code == status
    problem = response.json()
    assert problem["reason"] == "source-unavailable"
    assert "data" not in problem
    events = (await hub.http.get("/v1/audit/events", headers=hub.auth("hub"))).json()["items"]
    assert events[0]["decision"] == "failed"
    assert events[0]["fields_disclosed"] == []


async def test_when_the_audit_record_cannot_be_written_nothing_is_disclosed(hub: Hub) -> None:
    person = hub.person("vdab")
    with connect(hub.database_url) as raw:
        for statement in NO_AUDIT[hub.container.db.engine.dialect.name]:
            raw.execute(statement)
    response = await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert "data" not in response.json()
    assert person not in response.text


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"participant": "85073003329"}, "invalid-insz"),
        ({"participant": "85023003328"}, "invalid-insz"),
        ({"participant": "８５０７３００３３２８"}, "invalid-insz"),
        ({"source": "gtb"}, "unknown-source"),
        ({"source": "nowhere"}, "unknown-source"),
        ({"fields": []}, "invalid-request"),
        ({"fields": ["trajectory.status", "trajectory.status"]}, "duplicate-field"),
        ({"actor": {"role": "casemanager-work"}}, "invalid-request"),
        ({"purpose": "Trajectory Coordination"}, "invalid-request"),
        ({"admin": True}, "invalid-request"),
        # Client-chosen identifiers are stored and shown to officers: never an INSZ.
        (
            {"actor": {"role": "casemanager-work", "id": "85073003328"}},
            "personal-data-in-identifier",
        ),
        (
            {"actor": {"role": "casemanager-work", "id": "u-85.07.30-033.28"}},
            "personal-data-in-identifier",
        ),
        ({"purpose": "85073003328"}, "personal-data-in-identifier"),
        ({"actor": {"role": "r-85073003328", "id": "u"}}, "personal-data-in-identifier"),
    ],
)
async def test_bad_input_is_422_and_changes_nothing(
    hub: Hub, change: dict[str, object], reason: str
) -> None:
    body = {
        "participant": hub.person("vdab"),
        "source": "vdab",
        "purpose": "trajectory-coordination",
        "fields": OPEN,
        "actor": {"role": "casemanager-work", "id": "u-1"},
        **change,
    }
    response = await hub.http.post("/v1/exchange", json=body, headers=hub.auth("gtb"))
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["reason"] == reason
    assert str(body["participant"]) not in response.text
    assert "85073003328" not in response.text
    verify = (await hub.http.get("/v1/audit/verify", headers=hub.auth("hub"))).json()
    assert verify["entries"] == 0


async def test_malformed_json_is_400_problem(hub: Hub) -> None:
    response = await hub.http.post(
        "/v1/exchange",
        content=b'{"participant": ',
        headers={**hub.auth("gtb"), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "invalid-json"


async def test_bodies_over_one_mebibyte_are_413(hub: Hub) -> None:
    response = await hub.http.post(
        "/v1/exchange",
        content=b'{"x": "' + b"a" * (1024 * 1024) + b'"}',
        headers={**hub.auth("gtb"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["reason"] == "body-too-large"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_an_idempotency_key_replays_the_first_answer_and_is_audited(hub: Hub) -> None:
    person = hub.person("vdab")
    headers = {"Idempotency-Key": "req-1"}
    first = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=OPEN, headers=headers
    )
    second = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=OPEN, headers=headers
    )
    assert second.status_code == first.status_code == 200
    assert second.json() == first.json()
    assert second.headers["idempotency-replayed"] == "true"
    assert len(hub.sources["vdab"].asked) == 1
    events = (await hub.http.get("/v1/audit/events", headers=hub.auth("hub"))).json()["items"]
    assert [e["kind"] for e in events] == ["replay", "exchange"]
    assert events[0]["replay_of"] == first.json()["audit_seq"]


async def test_an_idempotency_key_with_another_body_is_422(hub: Hub) -> None:
    person = hub.person("vdab")
    headers = {"Idempotency-Key": "req-1"}
    await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN, headers=headers)
    other = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=["trajectory.status"], headers=headers
    )
    assert other.status_code == 422
    assert other.json()["reason"] == "idempotency-key-reused"


async def test_keys_are_per_partner(hub: Hub) -> None:
    person = hub.person("vdab")
    headers = {"Idempotency-Key": "shared"}
    await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN, headers=headers)
    other = await hub.exchange(
        "cgg-vagga",
        participant=person,
        source="vdab",
        fields=["trajectory.status"],
        role="casemanager-care",
        headers=headers,
    )
    assert other.status_code == 200
    assert "idempotency-replayed" not in other.headers


async def test_a_replay_relying_on_a_revoked_consent_is_decided_anew(hub: Hub) -> None:
    person = hub.person("vdab")
    consent_id = (await hub.consent("gtb", person, ["icf.assessment"])).json()["id"]
    headers = {"Idempotency-Key": "icf-1"}
    first = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=["icf.assessment"], headers=headers
    )
    assert first.status_code == 200
    await hub.http.post(f"/v1/consents/{consent_id}/revoke", headers=hub.auth("gtb"))
    again = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=["icf.assessment"], headers=headers
    )
    assert again.status_code == 403
    assert again.json()["withheld"] == [{"field": "icf.assessment", "reason": "consent-revoked"}]


async def test_server_errors_are_not_kept_for_replay(hub: Hub) -> None:
    person = hub.person("vdab")
    headers = {"Idempotency-Key": "flaky"}
    hub.simulators.faults["vdab"].status = 503
    failed = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=OPEN, headers=headers
    )
    assert failed.status_code == 502
    hub.simulators.faults["vdab"].clear()
    retried = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=OPEN, headers=headers
    )
    assert retried.status_code == 200


async def test_a_consent_revoked_while_the_source_answers_is_honoured(hub: Hub) -> None:
    """A revoke that returns while the source is still answering wins: the confirm step sees it."""
    person = hub.person("vdab")
    consent_id = (await hub.consent("gtb", person, ["icf.assessment"])).json()["id"]
    source = hub.sources["vdab"]
    inner_fetch = source.inner.fetch

    async def fetch_then_revoke(participant, fields):  # type: ignore[no-untyped-def]
        values = await inner_fetch(participant, fields)
        revoked = await hub.http.post(f"/v1/consents/{consent_id}/revoke", headers=hub.auth("gtb"))
        assert revoked.status_code == 200
        return values

    source.inner.fetch = fetch_then_revoke  # type: ignore[method-assign]
    response = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=["icf.assessment", "trajectory.status"]
    )
    assert response.status_code == 200
    body = response.json()
    assert "icf.assessment" not in body["data"]
    assert {"field": "icf.assessment", "reason": "consent-revoked"} in body["withheld"]


async def test_an_adapter_that_breaks_its_contract_is_a_failed_source_and_audited(hub: Hub) -> None:
    async def broken(participant, fields):  # type: ignore[no-untyped-def]
        raise KeyError("bug")

    hub.sources["vdab"].inner.fetch = broken  # type: ignore[method-assign]
    response = await hub.exchange("gtb", participant=hub.person("vdab"), source="vdab", fields=OPEN)
    assert response.status_code == 502
    assert response.json()["reason"] == "source-unavailable"
    events = (await hub.http.get("/v1/audit/events", headers=hub.auth("hub"))).json()["items"]
    assert events[0]["decision"] == "failed"
