"""Attacks on authentication (OWASP API2 2023; ASVS 5 V6, V9, V10) seen through the API.

The token checks themselves (alg none, HMAC key confusion, expiry, nbf, aud, iss,
assertion replay) are unit and integration tests (tests/unit/test_auth_tokens.py,
tests/integration/test_token_endpoint.py); here: that a forged token changes
nothing at the API, and that the token endpoint tells nobody which client ids exist.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from hub.auth import endpoint as token_endpoint
from hub.auth.endpoint import TokenEndpoint
from hub.auth.keys import FileKeyRing
from hub.auth.tokens import TokenIssuer
from hub.clock import FixedClock
from hub.domain.ids import PartnerId
from tests.api.conftest import NOW, Hub
from tests.api.snapshot import snapshot
from tests.builders import an_assertion_form
from tests.fakes_auth import FakeAuthDatabase


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forgeries(genuine: str) -> dict[str, str]:
    header = jwt.get_unverified_header(genuine)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    as_operator = {**claims, "partner": "hub", "scope": "exchange consent:write audit:read"}
    head, _, signature = genuine.split(".")
    other_key = ed25519.Ed25519PrivateKey.generate()
    return {
        "another key, the hub's kid": jwt.encode(
            as_operator,
            other_key,
            algorithm="EdDSA",
            headers={"kid": header["kid"], "typ": "at+jwt"},
        ),
        "alg none": (
            _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}).encode())
            + "."
            + _b64(json.dumps(as_operator).encode())
            + "."
        ),
        "claims changed under the hub's signature": (
            f"{head}.{_b64(json.dumps(as_operator).encode())}.{signature}"
        ),
        "signature cut off": f"{head}.{genuine.split('.')[1]}.",
        "two tokens glued": f"{genuine}.{genuine}",
        "not a JWT": "x" * 9000,
    }


@pytest.mark.parametrize(
    "kind",
    [
        "another key, the hub's kid",
        "alg none",
        "claims changed under the hub's signature",
        "signature cut off",
        "two tokens glued",
        "not a JWT",
    ],
)
async def test_a_forged_token_is_401_at_the_exchange_and_changes_nothing(
    hub: Hub, kind: str
) -> None:
    forged = _forgeries(hub.token("gtb"))[kind]
    before = snapshot(hub.database_url)
    answer = await hub.exchange(
        "gtb",
        participant=hub.person("vdab"),
        source="vdab",
        fields=["trajectory.status"],
        headers={"Authorization": f"Bearer {forged}"},
    )
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["reason"] == "invalid-token"
    assert answer.headers["www-authenticate"].startswith("Bearer ")
    assert hub.sources["vdab"].asked == []
    assert snapshot(hub.database_url) == before
    # The operator's audit log cannot be read with it either.
    audit = await hub.http.get("/v1/audit/events", headers={"Authorization": f"Bearer {forged}"})
    assert audit.status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Basic Z3RiOnNlY3JldA==", "bearer", "Bearer ", "Token abc", "Bearer a b"],
)
async def test_odd_authorization_headers_are_401_problems(hub: Hub, header: str) -> None:
    answer = await hub.http.get("/v1/catalogue", headers={"Authorization": header})
    assert answer.status_code == 401
    assert answer.json()["reason"] == "invalid-token"


async def _token_request(hub: Hub, client_id: str, secret: str, *, basic: bool) -> Any:
    if basic:
        credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        return await hub.http.post(
            "/oauth/token",
            content="grant_type=client_credentials",
            headers={
                "Authorization": f"Basic {credentials}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
    return await hub.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


@pytest.mark.parametrize("basic", [True, False], ids=["client_secret_basic", "client_secret_post"])
async def test_an_unknown_client_and_a_wrong_secret_get_the_same_answer(
    hub: Hub, basic: bool
) -> None:
    made = await hub.container.clients.create(PartnerId("gtb"), frozenset({"exchange"}))
    wrong = await _token_request(hub, made.client_id, "not-the-secret", basic=basic)
    unknown = await _token_request(hub, "gtb-000000000000", "not-the-secret", basic=basic)
    assert wrong.status_code == unknown.status_code == (401 if basic else 400)
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers.keys() == unknown.headers.keys()
    assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")


class CountingComparison:
    """The real secret comparison, counting how often it runs (a fake, not a mock)."""

    def __init__(self) -> None:
        self.calls = 0
        self._real = token_endpoint.secret_matches

    def __call__(self, secret: str, stored_hash: str) -> bool:
        self.calls += 1
        return self._real(secret, stored_hash)


@pytest.mark.parametrize("basic", [True, False], ids=["client_secret_basic", "client_secret_post"])
async def test_an_unknown_client_costs_the_same_secret_comparison_as_a_known_one(
    hub: Hub, basic: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No timed assertion: the unknown-client path does the same hashing work, structurally."""
    made = await hub.container.clients.create(PartnerId("gtb"), frozenset({"exchange"}))
    assert made.client_secret is not None
    counting = CountingComparison()
    monkeypatch.setattr(token_endpoint, "secret_matches", counting)

    calls = {}
    for name, client_id, secret in [
        ("right", made.client_id, made.client_secret),
        ("wrong", made.client_id, "not-the-secret"),
        ("unknown", "gtb-000000000000", "not-the-secret"),
        ("unknown, the right secret", "gtb-000000000000", made.client_secret),
    ]:
        counting.calls = 0
        answer = await _token_request(hub, client_id, secret, basic=basic)
        assert (answer.status_code == 200) == (name == "right")
        calls[name] = counting.calls
    assert set(calls.values()) == {1}, calls


def _assertion(client_id: str, key: ec.EllipticCurvePrivateKey, now: int) -> dict[str, str]:
    return an_assertion_form(client_id, key, now=now)


async def test_an_assertion_for_an_unknown_client_and_one_with_the_wrong_key_look_alike(
    hub: Hub,
) -> None:
    registered = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(registered.public_key()))
    public["kid"] = "k1"
    made = await hub.container.clients.create(
        PartnerId("cgg-vagga"), frozenset({"exchange"}), {"keys": [public]}
    )
    attacker = ec.generate_private_key(ec.SECP256R1())
    now = int(hub.clock.now().timestamp())
    wrong_key = await hub.http.post("/oauth/token", data=_assertion(made.client_id, attacker, now))
    unknown = await hub.http.post(
        "/oauth/token", data=_assertion("cgg-vagga-000000000000", attacker, now)
    )
    assert wrong_key.status_code == unknown.status_code
    assert wrong_key.json() == unknown.json()
    assert wrong_key.json()["error"] == "invalid_client"


@pytest.mark.parametrize("client_id", ["gtb\x00", "gtb\n", "\x7f", "gtb\u2028x"])
async def test_a_client_id_no_client_can_have_is_not_looked_up(
    tmp_path: Path, client_id: str
) -> None:
    """PostgreSQL refuses a NUL in a text comparison: that was a 503 for a bad request."""
    keys = FileKeyRing.load_or_create(tmp_path / "keys")
    endpoint = TokenEndpoint(TokenIssuer(keys, "urn:hub", "urn:hub"), FixedClock(NOW), None)
    database = FakeAuthDatabase()
    answer = await endpoint.handle(
        url="http://hub.test/oauth/token",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=urlencode(
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "s"}
        ).encode(),
        db=database,
    )
    assert (answer.status, answer.body["error"]) == (400, "invalid_client")
    assert database.reads == 0
