"""Injection in filters and mass assignment (OWASP API3 and API8 2023; ASVS 5 V1, V2, V15).

Every query and path parameter of the list and revoke endpoints gets SQL
meta-characters, LIKE wildcards, quotes, NUL bytes and very long values: the answer
is a 422 problem or a correct (here: empty) result, never a 500 and never more rows
than a correct filter gives. Consent bodies with members the server owns are
refused, and nothing the client chose is stored.
"""

from __future__ import annotations

import pytest

from tests.api.conftest import Hub
from tests.api.snapshot import snapshot

HOSTILE = [
    "%",
    "_",
    "%%",
    "_%",
    "vdab%",
    "%vdab%",
    "v_ab",
    "*",
    "' OR '1'='1",
    "' OR 1=1 --",
    '" OR ""="',
    "vdab'; DROP TABLE audit_events; --",
    "vdab\x00",
    "\x00",
    "vdab\\",
    "\\%",
    "1) OR (1=1",
    "$ne",
    '{"$gt": ""}',
    "NULL",
    "x" * 10_000,
    "é" * 500,
    # Look-alikes of names and values that do occur in the log below.
    "ｇｔｂ",
    "GTB",
    "gtb ",
    "gtb\u200b",
    "vdab\n",
    "trajectory\u2010coordination",
    "ＤＩＳＣＬＯＳＥＤ",
    "Disclosed",
    "disclosed ",
    "２０２６-０６-１５",
]
AUDIT_PARAMETERS = ["participant", "partner", "purpose", "decision", "since", "until", "cursor"]
AUDIT_PARAMETERS += ["limit"]


async def _some_decisions(hub: Hub) -> None:
    for partner, role in [("gtb", "casemanager-work"), ("ocmw-gent", "social-worker")]:
        answer = await hub.exchange(
            partner,
            participant=hub.person("vdab"),
            source="vdab",
            fields=["trajectory.status"],
            role=role,
        )
        assert answer.status_code == 200, answer.text


def _ok_or_422(answer: object) -> list[dict] | None:
    status = answer.status_code  # type: ignore[attr-defined]
    assert status in {200, 422}, (status, answer.text[:300])  # type: ignore[attr-defined]
    if status == 422:
        assert answer.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
        return None
    items: list[dict] = answer.json()["items"]  # type: ignore[attr-defined]
    return items


@pytest.mark.parametrize("parameter", AUDIT_PARAMETERS)
async def test_hostile_audit_filters_are_refused_or_match_nothing(hub: Hub, parameter: str) -> None:
    await _some_decisions(hub)
    everything = await hub.http.get("/v1/audit/events", headers=hub.auth("hub"))
    assert len(everything.json()["items"]) == 2
    before = snapshot(hub.database_url)
    for value in HOSTILE:
        for officer in ["hub", "gtb"]:
            answer = await hub.http.get(
                "/v1/audit/events", params={parameter: value}, headers=hub.auth(officer)
            )
            items = _ok_or_422(answer)
            # No hostile value names a real participant, partner, purpose or moment.
            assert not items, (parameter, value, items)
    assert snapshot(hub.database_url) == before


@pytest.mark.parametrize("parameter", ["participant", "cursor", "limit"])
async def test_hostile_consent_filters_are_refused_or_match_nothing(
    hub: Hub, parameter: str
) -> None:
    person = hub.person("vdab")
    assert (await hub.consent("gtb", person, ["icf.assessment"])).status_code == 201
    assert (await hub.consent("cgg-vagga", person, ["icf.assessment"])).status_code == 201
    before = snapshot(hub.database_url)
    for value in HOSTILE:
        params = {"participant": person, parameter: value}
        for partner in ["gtb", "hub"]:
            items = _ok_or_422(
                await hub.http.get("/v1/consents", params=params, headers=hub.auth(partner))
            )
            assert not items, (parameter, value, items)
    assert snapshot(hub.database_url) == before


async def test_a_like_wildcard_partner_filter_matches_no_more_than_the_exact_one(
    hub: Hub,
) -> None:
    await _some_decisions(hub)
    exact = await hub.http.get("/v1/audit/events?partner=gtb", headers=hub.auth("hub"))
    assert [e["requester"] for e in exact.json()["items"]] == ["gtb"]
    for pattern in ["g_b", "gt%25", "%25", "_tb"]:
        answer = await hub.http.get(f"/v1/audit/events?partner={pattern}", headers=hub.auth("hub"))
        assert _ok_or_422(answer) in (None, [])


@pytest.mark.parametrize(
    "consent_id",
    [
        "%",
        "%25",
        "_",
        "' OR '1'='1",
        "1 OR 1=1",
        "..%2F..%2Fadmin",
        "%00",
        "c%00",
        "*",
        "x" * 65,
        "x" * 5000,
    ],
)
async def test_hostile_consent_ids_revoke_nothing(hub: Hub, consent_id: str) -> None:
    person = hub.person("vdab")
    assert (await hub.consent("gtb", person, ["icf.assessment"])).status_code == 201
    before = snapshot(hub.database_url)
    for partner in ["gtb", "hub"]:
        answer = await hub.http.post(f"/v1/consents/{consent_id}/revoke", headers=hub.auth(partner))
        assert answer.status_code in {404, 422}, (answer.status_code, answer.text[:200])
        assert answer.headers["content-type"] == "application/problem+json"
    assert snapshot(hub.database_url) == before


SERVER_OWNED = {
    "status": "revoked",
    "id": "c-chosen-by-the-client",
    "granted_at": "2020-01-01T00:00:00Z",
    "revoked_at": "2020-01-02T00:00:00Z",
    "receipt": "eyJhbGciOiJub25lIn0.e30.",
    "participant_pseudonym": "0" * 64,
    "requester": "hub",
    "partner": "hub",
    "__proto__": {"admin": True},
    "constructor": {"prototype": {"admin": True}},
}


@pytest.mark.parametrize("member", sorted(SERVER_OWNED))
async def test_server_owned_consent_members_are_refused_and_nothing_is_stored(
    hub: Hub, member: str
) -> None:
    """README and schemas: bodies are closed (pydantic extra="forbid"): 422, not ignored."""
    before = snapshot(hub.database_url)
    body = {
        "participant": hub.person("vdab"),
        "recipient": "gtb",
        "purpose": "trajectory-coordination",
        "fields": ["icf.assessment"],
        member: SERVER_OWNED[member],
    }
    answer = await hub.http.post("/v1/consents", json=body, headers=hub.auth("gtb"))
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["reason"] == "invalid-request"
    # The unknown member's name is not echoed: it is the client's input.
    assert problem["errors"] == [
        {"location": ["body", "<unknown member>"], "message": "Extra inputs are not permitted"}
    ]
    assert snapshot(hub.database_url) == before


async def test_a_consent_for_another_partner_is_refused_and_nothing_is_stored(
    hub: Hub,
) -> None:
    before = snapshot(hub.database_url)
    answer = await hub.consent("gtb", hub.person("vdab"), ["icf.assessment"], recipient="cgg-vagga")
    assert answer.status_code == 403
    assert snapshot(hub.database_url) == before


async def test_a_stored_consent_has_what_the_server_chose(hub: Hub) -> None:
    person = hub.person("vdab")
    answer = await hub.consent("gtb", person, ["icf.assessment"], valid_until="2026-12-31")
    assert answer.status_code == 201
    body = answer.json()
    assert body["status"] == "active"
    assert body["revoked_at"] is None
    assert body["granted_at"] == "2026-06-15T10:00:00Z"  # the hub's clock, not the client's
    assert body["recipient"] == "gtb"


@pytest.mark.parametrize(
    "member",
    [
        ("requester", "hub"),
        ("partner", "hub"),
        ("audit_seq", 1),
        ("consent_id", "c-1"),
        ("data", {"trajectory.status": "x"}),
    ],
    ids=lambda m: m[0],
)
async def test_server_owned_exchange_members_are_refused(
    hub: Hub, member: tuple[str, object]
) -> None:
    before = snapshot(hub.database_url)
    body = {
        "participant": hub.person("vdab"),
        "source": "vdab",
        "purpose": "trajectory-coordination",
        "fields": ["trajectory.status"],
        "actor": {"role": "casemanager-work", "id": "u-1"},
        member[0]: member[1],
    }
    answer = await hub.http.post("/v1/exchange", json=body, headers=hub.auth("ocmw-gent"))
    assert answer.status_code == 422
    assert snapshot(hub.database_url) == before
    assert hub.sources["vdab"].asked == []


@pytest.mark.parametrize("consent_id", ["c%00", "%00", "c%0A", "c%7F", "c%E2%80%8B", "%C3%A9"])
async def test_a_consent_id_with_control_or_foreign_characters_is_422_before_the_database(
    hub: Hub, consent_id: str
) -> None:
    """PostgreSQL refuses a NUL in a text comparison: that was a 503 storage-unavailable."""
    answer = await hub.http.post(f"/v1/consents/{consent_id}/revoke", headers=hub.auth("gtb"))
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["location"] == ["path", "consent_id"]
