"""Access tokens (RFC 9068): what the hub issues, and every way a bad one is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from hub.auth.keys import FileKeyRing
from hub.auth.tokens import TokenIssuer, TokenVerifier
from hub.domain.errors import UnauthenticatedError
from hub.domain.ids import PartnerId
from hub.domain.principal import Principal, Scope
from hub.ports import ClientRecord

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
HUB = "https://hub.ketenhub.test"
KEYS = FileKeyRing.ephemeral()
GENERIC_DETAILS = {"The access token is invalid.", "The access token has expired."}


def a_client(
    *, client_id: str = "vdab-0a1b2c", partner: str = "vdab", scopes: frozenset[str] | None = None
) -> ClientRecord:
    return ClientRecord(
        client_id=client_id,
        partner=PartnerId(partner),
        scopes=frozenset({"exchange", "audit:read"}) if scopes is None else scopes,
        auth_method="client_secret",
        secret_hash="sha256:00",
        jwks=None,
        created_at=NOW,
    )


def a_token(
    *, keys: FileKeyRing = KEYS, issuer: str = HUB, audience: str = HUB, at: datetime = NOW
) -> str:
    token, _ = TokenIssuer(keys, issuer, audience).issue(
        a_client(), frozenset({Scope.EXCHANGE, Scope.AUDIT_READ}), at
    )
    return token


def a_verifier(keys: Any = KEYS, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(keys, HUB, HUB, **kwargs)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(claims).encode())
    return f"{head}.{body}.{b64(signature)}"


def good_claims() -> dict[str, Any]:
    return jwt.decode(a_token(), options={"verify_signature": False})


def refused(token: str, now: datetime = NOW, verifier: TokenVerifier | None = None) -> str:
    with pytest.raises(UnauthenticatedError) as caught:
        (verifier or a_verifier()).verify(token, now)
    assert caught.value.reason == "invalid-token"
    assert caught.value.detail in GENERIC_DETAILS
    return caught.value.detail


# -- issuing ------------------------------------------------------------------------


def test_an_issued_token_is_an_rfc_9068_access_token() -> None:
    token, expires_in = TokenIssuer(KEYS, HUB, HUB).issue(
        a_client(), frozenset({Scope.EXCHANGE, Scope.AUDIT_READ}), NOW
    )

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "EdDSA", "kid": KEYS.active_kid, "typ": "at+jwt"}
    assert expires_in == 900
    assert set(claims) == {
        "iss", "aud", "sub", "client_id", "partner", "scope", "iat", "nbf", "exp", "jti",
    }  # fmt: skip
    assert claims["iss"] == HUB
    assert claims["aud"] == HUB
    assert claims["sub"] == claims["client_id"] == "vdab-0a1b2c"
    assert claims["partner"] == "vdab"
    assert claims["scope"] == "audit:read exchange"
    assert claims["iat"] == claims["nbf"] == int(NOW.timestamp())
    assert claims["exp"] - claims["iat"] == 900


def test_every_token_has_its_own_jti() -> None:
    first, second = good_claims(), good_claims()
    assert first["jti"] != second["jti"]


@pytest.mark.parametrize("lifetime", [0, -1, 901, 3600])
def test_a_token_lives_at_most_fifteen_minutes(lifetime: int) -> None:
    with pytest.raises(ValueError, match="15 minutes"):
        TokenIssuer(KEYS, HUB, HUB, lifetime_s=lifetime)


def test_a_shorter_lifetime_is_kept() -> None:
    token, expires_in = TokenIssuer(KEYS, HUB, HUB, lifetime_s=300).issue(
        a_client(), frozenset({Scope.EXCHANGE}), NOW
    )
    assert expires_in == 300
    assert a_verifier().verify(token, NOW).expires_at == int(NOW.timestamp()) + 300


def test_issue_refuses_a_naive_now_and_no_scope() -> None:
    issuer = TokenIssuer(KEYS, HUB, HUB)
    with pytest.raises(ValueError, match="aware"):
        issuer.issue(a_client(), frozenset({Scope.EXCHANGE}), NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="scope"):
        issuer.issue(a_client(), frozenset(), NOW)


# -- verifying a good token -------------------------------------------------------------


def test_a_good_token_gives_its_principal() -> None:
    principal = a_verifier().verify(a_token(), NOW)

    assert principal == Principal(
        client_id="vdab-0a1b2c",
        partner=PartnerId("vdab"),
        scopes=frozenset({Scope.EXCHANGE, Scope.AUDIT_READ}),
        expires_at=int(NOW.timestamp()) + 900,
    )


def test_a_token_is_accepted_within_the_leeway() -> None:
    verifier = a_verifier(cache_size=0)
    verifier.verify(a_token(), NOW + timedelta(seconds=929))
    verifier.verify(a_token(), NOW - timedelta(seconds=30))


def test_the_media_type_form_of_typ_is_accepted() -> None:
    token = KEYS.sign(good_claims(), typ="application/at+jwt")
    assert a_verifier().verify(token, NOW).client_id == "vdab-0a1b2c"


# -- refusing ---------------------------------------------------------------------------


def test_alg_none_is_refused() -> None:
    token = forged({"alg": "none", "kid": KEYS.active_kid, "typ": "at+jwt"}, good_claims())
    refused(token)
    refused(token.rstrip("."))


def public_key_bytes(key: Ed25519PublicKey) -> list[bytes]:
    return [
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        json.dumps(KEYS.jwks()["keys"][0]).encode(),
    ]


def test_hs256_keyed_with_the_public_key_is_refused() -> None:
    public = KEYS.public_key(KEYS.active_kid)
    assert public is not None
    header = {"alg": "HS256", "kid": KEYS.active_kid, "typ": "at+jwt"}
    for secret in public_key_bytes(public):
        unsigned = forged(header, good_claims()).rsplit(".", 1)[0]
        mac = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
        refused(f"{unsigned}.{b64(mac)}")


def test_an_expired_token_is_refused_as_expired() -> None:
    assert refused(a_token(), NOW + timedelta(seconds=930)) == "The access token has expired."


def test_a_token_not_yet_valid_is_refused() -> None:
    refused(a_token(), NOW - timedelta(seconds=31))


def test_a_token_for_another_audience_is_refused() -> None:
    refused(a_token(audience="https://other.test"))


def test_a_token_from_another_issuer_is_refused() -> None:
    refused(a_token(issuer="https://evil.test"))


def test_a_token_with_an_unknown_kid_is_refused() -> None:
    refused(a_token(keys=FileKeyRing.ephemeral()))


def test_a_token_without_kid_is_refused() -> None:
    private = KEYS._signing[KEYS.active_kid]
    refused(jwt.encode(good_claims(), private, algorithm="EdDSA", headers={"typ": "at+jwt"}))


def test_a_tampered_payload_is_refused() -> None:
    head, _, signature = a_token().split(".")
    claims = good_claims() | {"partner": "hub", "scope": "exchange consent:write audit:read"}
    refused(f"{head}.{b64(json.dumps(claims).encode())}.{signature}")


def test_a_tampered_signature_is_refused() -> None:
    token = a_token()
    last = "A" if token[-2] != "A" else "B"
    refused(token[:-2] + last + token[-1])


@pytest.mark.parametrize("typ", ["JWT", "consent-receipt+jwt", None])
def test_a_token_of_another_type_is_refused(typ: str | None) -> None:
    # A consent receipt is signed by the same key; it must never pass for a token.
    private = KEYS._signing[KEYS.active_kid]
    headers: dict[str, Any] = {"kid": KEYS.active_kid, "typ": typ}
    refused(jwt.encode(good_claims(), private, algorithm="EdDSA", headers=headers))


@pytest.mark.parametrize(
    "claim", ["iss", "aud", "sub", "client_id", "partner", "scope", "iat", "nbf", "exp", "jti"]
)
def test_a_token_without_a_required_claim_is_refused(claim: str) -> None:
    claims = good_claims()
    del claims[claim]
    refused(KEYS.sign(claims, typ="at+jwt"))


@pytest.mark.parametrize(
    "change",
    [
        {"scope": "exchange admin"},
        {"scope": ""},
        {"sub": "someone-else"},
        {"partner": 7},
        {"exp": "soon"},
        {"exp": True},
        {"iat": int(NOW.timestamp()) + 3600},
    ],
)
def test_a_token_with_a_claim_of_the_wrong_shape_is_refused(change: dict[str, Any]) -> None:
    refused(KEYS.sign(good_claims() | change, typ="at+jwt"))


@pytest.mark.parametrize("token", ["", "x", "a.b.c", "a.b", "é.é.é", "x" * 9000])
def test_garbage_is_refused(token: str) -> None:
    refused(token)


# -- the cache --------------------------------------------------------------------------


class CountingKeys:
    def __init__(self) -> None:
        self.lookups = 0

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        self.lookups += 1
        return KEYS.public_key(kid)


def test_a_verified_token_is_remembered() -> None:
    keys = CountingKeys()
    verifier = a_verifier(keys)
    token = a_token()

    first = verifier.verify(token, NOW)
    second = verifier.verify(token, NOW + timedelta(seconds=60))

    assert first == second
    assert keys.lookups == 1


def test_a_remembered_token_still_expires() -> None:
    keys = CountingKeys()
    verifier = a_verifier(keys)
    token = a_token()
    verifier.verify(token, NOW)

    assert refused(token, NOW + timedelta(seconds=930), verifier) == "The access token has expired."
    assert refused(token, NOW + timedelta(seconds=930), verifier) == "The access token has expired."
    assert keys.lookups == 2


def test_a_remembered_token_is_not_valid_before_its_time() -> None:
    verifier = a_verifier()
    token = a_token()
    verifier.verify(token, NOW)
    refused(token, NOW - timedelta(seconds=31), verifier)


def test_the_cache_is_bounded() -> None:
    keys = CountingKeys()
    verifier = a_verifier(keys, cache_size=2)
    first, second, third = a_token(), a_token(), a_token()
    for token in (first, second, third):
        verifier.verify(token, NOW)
    assert keys.lookups == 3

    verifier.verify(third, NOW)
    assert keys.lookups == 3
    verifier.verify(first, NOW)
    assert keys.lookups == 4


def test_a_refused_token_is_not_remembered() -> None:
    keys = CountingKeys()
    verifier = a_verifier(keys)
    token = a_token(audience="https://other.test")
    refused(token, verifier=verifier)
    refused(token, verifier=verifier)
    assert keys.lookups == 2
