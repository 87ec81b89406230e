"""CONTRACT.md 3: consents recorded by a partner, with a signed receipt; list; revoke."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from tests.api.conftest import NOW, Hub
from tests.conftest import stored_bytes

ICF = ["icf.assessment"]


async def test_a_granted_consent_comes_with_a_receipt_signed_by_a_key_in_the_jwks(hub: Hub) -> None:
    person = hub.person("vdab")
    response = await hub.consent("gtb", person, ICF, evidence="signed plan, 2026-06-15")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "active"
    assert body["participant"] == person
    receipt = body["receipt"]
    jwks = (await hub.http.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(receipt)["kid"]
    (key,) = [k for k in jwks["keys"] if k["kid"] == kid]
    claims = jwt.decode(
        receipt, jwt.PyJWK(key).key, algorithms=["EdDSA"], options={"verify_aud": False}
    )
    assert claims["jti"] == body["id"]
    assert claims["recipient"] == "gtb"
    assert claims["fields"] == ICF
    assert person not in receipt
    assert person not in str(claims)


async def test_a_partner_records_only_consents_given_to_itself(hub: Hub) -> None:
    body = {
        "participant": hub.person("vdab"),
        "recipient": "cgg-vagga",
        "purpose": "trajectory-coordination",
        "fields": ICF,
    }
    response = await hub.http.post("/v1/consents", json=body, headers=hub.auth("gtb"))
    assert response.status_code == 403
    assert response.json()["reason"] == "recipient-not-allowed"


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"valid_until": "2026-06-14"}, "consent-expired"),
        ({"valid_until": "yesterday"}, "invalid-datetime"),
        ({"fields": ["icf.nothing"]}, "unknown-field"),
        ({"status": "active"}, "invalid-request"),
        ({"participant": "12345678901"}, "invalid-insz"),
    ],
)
async def test_bad_consents_are_refused_and_nothing_is_stored(
    hub: Hub, extra: dict[str, object], reason: str
) -> None:
    person = hub.person("vdab")
    body = {
        "participant": person,
        "recipient": "gtb",
        "purpose": "trajectory-coordination",
        "fields": ICF,
        **extra,
    }
    response = await hub.http.post("/v1/consents", json=body, headers=hub.auth("gtb"))
    assert response.status_code == 422
    assert response.json()["reason"] == reason
    listed = await hub.http.get(f"/v1/consents?participant={person}", headers=hub.auth("gtb"))
    assert listed.json()["items"] == []


async def test_a_date_means_the_end_of_that_day_in_brussels(hub: Hub) -> None:
    person = hub.person("vdab")
    body = (await hub.consent("gtb", person, ICF, valid_until="2026-06-15")).json()
    assert body["valid_until"] == "2026-06-15T22:00:00Z"
    hub.travel(NOW.replace(hour=21, minute=59))
    ok = await hub.exchange("gtb", participant=person, source="vdab", fields=ICF)
    assert ok.status_code == 200
    hub.travel(NOW.replace(hour=22))
    late = await hub.exchange("gtb", participant=person, source="vdab", fields=ICF)
    assert late.json()["withheld"] == [{"field": "icf.assessment", "reason": "consent-expired"}]


async def test_listing_shows_only_the_partners_own_consents_and_hub_sees_all(hub: Hub) -> None:
    person = hub.person("vdab", "ocmw-gent")
    await hub.consent("gtb", person, ICF)
    await hub.consent("cgg-vagga", person, ICF)
    own = (await hub.http.get(f"/v1/consents?participant={person}", headers=hub.auth("gtb"))).json()
    assert [c["recipient"] for c in own["items"]] == ["gtb"]
    assert own["next_cursor"] is None
    every = await hub.http.get(f"/v1/consents?participant={person}", headers=hub.auth("hub"))
    assert sorted(c["recipient"] for c in every.json()["items"]) == ["cgg-vagga", "gtb"]
    item = own["items"][0]
    assert set(item) >= {
        "id",
        "participant",
        "recipient",
        "purpose",
        "fields",
        "status",
        "valid_until",
        "granted_at",
        "revoked_at",
    }
    assert item["participant"] == person


async def test_listing_pages_with_a_cursor(hub: Hub) -> None:
    person = hub.person("vdab")
    for _ in range(5):
        await hub.consent("gtb", person, ICF)
    seen: list[str] = []
    cursor = None
    while True:
        url = f"/v1/consents?participant={person}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await hub.http.get(url, headers=hub.auth("gtb"))).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5


async def test_revoke_is_idempotent_and_foreign_or_unknown_ids_are_404(hub: Hub) -> None:
    person = hub.person("vdab")
    consent_id = (await hub.consent("gtb", person, ICF)).json()["id"]
    foreign = await hub.http.post(
        f"/v1/consents/{consent_id}/revoke", headers=hub.auth("cgg-vagga")
    )
    assert foreign.status_code == 404
    unknown = await hub.http.post("/v1/consents/nope/revoke", headers=hub.auth("gtb"))
    assert unknown.status_code == 404
    assert unknown.json()["reason"] == foreign.json()["reason"] == "unknown-consent"
    first = await hub.http.post(f"/v1/consents/{consent_id}/revoke", headers=hub.auth("gtb"))
    hub.travel(NOW + timedelta(minutes=5))
    second = await hub.http.post(f"/v1/consents/{consent_id}/revoke", headers=hub.auth("gtb"))
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["status"] == "revoked"


async def test_the_operator_may_revoke_any_consent(hub: Hub) -> None:
    consent_id = (await hub.consent("gtb", hub.person("vdab"), ICF)).json()["id"]
    response = await hub.http.post(f"/v1/consents/{consent_id}/revoke", headers=hub.auth("hub"))
    assert response.status_code == 200


async def test_consent_endpoints_need_the_consent_write_scope(hub: Hub) -> None:
    response = await hub.http.get(
        f"/v1/consents?participant={hub.person('vdab')}", headers=hub.auth("gtb", "exchange")
    )
    assert response.status_code == 403
    assert response.json()["reason"] == "insufficient-scope"


async def test_no_insz_is_stored_in_clear(hub: Hub) -> None:
    person = hub.person("vdab")
    await hub.consent("gtb", person, ICF, evidence=f"contract of {person}")
    await hub.exchange(
        "gtb", participant=person, source="vdab", fields=ICF, headers={"Idempotency-Key": "k"}
    )
    await hub.container.db.dispose()
    raw = stored_bytes(hub.database_url)
    assert person.encode() not in raw
