"""CONTRACT.md 3: the token endpoint over HTTP, with clients made the way operators make them."""

from __future__ import annotations

import base64
import json

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from hub.domain.ids import PartnerId
from tests.api.conftest import Hub
from tests.builders import an_assertion_form


async def test_client_secret_basic_and_post_give_a_working_token(hub: Hub) -> None:
    made = await hub.container.clients.create(PartnerId("gtb"), frozenset({"exchange"}))
    assert made.client_secret is not None
    basic = base64.b64encode(f"{made.client_id}:{made.client_secret}".encode()).decode()
    by_basic = await hub.http.post(
        "/oauth/token",
        content="grant_type=client_credentials",
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert by_basic.status_code == 200, by_basic.text
    token = by_basic.json()
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "exchange"
    assert 0 < token["expires_in"] <= 900
    by_post = await hub.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": made.client_id,
            "client_secret": made.client_secret,
        },
    )
    assert by_post.status_code == 200
    response = await hub.http.post(
        "/v1/exchange",
        json={
            "participant": hub.person("vdab"),
            "source": "vdab",
            "purpose": "trajectory-coordination",
            "fields": ["trajectory.status"],
            "actor": {"role": "casemanager-work", "id": "u-1"},
        },
        headers={"Authorization": f"Bearer {by_post.json()['access_token']}"},
    )
    assert response.status_code == 200


async def test_a_wrong_secret_is_invalid_client(hub: Hub) -> None:
    made = await hub.container.clients.create(PartnerId("gtb"), frozenset({"exchange"}))
    response = await hub.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": made.client_id,
            "client_secret": "wrong",
        },
    )
    assert response.status_code in {400, 401}
    assert response.json()["error"] == "invalid_client"


async def test_private_key_jwt_with_a_registered_key_and_no_replay(hub: Hub) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public["kid"] = "k1"
    made = await hub.container.clients.create(
        PartnerId("cgg-vagga"), frozenset({"exchange"}), {"keys": [public]}
    )
    assert made.client_secret is None
    now = int(hub.clock.now().timestamp())
    form = an_assertion_form(made.client_id, key, now=now)
    first = await hub.http.post("/oauth/token", data=form)
    assert first.status_code == 200, first.text
    replay = await hub.http.post("/oauth/token", data=form)
    assert replay.status_code in {400, 401}
    assert replay.json()["error"] == "invalid_client"
