"""Bad inputs and races found in review: each answers a clear problem and changes nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import Hub
from tests.conftest import connect, stored_bytes

OPEN = ["trajectory.status"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"fields": {"trajectory.status": NaN}}',
        b'{"fields": {"trajectory.status": 1e999}}',
        b'{"fields": {"trajectory.status": "\\ud800"}}',
    ],
)
async def test_a_value_that_cannot_be_sent_on_is_a_failed_source_not_a_disclosure(
    hub: Hub, body: bytes
) -> None:
    async def answer(participant, fields):  # type: ignore[no-untyped-def]
        from adapters.rest import _parse  # noqa: PLC0415 - the adapter's own parsing

        return _parse(body, fields)

    hub.sources["vdab"].inner.fetch = answer  # type: ignore[method-assign]
    response = await hub.exchange(
        "gtb",
        participant=hub.person("vdab"),
        source="vdab",
        fields=OPEN,
        headers={"Idempotency-Key": "nan"},
    )
    assert response.status_code == 502
    events = (await hub.http.get("/v1/audit/events", headers=hub.auth("hub"))).json()["items"]
    assert [e["decision"] for e in events] == ["failed"]


async def test_concurrent_requests_with_one_key_disclose_once(hub: Hub) -> None:
    person = hub.person("vdab")
    headers = {"Idempotency-Key": "same"}
    answers = await asyncio.gather(
        *(
            hub.exchange("gtb", participant=person, source="vdab", fields=OPEN, headers=headers)
            for _ in range(4)
        )
    )
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.json()["disclosure_id"] for a in answers}) == 1
    events = (await hub.http.get("/v1/audit/events", headers=hub.auth("hub"))).json()["items"]
    assert sorted(e["kind"] for e in events) == ["exchange", "replay", "replay", "replay"]
    assert sum(1 for e in events if e["kind"] == "exchange") == 1


async def test_concurrent_requests_with_one_key_and_different_bodies(hub: Hub) -> None:
    headers = {"Idempotency-Key": "clash"}
    first, second = await asyncio.gather(
        hub.exchange(
            "gtb", participant=hub.person("vdab"), source="vdab", fields=OPEN, headers=headers
        ),
        hub.exchange(
            "gtb",
            participant=hub.person("vdab", skip=1),
            source="vdab",
            fields=OPEN,
            headers=headers,
        ),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 422]
    retry_of_first = await hub.exchange(
        "gtb", participant=hub.person("vdab"), source="vdab", fields=OPEN, headers=headers
    )
    winner = first if first.status_code == 200 else second
    assert retry_of_first.status_code == (200 if winner is first else 422)


async def test_a_replay_carries_the_original_legal_basis(hub: Hub) -> None:
    headers = {"Idempotency-Key": "basis"}
    person = hub.person("vdab")
    await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN, headers=headers)
    await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN, headers=headers)
    replay, original = (await hub.http.get("/v1/audit/events", headers=hub.auth("hub"))).json()[
        "items"
    ]
    assert replay["kind"] == "replay"
    assert replay["agreement"] == original["agreement"] == "vdab-trajectory-open@2"
    assert replay["fields_disclosed"] == original["fields_disclosed"]


async def test_a_replay_after_its_agreement_version_was_replaced_is_decided_anew(hub: Hub) -> None:
    headers = {"Idempotency-Key": "versions"}
    person = hub.person("vdab")
    hub.travel(hub.clock.now().replace(month=3, day=31, hour=20))
    first = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=OPEN, headers=headers
    )
    assert first.status_code == 200
    hub.travel(hub.clock.now().replace(month=4, day=1, hour=10))
    second = await hub.exchange(
        "gtb", participant=person, source="vdab", fields=OPEN, headers=headers
    )
    assert second.status_code == 200
    assert "idempotency-replayed" not in second.headers
    assert second.json()["disclosure_id"] != first.json()["disclosure_id"]


async def test_an_idempotency_key_is_not_stored_in_clear(hub: Hub) -> None:
    person = hub.person("vdab")
    await hub.exchange(
        "gtb", participant=person, source="vdab", fields=OPEN, headers={"Idempotency-Key": person}
    )
    await hub.container.db.dispose()
    raw = stored_bytes(hub.database_url)
    assert person.encode() not in raw


async def test_expired_idempotency_answers_are_removed(hub: Hub) -> None:
    person = hub.person("vdab")
    await hub.exchange(
        "gtb", participant=person, source="vdab", fields=OPEN, headers={"Idempotency-Key": "old"}
    )
    hub.travel(hub.clock.now().replace(day=hub.clock.now().day + 2))
    await hub.exchange(
        "gtb", participant=person, source="vdab", fields=OPEN, headers={"Idempotency-Key": "new"}
    )
    with connect(hub.database_url) as raw:
        assert tuple(raw.execute("SELECT count(*) FROM idempotency").fetchone()) == (1,)


async def test_unknown_member_names_are_not_echoed(hub: Hub) -> None:
    body = {
        "participant": hub.person("vdab"),
        "source": "vdab",
        "purpose": "trajectory-coordination",
        "fields": OPEN,
        "actor": {"role": "casemanager-work", "id": "u-1", "85073003328": 1},
        "85073003328": 1,
    }
    response = await hub.http.post("/v1/exchange", json=body, headers=hub.auth("gtb"))
    assert response.status_code == 422
    assert "85073003328" not in response.text


@pytest.mark.parametrize(
    "query",
    [
        "cursor=azE6wrI",
        "cursor=azE6" + "OTk5" * 40,
        "since=0001-01-01",
        "since=0001-01-01T00:00:00%2B01:00",
        "since=9999-12-31T23:59:59-05:00",
    ],
)
async def test_odd_cursors_and_moments_are_422(hub: Hub, query: str) -> None:
    for path in ("/v1/audit/events", "/v1/catalogue", "/v1/agreements"):
        if "since" in query and path != "/v1/audit/events":
            continue
        response = await hub.http.get(f"{path}?{query}", headers=hub.auth("hub"))
        assert response.status_code == 422, (path, response.text)


@pytest.mark.parametrize(
    "valid_until", ["9999-12-31", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00"]
)
async def test_consent_moments_out_of_range_are_422(hub: Hub, valid_until: str) -> None:
    response = await hub.consent(
        "gtb", hub.person("vdab"), ["icf.assessment"], valid_until=valid_until
    )
    assert response.status_code == 422


async def test_a_basic_iso_date_also_means_the_end_of_that_day(hub: Hub) -> None:
    body = (
        await hub.consent("gtb", hub.person("vdab"), ["icf.assessment"], valid_until="20271231")
    ).json()
    assert body["valid_until"] == "2027-12-31T23:00:00Z"


async def test_a_tampered_json_column_is_reported_not_crashed_on(hub: Hub) -> None:
    person = hub.person("vdab")
    await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
    await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
    with connect(hub.database_url) as raw:
        raw.execute("UPDATE audit_events SET withheld = 'x' WHERE seq = 2")
    report = (await hub.http.get("/v1/audit/verify", headers=hub.auth("hub"))).json()
    assert report["ok"] is False
    assert report["first_bad_seq"] == 2
    listed = await hub.http.get("/v1/audit/events", headers=hub.auth("hub"))
    assert listed.status_code == 200


async def test_an_unexpected_failure_is_a_500_problem_with_the_usual_headers(hub: Hub) -> None:
    async def broken(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("boom")

    hub.container.audit.verify = broken  # type: ignore[method-assign]
    response = await hub.http.get("/v1/audit/verify", headers=hub.auth("hub"))
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "boom" not in response.text


async def test_the_jwks_may_be_cached_and_api_answers_may_not(hub: Hub) -> None:
    jwks = await hub.http.get("/.well-known/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=300"
    catalogue = await hub.http.get("/v1/catalogue", headers=hub.auth("gtb"))
    assert catalogue.headers["cache-control"] == "no-store"


def test_audit_verify_without_a_database_says_so(tmp_path: Path) -> None:
    env = {"KETENHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "hub", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "no database" in result.stderr
    assert not (tmp_path / "none.db").exists()


async def test_consent_field_names_carrying_a_national_number_are_refused(hub: Hub) -> None:
    response = await hub.consent("gtb", hub.person("vdab"), ["x.a85073003328"])
    assert response.status_code == 422
    assert response.json()["reason"] == "personal-data-in-identifier"
    assert "85073003328" not in response.text


async def test_moments_before_the_year_1000_still_compare_correctly(hub: Hub) -> None:
    await hub.exchange("gtb", participant=hub.person("vdab"), source="vdab", fields=OPEN)
    since = await hub.http.get(
        "/v1/audit/events?since=0999-06-01T00:00:00Z", headers=hub.auth("hub")
    )
    until = await hub.http.get(
        "/v1/audit/events?until=0999-06-01T00:00:00Z", headers=hub.auth("hub")
    )
    assert len(since.json()["items"]) == 1
    assert until.json()["items"] == []


@pytest.mark.parametrize(
    "content", [b'{"participant": "\xff"}', b"[" * 50_000 + b"]" * 50_000, b"1" * 5000]
)
async def test_bodies_the_json_parser_cannot_read_are_invalid_json(
    hub: Hub, content: bytes
) -> None:
    response = await hub.http.post(
        "/v1/exchange",
        content=content,
        headers={**hub.auth("gtb"), "Content-Type": "application/json"},
    )
    assert response.status_code in {400, 422}
    assert response.headers["content-type"] == "application/problem+json"
    if response.status_code == 400:
        assert response.json()["reason"] == "invalid-json"


async def test_a_trailing_slash_is_not_redirected_to_a_host_the_client_named(hub: Hub) -> None:
    response = await hub.http.post(
        "/v1/exchange/", json={}, headers={**hub.auth("gtb"), "Host": "evil.example"}
    )
    assert response.status_code == 404
    assert "location" not in response.headers


async def test_the_openapi_document_describes_problems_and_scopes(hub: Hub) -> None:
    spec = (await hub.http.get("/openapi.json")).json()
    assert "HTTPValidationError" not in str(spec)
    exchange = spec["paths"]["/v1/exchange"]["post"]
    assert exchange["security"] == [{"oauth2": ["exchange"]}]
    assert set(exchange["responses"]) >= {"200", "401", "403", "404", "422", "502", "503", "504"}
    assert "application/problem+json" in exchange["responses"]["403"]["content"]
    flows = spec["components"]["securitySchemes"]["oauth2"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "/oauth/token"
