"""CONTRACT.md 5 and the catalogue: problem+json everywhere, list answers, headers."""

from __future__ import annotations

import pytest

from tests.api.conftest import Hub

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path", "status", "reason"),
    [
        ("GET", "/v1/nothing-here", 404, "not-found"),
        ("DELETE", "/v1/exchange", 405, "method-not-allowed"),
        ("GET", "/v1/exchange", 405, "method-not-allowed"),
    ],
)
async def test_framework_errors_are_problems(
    hub: Hub, method: str, path: str, status: int, reason: str
) -> None:
    response = await hub.http.request(method, path, headers=hub.auth("gtb"))
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status
    assert problem["reason"] == reason
    assert {"type", "title", "detail"} <= set(problem)
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer not-a-jwt",
        "Basic Z3RiOnNlY3JldA==",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
    ],
)
async def test_requests_without_a_valid_token_are_401_problems(
    hub: Hub, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await hub.http.get("/v1/catalogue", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["reason"] == "invalid-token"


async def test_a_token_from_before_the_clock_moved_past_its_expiry_is_refused(hub: Hub) -> None:
    headers = hub.auth("gtb")
    hub.clock.set(hub.clock.now().replace(hour=hub.clock.now().hour + 1))
    response = await hub.http.get("/v1/catalogue", headers=headers)
    assert response.status_code == 401


async def test_the_catalogue_is_a_paged_list(hub: Hub) -> None:
    first = (await hub.http.get("/v1/catalogue?limit=5", headers=hub.auth("gtb"))).json()
    assert len(first["items"]) == 5
    assert first["next_cursor"]
    names: list[str] = []
    cursor: str | None = None
    while True:
        url = "/v1/catalogue?limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = (await hub.http.get(url, headers=hub.auth("gtb"))).json()
        names += [f"{i['source']}/{i['name']}" for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(names) == len(set(names)) == 20
    assert "vdab/icf.assessment" in names
    icf = next(
        i
        for i in (await hub.http.get("/v1/catalogue?limit=100", headers=hub.auth("gtb"))).json()[
            "items"
        ]
        if i["name"] == "icf.assessment"
    )
    assert icf == {
        "source": "vdab",
        "name": "icf.assessment",
        "category": icf["category"],
        "special": True,
    }


async def test_agreements_lists_only_the_versions_in_force(hub: Hub) -> None:
    page = (await hub.http.get("/v1/agreements?limit=100", headers=hub.auth("gtb"))).json()
    open_part = [a for a in page["items"] if a["id"] == "vdab-trajectory-open"]
    assert [a["version"] for a in open_part] == [2]
    assert page["next_cursor"] is None
    assert {
        "id",
        "version",
        "provider",
        "recipients",
        "purpose",
        "legal_basis",
        "fields",
        "roles",
        "consent_required",
        "valid_from",
        "valid_until",
        "retention_days",
    } <= set(open_part[0])


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "cursor=%%%"])
async def test_list_limits_and_cursors_are_checked(hub: Hub, query: str) -> None:
    response = await hub.http.get(f"/v1/agreements?{query}", headers=hub.auth("gtb"))
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


async def test_the_jwks_has_public_keys_only(hub: Hub) -> None:
    jwks = (await hub.http.get("/.well-known/jwks.json")).json()
    assert jwks["keys"]
    for key in jwks["keys"]:
        assert "d" not in key
        assert key["kid"]
        assert key["use"] == "sig"


async def test_the_openapi_document_describes_the_contract_paths(hub: Hub) -> None:
    spec = (await hub.http.get("/openapi.json")).json()
    assert {
        "/oauth/token",
        "/v1/exchange",
        "/v1/consents",
        "/v1/consents/{consent_id}/revoke",
        "/v1/audit/events",
        "/v1/audit/verify",
        "/v1/catalogue",
        "/v1/agreements",
        "/.well-known/jwks.json",
    } <= set(spec["paths"])
