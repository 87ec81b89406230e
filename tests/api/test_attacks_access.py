"""Attacks on who may see what (OWASP API1 and API5 2023: object and function level).

One partner reaching data under another partner's agreement, asking for fields no
agreement gives it, spoofing a role or a purpose, leaning on an expired or not yet
valid agreement version, and reaching consents or audit events of others. There is
no participant-facing API yet: the nearest is a partner reaching the consents and
events of participants that are another partner's business.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.api.conftest import Hub
from tests.api.snapshot import snapshot

ICF = ["icf.assessment"]


async def _events(hub: Hub, partner: str = "hub", query: str = "") -> list[dict]:
    answer = await hub.http.get(f"/v1/audit/events?{query}", headers=hub.auth(partner))
    assert answer.status_code == 200, answer.text
    items: list[dict] = answer.json()["items"]
    return items


async def test_a_partner_cannot_read_under_an_agreement_that_names_other_partners(
    hub: Hub,
) -> None:
    # in-gent-integration-status names vdab and ocmw-gent; gtb is in none of in-gent's.
    person = hub.person("in-gent")
    answer = await hub.exchange(
        "gtb",
        participant=person,
        source="in-gent",
        purpose="integration-coordination",
        role="social-worker",
        fields=["integration.nt2_level"],
    )
    assert answer.status_code == 403
    assert answer.json()["withheld"] == [
        {"field": "integration.nt2_level", "reason": "no-agreement"}
    ]
    assert "data" not in answer.json()
    assert hub.sources["in-gent"].asked == []
    [event] = await _events(hub)
    assert (event["requester"], event["decision"], event["fields_disclosed"]) == (
        "gtb",
        "denied",
        [],
    )


async def test_the_hub_operator_cannot_read_participant_data(hub: Hub) -> None:
    """The operator sees the whole audit log, and for that reason no data at all."""
    answer = await hub.exchange(
        "hub", participant=hub.person("vdab"), source="vdab", fields=["trajectory.status"]
    )
    assert answer.status_code == 403
    assert answer.json()["withheld"][0]["reason"] == "no-agreement"
    assert hub.sources["vdab"].asked == []


async def test_fields_outside_the_agreement_are_never_asked_of_the_source(hub: Hub) -> None:
    # ocmw-gent may have the open part of the VDAB dossier, not the confidential part,
    # and no health data.
    person = hub.person("vdab")
    answer = await hub.exchange(
        "ocmw-gent",
        participant=person,
        source="vdab",
        role="social-worker",
        fields=["trajectory.status", "trajectory.plan", "icf.assessment", "trajectory.secret"],
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body["data"]) == {"trajectory.status"}
    assert {w["field"]: w["reason"] for w in body["withheld"]} == {
        "trajectory.plan": "field-not-allowed",
        "icf.assessment": "field-not-allowed",
        "trajectory.secret": "unknown-field",
    }
    assert hub.sources["vdab"].asked == [frozenset({"trajectory.status"})]


@pytest.mark.parametrize(
    "role",
    [
        "vdab-mediator",  # a role other agreements of the network name
        "penhouder",  # a role of the open part, not of the confidential part
        "hub",
        "admin",
        "casemanager-work-x",
    ],
)
async def test_a_spoofed_role_does_not_open_the_confidential_part(hub: Hub, role: str) -> None:
    answer = await hub.exchange(
        "gtb",
        participant=hub.person("vdab"),
        source="vdab",
        role=role,
        fields=["trajectory.plan"],
    )
    assert answer.status_code == 403
    assert answer.json()["withheld"] == [{"field": "trajectory.plan", "reason": "role-not-allowed"}]
    assert hub.sources["vdab"].asked == []


@pytest.mark.parametrize(
    ("partner", "source", "purpose", "fields", "role"),
    [
        # vdab is a recipient of in-gent's data, for integration-coordination only.
        (
            "vdab",
            "in-gent",
            "trajectory-coordination",
            ["integration.nt2_level"],
            "vdab-mediator",
        ),
        # gtb reads VDAB's open part for trajectory-coordination; another purpose of the
        # network does not carry it.
        ("gtb", "vdab", "integration-coordination", ["trajectory.status"], "casemanager-work"),
    ],
)
async def test_the_purpose_of_another_agreement_opens_nothing(
    hub: Hub, partner: str, source: str, purpose: str, fields: list[str], role: str
) -> None:
    answer = await hub.exchange(
        partner,
        participant=hub.person(source),
        source=source,
        purpose=purpose,
        fields=fields,
        role=role,
    )
    assert answer.status_code == 403
    assert answer.json()["withheld"] == [{"field": fields[0], "reason": "purpose-not-allowed"}]
    assert hub.sources[source].asked == []


async def test_an_expired_agreement_opens_nothing_even_with_a_fresh_token(hub: Hub) -> None:
    hub.travel(datetime(2028, 1, 2, 9, 0, tzinfo=UTC))
    answer = await hub.exchange(
        "gtb", participant=hub.person("vdab"), source="vdab", fields=["trajectory.status"]
    )
    assert answer.status_code == 403
    assert answer.json()["withheld"][0]["reason"] == "agreement-expired"
    assert hub.sources["vdab"].asked == []


async def test_a_version_not_yet_in_force_does_not_count(hub: Hub) -> None:
    """Levanto is a recipient from version 2 of the open part on, valid from 1 April."""
    person = hub.person("vdab")
    hub.travel(datetime(2026, 3, 31, 21, 59, tzinfo=UTC))  # 23:59 in Brussels
    before = await hub.exchange(
        "levanto",
        participant=person,
        source="vdab",
        fields=["trajectory.status"],
        role="service-provider",
    )
    assert before.status_code == 403
    # Version 1 is in force and does not name Levanto (hub.policy.decide, point 4).
    assert before.json()["withheld"][0]["reason"] == "field-not-allowed"
    assert hub.sources["vdab"].asked == []
    hub.travel(datetime(2026, 3, 31, 22, 0, tzinfo=UTC))  # midnight in Brussels
    after = await hub.exchange(
        "levanto",
        participant=person,
        source="vdab",
        fields=["trajectory.status"],
        role="service-provider",
    )
    assert after.status_code == 200, after.text
    [event, _] = await _events(hub)
    assert event["agreement"] == "vdab-trajectory-open@2"


async def test_a_consent_given_to_another_partner_opens_nothing(hub: Hub) -> None:
    person = hub.person("vdab")
    assert (await hub.consent("cgg-vagga", person, ICF)).status_code == 201
    answer = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=ICF, role="casemanager-work"
    )
    assert answer.status_code == 403
    assert answer.json()["withheld"] == [{"field": "icf.assessment", "reason": "no-consent"}]
    assert hub.sources["vdab"].asked == []


async def test_a_consent_for_another_purpose_opens_nothing(hub: Hub) -> None:
    person = hub.person("vdab")
    given = await hub.consent("gtb", person, ICF, purpose="integration-coordination")
    assert given.status_code == 201
    answer = await hub.exchange("gtb", participant=person, source="vdab", fields=ICF)
    assert answer.status_code == 403
    assert answer.json()["withheld"][0]["reason"] == "no-consent"


async def test_a_partner_cannot_list_or_revoke_consents_given_to_another(hub: Hub) -> None:
    person = hub.person("vdab")
    consent_id = (await hub.consent("gtb", person, ICF)).json()["id"]
    listed = await hub.http.get(
        "/v1/consents", params={"participant": person}, headers=hub.auth("cgg-vagga")
    )
    assert listed.status_code == 200
    assert listed.json() == {"items": [], "next_cursor": None}
    before = snapshot(hub.database_url)
    foreign = await hub.http.post(
        f"/v1/consents/{consent_id}/revoke", headers=hub.auth("cgg-vagga")
    )
    unknown = await hub.http.post(
        "/v1/consents/c-0000000000000000/revoke", headers=hub.auth("cgg-vagga")
    )
    # Nothing tells a stranger's consent id from one that does not exist.
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json() == unknown.json()
    assert foreign.headers.keys() == unknown.headers.keys()
    assert foreign.headers["content-length"] == unknown.headers["content-length"]
    assert snapshot(hub.database_url) == before
    still = await hub.http.get(
        "/v1/consents", params={"participant": person}, headers=hub.auth("gtb")
    )
    assert [c["status"] for c in still.json()["items"]] == ["active"]


async def test_an_officer_cannot_find_a_participant_in_events_of_other_partners(
    hub: Hub,
) -> None:
    # vdab reads in-gent's data about this person; gtb has no part in it.
    person = hub.person("in-gent")
    answer = await hub.exchange(
        "vdab",
        participant=person,
        source="in-gent",
        purpose="integration-coordination",
        role="vdab-mediator",
        fields=["integration.nt2_level"],
    )
    assert answer.status_code in {200, 403}
    assert len(await _events(hub, "hub", f"participant={person}")) == 1
    assert await _events(hub, "gtb", f"participant={person}") == []
    assert await _events(hub, "gtb", "partner=in-gent") == []
    assert await _events(hub, "gtb", "partner=vdab") == []
    assert await _events(hub, "gtb") == []


async def test_an_officer_token_cannot_write_anything(hub: Hub) -> None:
    person = hub.person("vdab")
    consent_id = (await hub.consent("gtb", person, ICF)).json()["id"]
    officer = hub.auth("gtb", "audit:read")
    before = snapshot(hub.database_url)
    answers = [
        await hub.http.post(
            "/v1/consents",
            json={
                "participant": person,
                "recipient": "gtb",
                "purpose": "trajectory-coordination",
                "fields": ICF,
            },
            headers=officer,
        ),
        await hub.http.post(f"/v1/consents/{consent_id}/revoke", headers=officer),
        await hub.http.post(
            "/v1/exchange",
            json={
                "participant": person,
                "source": "vdab",
                "purpose": "trajectory-coordination",
                "fields": ["trajectory.status"],
                "actor": {"role": "casemanager-work", "id": "u-1"},
            },
            headers=officer,
        ),
        await hub.http.get("/v1/consents", params={"participant": person}, headers=officer),
    ]
    for answer in answers:
        assert answer.status_code == 403, answer.text
        assert answer.json()["reason"] == "insufficient-scope"
        assert "insufficient_scope" in answer.headers["www-authenticate"]
    assert snapshot(hub.database_url) == before
    assert hub.sources["vdab"].asked == []
