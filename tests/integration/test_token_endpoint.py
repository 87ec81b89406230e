"""``POST /oauth/token`` (CONTRACT.md 3): client credentials with secrets and with keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, OKPKey

from hub.auth.endpoint import ASSERTION_TYPE, TokenEndpoint, TokenResponse
from hub.auth.keys import FileKeyRing
from hub.auth.tokens import TokenIssuer, TokenVerifier
from hub.clock import FixedClock
from hub.domain.clients import hash_client_secret
from hub.domain.ids import PartnerId
from hub.domain.principal import Scope
from hub.ports import ClientRecord
from tests.fakes_auth import FakeAuthDatabase

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
HUB = "https://hub.ketenhub.test"
URL = "http://127.0.0.1:8000/oauth/token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SECRET = "s3cret-0123456789-abcdefghijklmnopqrstuvwx"
KEYS = FileKeyRing.ephemeral()
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
EC_JWK = ECKey.import_key(EC_KEY.public_key(), parameters={"kid": "ec-1"}).as_dict()
ED_JWK = OKPKey.import_key(ED_KEY.public_key(), parameters={"kid": "ed-1"}).as_dict()
KIDS = {"ES256": "ec-1", "EdDSA": "ed-1"}
ALL = frozenset({"exchange", "consent:write", "audit:read"})


def a_client(
    client_id: str = "vdab-1",
    *,
    scopes: frozenset[str] = ALL,
    method: str = "client_secret",
    jwks: dict[str, Any] | None = None,
) -> ClientRecord:
    return ClientRecord(
        client_id=client_id,
        partner=PartnerId(client_id.split("-", 1)[0]),
        scopes=scopes,
        auth_method=method,
        secret_hash=hash_client_secret(SECRET) if method == "client_secret" else None,
        jwks=jwks,
        created_at=NOW,
    )


def a_key_client(client_id: str = "cgg-1", scopes: frozenset[str] = ALL) -> ClientRecord:
    jwks = {"keys": [EC_JWK, ED_JWK]}
    return a_client(client_id, scopes=scopes, method="private_key_jwt", jwks=jwks)


@pytest.fixture
async def db() -> FakeAuthDatabase:
    database = FakeAuthDatabase()
    database.clients.add(a_client("vdab-1"))
    database.clients.add(a_client("ocmw-1", scopes=frozenset({"exchange"})))
    database.clients.add(a_key_client("cgg-1"))
    return database


def an_endpoint(public_url: str | None = None) -> TokenEndpoint:
    return TokenEndpoint(TokenIssuer(KEYS, HUB, HUB), FixedClock(NOW), public_url)


def basic(client_id: str, secret: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def form(**fields: str) -> bytes:
    return urlencode({"grant_type": "client_credentials", **fields}).encode()


def an_assertion(
    key: Any = EC_KEY,
    *,
    alg: str = "ES256",
    kid: str | None = None,
    lifetime: int = 60,
    **changes: Any,
) -> str:
    """An assertion as a partner's library (here PyJWT) makes it."""
    issued = int(NOW.timestamp())
    claims: dict[str, Any] = {
        "iss": "cgg-1",
        "sub": "cgg-1",
        "aud": URL,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
    }
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    headers = {"kid": kid or KIDS.get(alg, "ec-1")}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def jwt_form(assertion: str, **fields: str) -> bytes:
    return form(client_assertion_type=ASSERTION_TYPE, client_assertion=assertion, **fields)


async def post(
    db: FakeAuthDatabase,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    endpoint: TokenEndpoint | None = None,
    url: str = URL,
) -> TokenResponse:
    return await (endpoint or an_endpoint()).handle(
        url=url, headers={**FORM, **(headers or {})}, body=body, db=db
    )


def verified(response: TokenResponse) -> Any:
    assert response.status == 200, response.body
    return TokenVerifier(KEYS, HUB, HUB).verify(response.body["access_token"], NOW)


def assert_error(response: TokenResponse, error: str, status: int = 400) -> None:
    assert response.status == status, response.body
    assert response.body["error"] == error
    assert response.body["detail"] == response.body["error_description"]
    assert response.body["status"] == status
    assert response.body["type"] == f"urn:ketenhub:problem:{error}"
    assert response.body["title"]
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert SECRET not in str(response.body)
    assert "Traceback" not in str(response.body)
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Basic realm="ketenhub"'
    else:
        assert "WWW-Authenticate" not in response.headers


# -- client secrets -------------------------------------------------------------------


async def test_client_secret_basic(db: FakeAuthDatabase) -> None:
    response = await post(db, form(), basic("vdab-1", SECRET))

    principal = verified(response)
    assert principal.client_id == "vdab-1"
    assert principal.partner == "vdab"
    assert principal.scopes == frozenset(Scope)
    assert response.body["token_type"] == "Bearer"
    assert response.body["expires_in"] == 900
    assert response.body["scope"] == "audit:read consent:write exchange"
    assert set(response.body) == {"access_token", "token_type", "expires_in", "scope"}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert principal.expires_at - int(NOW.timestamp()) <= 900


async def test_client_secret_post(db: FakeAuthDatabase) -> None:
    response = await post(db, form(client_id="vdab-1", client_secret=SECRET))
    assert verified(response).client_id == "vdab-1"


async def test_a_wrong_secret_over_basic_is_401_with_a_challenge(db: FakeAuthDatabase) -> None:
    response = await post(db, form(), basic("vdab-1", "wrong"))
    assert_error(response, "invalid_client", 401)
    assert response.body["error_description"] == "Client authentication failed."


async def test_a_wrong_secret_in_the_body_is_400(db: FakeAuthDatabase) -> None:
    response = await post(db, form(client_id="vdab-1", client_secret="wrong"))
    assert_error(response, "invalid_client", 400)


async def test_an_unknown_client_looks_like_a_wrong_secret(db: FakeAuthDatabase) -> None:
    unknown = await post(db, form(), basic("nobody-1", SECRET))
    wrong = await post(db, form(), basic("vdab-1", "wrong"))
    assert_error(unknown, "invalid_client", 401)
    assert unknown.body == wrong.body


async def test_no_credentials_at_all_is_401(db: FakeAuthDatabase) -> None:
    assert_error(await post(db, form()), "invalid_client", 401)
    assert_error(await post(db, form(client_id="vdab-1")), "invalid_client", 401)


async def test_a_key_client_cannot_use_a_secret(db: FakeAuthDatabase) -> None:
    assert_error(await post(db, form(), basic("cgg-1", SECRET)), "invalid_client", 401)


async def test_a_secret_client_cannot_use_an_assertion(db: FakeAuthDatabase) -> None:
    assertion = an_assertion(iss="vdab-1", sub="vdab-1")
    assert_error(await post(db, jwt_form(assertion)), "invalid_client")


async def test_two_authentication_methods_at_once_are_refused(db: FakeAuthDatabase) -> None:
    body = form(client_id="vdab-1", client_secret=SECRET)
    assert_error(await post(db, body, basic("vdab-1", SECRET)), "invalid_request")


async def test_a_client_id_that_contradicts_basic_is_refused(db: FakeAuthDatabase) -> None:
    response = await post(db, form(client_id="ocmw-1"), basic("vdab-1", SECRET))
    assert_error(response, "invalid_request")


# -- scopes (RFC 6749 3.3) --------------------------------------------------------------


async def test_a_subset_of_scopes_can_be_asked_for(db: FakeAuthDatabase) -> None:
    response = await post(db, form(scope="exchange audit:read"), basic("vdab-1", SECRET))
    assert verified(response).scopes == frozenset({Scope.EXCHANGE, Scope.AUDIT_READ})
    assert response.body["scope"] == "audit:read exchange"


async def test_a_scope_the_client_lacks_is_left_out(db: FakeAuthDatabase) -> None:
    response = await post(db, form(scope="exchange audit:read"), basic("ocmw-1", SECRET))
    assert verified(response).scopes == frozenset({Scope.EXCHANGE})
    assert response.body["scope"] == "exchange"


async def test_only_scopes_the_client_lacks_is_invalid_scope(db: FakeAuthDatabase) -> None:
    response = await post(db, form(scope="audit:read"), basic("ocmw-1", SECRET))
    assert_error(response, "invalid_scope")


async def test_an_unknown_scope_is_invalid_scope(db: FakeAuthDatabase) -> None:
    response = await post(db, form(scope="exchange admin"), basic("vdab-1", SECRET))
    assert_error(response, "invalid_scope")
    assert "admin" not in response.body["error_description"]


async def test_no_scope_means_all_of_the_clients_scopes(db: FakeAuthDatabase) -> None:
    response = await post(db, form(), basic("ocmw-1", SECRET))
    assert verified(response).scopes == frozenset({Scope.EXCHANGE})
    blank = await post(db, form(scope=""), basic("ocmw-1", SECRET))
    assert verified(blank).scopes == frozenset({Scope.EXCHANGE})


# -- the request itself -------------------------------------------------------------------


async def test_another_grant_type_is_unsupported(db: FakeAuthDatabase) -> None:
    response = await post(db, form(grant_type="password"), basic("vdab-1", SECRET))
    assert_error(response, "unsupported_grant_type")
    assert "password" not in response.body["error_description"]


async def test_a_missing_grant_type_is_invalid_request(db: FakeAuthDatabase) -> None:
    response = await post(db, b"scope=exchange", basic("vdab-1", SECRET))
    assert_error(response, "invalid_request")


@pytest.mark.parametrize(
    "content_type", ["application/json", "multipart/form-data; boundary=x", ""]
)
async def test_another_content_type_is_invalid_request(
    db: FakeAuthDatabase, content_type: str
) -> None:
    response = await post(db, form(), {**basic("vdab-1", SECRET), "Content-Type": content_type})
    assert_error(response, "invalid_request")


async def test_a_charset_parameter_and_header_case_do_not_matter(db: FakeAuthDatabase) -> None:
    response = await an_endpoint().handle(
        url=URL,
        headers={
            "content-type": "Application/X-WWW-Form-URLEncoded; charset=UTF-8",
            "authorization": basic("vdab-1", SECRET)["Authorization"],
        },
        body=form(),
        db=db,
    )
    assert verified(response).client_id == "vdab-1"


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=client_credentials&grant_type=client_credentials",
        b"grant_type=client_credentials&scope=exchange&scope=audit:read",
        b"grant_type=client_credentials&client_id=vdab-1&client_id=vdab-1",
    ],
)
async def test_a_repeated_parameter_is_invalid_request(db: FakeAuthDatabase, body: bytes) -> None:
    assert_error(await post(db, body, basic("vdab-1", SECRET)), "invalid_request")


async def test_a_body_that_is_not_utf8_is_invalid_request(db: FakeAuthDatabase) -> None:
    response = await post(db, b"grant_type=client_credentials&scope=%ff", basic("vdab-1", SECRET))
    assert_error(response, "invalid_request")


# -- private_key_jwt (RFC 7523) ------------------------------------------------------------


@pytest.mark.parametrize(("key", "alg"), [(EC_KEY, "ES256"), (ED_KEY, "EdDSA")])
async def test_private_key_jwt(db: FakeAuthDatabase, key: Any, alg: str) -> None:
    response = await post(db, jwt_form(an_assertion(key, alg=alg), scope="exchange"))

    principal = verified(response)
    assert principal.client_id == "cgg-1"
    assert principal.partner == "cgg"
    assert principal.scopes == frozenset({Scope.EXCHANGE})
    assert db.commits == 1
    assert len(db.assertions.seen) == 1


async def test_a_replayed_assertion_is_refused(db: FakeAuthDatabase) -> None:
    assertion = an_assertion()
    assert (await post(db, jwt_form(assertion))).status == 200

    replay = await post(db, jwt_form(assertion))

    assert_error(replay, "invalid_client")
    assert replay.body["error_description"] == "The client assertion was used before."


async def test_the_jti_is_kept_until_the_assertion_cannot_be_accepted_any_more(
    db: FakeAuthDatabase,
) -> None:
    await post(db, jwt_form(an_assertion(jti="once", lifetime=60)))
    assert db.assertions.seen["cgg-1", "once"] >= NOW + timedelta(seconds=60 + 30)


async def test_a_failed_request_does_not_use_up_the_jti(db: FakeAuthDatabase) -> None:
    assertion = an_assertion()
    assert_error(await post(db, jwt_form(assertion, scope="admin")), "invalid_scope")
    assert db.writes == 0
    assert (await post(db, jwt_form(assertion))).status == 200


async def test_an_assertion_living_longer_than_five_minutes_is_refused(
    db: FakeAuthDatabase,
) -> None:
    response = await post(db, jwt_form(an_assertion(lifetime=301)))
    assert_error(response, "invalid_client")
    assert "300 seconds" in response.body["error_description"]
    assert (await post(db, jwt_form(an_assertion(lifetime=300)))).status == 200


async def test_an_assertion_without_iat_is_refused(db: FakeAuthDatabase) -> None:
    response = await post(db, jwt_form(an_assertion(iat=None)))
    assert_error(response, "invalid_client")
    assert "iat" in response.body["error_description"]


async def test_an_assertion_without_jti_is_refused(db: FakeAuthDatabase) -> None:
    assert_error(await post(db, jwt_form(an_assertion(jti=None))), "invalid_client")


async def test_an_expired_assertion_is_refused(db: FakeAuthDatabase) -> None:
    issued = int(NOW.timestamp()) - 200
    response = await post(db, jwt_form(an_assertion(iat=issued, exp=issued + 100)))
    assert_error(response, "invalid_client")
    assert response.body["error_description"] == "The client assertion has expired."


async def test_an_assertion_from_the_future_is_refused(db: FakeAuthDatabase) -> None:
    issued = int(NOW.timestamp()) + 120
    response = await post(db, jwt_form(an_assertion(iat=issued, exp=issued + 60)))
    assert_error(response, "invalid_client")


async def test_an_assertion_for_another_audience_is_refused(db: FakeAuthDatabase) -> None:
    response = await post(db, jwt_form(an_assertion(aud="https://other.test/oauth/token")))
    assert_error(response, "invalid_client")
    assert "aud" in response.body["error_description"]


async def test_the_audience_is_the_public_url_when_one_is_set(db: FakeAuthDatabase) -> None:
    endpoint = an_endpoint("https://hub.example.be/")
    public = an_assertion(aud="https://hub.example.be/oauth/token")
    assert (await post(db, jwt_form(public), endpoint=endpoint)).status == 200
    as_seen = an_assertion()  # aud: the URL the request came to
    assert_error(await post(db, jwt_form(as_seen), endpoint=endpoint), "invalid_client")


async def test_an_audience_list_naming_the_token_url_is_accepted(db: FakeAuthDatabase) -> None:
    response = await post(db, jwt_form(an_assertion(aud=[URL, "https://other.test"])))
    assert response.status == 200


async def test_iss_differing_from_sub_is_refused(db: FakeAuthDatabase) -> None:
    response = await post(db, jwt_form(an_assertion(iss="vdab-1")))
    assert_error(response, "invalid_client")
    assert "iss and sub" in response.body["error_description"]


async def test_an_assertion_signed_by_another_key_is_refused(db: FakeAuthDatabase) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    response = await post(db, jwt_form(an_assertion(stranger)))
    assert_error(response, "invalid_client")
    assert response.body["error_description"] == "Client authentication failed."


async def test_an_assertion_with_an_unknown_kid_is_refused(db: FakeAuthDatabase) -> None:
    assert_error(await post(db, jwt_form(an_assertion(kid="nope"))), "invalid_client")


def hs256_with_the_public_key() -> str:
    # The public key as an HMAC secret: the classic algorithm confusion (RFC 8725 2.1).
    unsigned = an_assertion(alg="ES256").rsplit(".", 1)[0]
    head = b64(json.dumps({"alg": "HS256", "kid": "ec-1"}).encode())
    unsigned = f"{head}.{unsigned.split('.')[1]}"
    secret = json.dumps(EC_JWK).encode()
    signature = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64(signature)}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ["HS256", "ES384", "RS256"])
async def test_other_algorithms_are_refused(db: FakeAuthDatabase, alg: str) -> None:
    if alg == "HS256":
        assertion = hs256_with_the_public_key()
    elif alg == "ES384":
        assertion = an_assertion(ec.generate_private_key(ec.SECP384R1()), alg=alg)
    else:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assertion = an_assertion(rsa_key, alg=alg)
    assert_error(await post(db, jwt_form(assertion)), "invalid_client")


async def test_alg_none_is_refused(db: FakeAuthDatabase) -> None:
    issued = int(NOW.timestamp())
    header = b64(b'{"alg":"none","kid":"ec-1"}')
    claims = {"iss": "cgg-1", "sub": "cgg-1", "aud": URL, "iat": issued, "exp": issued + 60}
    assertion = f"{header}.{b64(json.dumps(claims | {'jti': 'n'}).encode())}."
    assert_error(await post(db, jwt_form(assertion)), "invalid_client")


async def test_a_wrong_assertion_type_is_invalid_request(db: FakeAuthDatabase) -> None:
    body = form(client_assertion_type="urn:example:saml", client_assertion=an_assertion())
    assert_error(await post(db, body), "invalid_request")


@pytest.mark.parametrize("assertion", ["garbage", "a.b.c", "e30.e30.e30"])
async def test_a_malformed_assertion_is_refused(db: FakeAuthDatabase, assertion: str) -> None:
    assert_error(await post(db, jwt_form(assertion)), "invalid_client")


# -- the token itself ---------------------------------------------------------------------


async def test_the_token_verifies_and_lives_at_most_fifteen_minutes(db: FakeAuthDatabase) -> None:
    response = await post(db, form(scope="consent:write"), basic("vdab-1", SECRET))

    principal = verified(response)
    assert principal.partner == "vdab"
    assert principal.scopes == frozenset({Scope.CONSENT_WRITE})
    assert 0 < response.body["expires_in"] <= 900
    assert principal.expires_at <= int(NOW.timestamp()) + 900
    later = NOW + timedelta(seconds=900 + 31)
    with pytest.raises(Exception, match="expired"):
        TokenVerifier(KEYS, HUB, HUB).verify(response.body["access_token"], later)


async def test_a_token_request_reads_the_client_once_and_writes_only_for_assertions(
    db: FakeAuthDatabase,
) -> None:
    await post(db, form(), basic("vdab-1", SECRET))
    assert (db.reads, db.writes) == (1, 0)
    await post(db, jwt_form(an_assertion()))
    assert (db.reads, db.writes) == (2, 1)


async def test_the_query_string_is_not_part_of_the_audience(db: FakeAuthDatabase) -> None:
    response = await post(db, jwt_form(an_assertion()), url=f"{URL}?probe=1")
    assert response.status == 200


async def test_a_client_whose_stored_keys_are_damaged_cannot_authenticate(
    db: FakeAuthDatabase,
) -> None:
    broken = {"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "ec-1"}]}
    db.clients.add(a_client("gent-1", method="private_key_jwt", jwks=broken))
    assertion = an_assertion(iss="gent-1", sub="gent-1")
    response = await post(db, jwt_form(assertion))
    assert_error(response, "invalid_client")
    assert response.body["error_description"] == "Client authentication failed."


async def test_an_assertion_header_cannot_bring_its_own_key(db: FakeAuthDatabase) -> None:
    # RFC 8725 3.10: a "jwk" header is no trust anchor; only the registered keys count.
    stranger = ec.generate_private_key(ec.SECP256R1())
    own_jwk = ECKey.import_key(stranger.public_key()).as_dict()
    issued = int(NOW.timestamp())
    claims = {"iss": "cgg-1", "sub": "cgg-1", "aud": URL, "iat": issued, "exp": issued + 60}
    assertion = jwt.encode(
        claims | {"jti": "j"}, stranger, algorithm="ES256", headers={"jwk": own_jwk}
    )
    assert_error(await post(db, jwt_form(assertion)), "invalid_client")


@pytest.mark.parametrize("credentials", [b"\xff\xfe:x", "é:x".encode("latin-1")])
async def test_a_basic_header_that_is_not_utf8_is_invalid_client(
    db: FakeAuthDatabase, credentials: bytes
) -> None:
    response = await an_endpoint().handle(
        url=URL,
        headers={
            "Authorization": "Basic " + base64.b64encode(credentials).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
        },
        body=b"grant_type=client_credentials",
        db=db,
    )
    assert response.status == 401
    assert response.body["error"] == "invalid_client"
