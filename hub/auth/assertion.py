"""``private_key_jwt`` client authentication: RFC 7523 2.2 and 3, as CONTRACT.md 3
narrows it (OpenID Connect Core 9).

The assertion is a JWT signed with the client's registered key, ES256 or EdDSA only
(never the algorithm the token names, RFC 8725 3.1); ``iss`` = ``sub`` = the client
id, ``aud`` the token endpoint's URL, at most five minutes from ``iat`` to ``exp``,
and a ``jti``. The ``jti`` is only noted here (``PrivateKeyJwt.used``): the token
endpoint records it once authlib has succeeded, and refuses one seen before.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from hub.domain.clients import PRIVATE_KEY_JWT

if TYPE_CHECKING:
    from collections.abc import Callable

    from hub.ports import ClientRecord

ASSERTION_ALGORITHMS: Final = ("ES256", "EdDSA")
MAX_ASSERTION_LIFETIME_S: Final = 300
ASSERTION_LEEWAY_S: Final = 30
MAX_JTI_LENGTH: Final = 256
AUTHENTICATION_FAILED: Final = "Client authentication failed."
"""All an unauthenticated caller learns: not which of client, secret or key was wrong."""


class RegisteredClient(Protocol):
    @property
    def record(self) -> ClientRecord: ...


@dataclass(frozen=True, slots=True)
class UsedAssertion:
    client_id: str
    jti: str
    expires_at: datetime


def _quiet_eddsa() -> JWSAlgModel:
    # joserfc warns that RFC 9864 deprecates the polymorphic "EdDSA" in favour of
    # "Ed25519". CONTRACT.md names EdDSA, and a client's keys are Ed25519 only
    # (hub.auth.jwks), so the curve is never ambiguous here.
    algorithm = copy.copy(JWSRegistry.algorithms["EdDSA"])
    algorithm.security_warning = None
    return algorithm


class _AssertionRegistry(JWSRegistry):
    """ES256 and EdDSA only (CONTRACT.md 3); RFC 8725 3.1: never what the token says."""

    def __init__(self) -> None:
        # RFC 7515 4: a header parameter the hub does not know is ignored unless "crit".
        super().__init__(algorithms=list(ASSERTION_ALGORITHMS), strict_check_header=False)
        self.algorithms = {"ES256": JWSRegistry.algorithms["ES256"], "EdDSA": _quiet_eddsa()}


_ASSERTION_REGISTRY: Final = _AssertionRegistry()


class AssertionRejectedError(InvalidClientError):  # type: ignore[misc]  # authlib is untyped
    """The client proved its key; the description may say what is wrong with the rest."""

    def __init__(self, description: str) -> None:
        super().__init__(description=description)


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]  # authlib is untyped
    """RFC 7523 2.2 and 3, as the contract narrows it (CONTRACT.md 3)."""

    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, *, token_url: str, now: datetime) -> None:
        super().__init__(validate_jti=True, leeway=ASSERTION_LEEWAY_S)
        self._token_url = token_url
        self._now = now
        self.used: UsedAssertion | None = None

    def get_audiences(self) -> list[str]:
        """RFC 7523 3 point 3: ``aud`` identifies the token endpoint by its URL."""
        return [self._token_url]

    def resolve_client_public_key(self, client: RegisteredClient) -> KeySet:
        jwks = client.record.jwks
        if client.record.auth_method != PRIVATE_KEY_JWT or not jwks:
            raise InvalidClientError(description=AUTHENTICATION_FAILED)
        try:
            return KeySet.import_key_set({"keys": list(jwks["keys"])})
        except (JoseError, ValueError, TypeError, KeyError):
            raise InvalidClientError(description=AUTHENTICATION_FAILED) from None

    def process_assertion_claims(
        self, assertion: str, resolve_key: KeySet | Callable[..., Any]
    ) -> dict[str, Any]:
        """Verify the signature with the allowed algorithms only, then the claims."""
        try:
            token = jwt.decode(assertion, resolve_key, registry=_ASSERTION_REGISTRY)
        except (JoseError, ValueError, TypeError):
            raise InvalidClientError(description=AUTHENTICATION_FAILED) from None
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: dict[str, Any]) -> None:
        """RFC 7523 3: iss, sub, aud, exp; here also iat and jti, and a short life."""
        registry = jwt.JWTClaimsRegistry(
            now=int(self._now.timestamp()),
            leeway=self.leeway,
            iss={"essential": True},
            sub={"essential": True},
            aud={"essential": True, "values": self.get_audiences()},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except MissingClaimError:
            raise AssertionRejectedError(
                "The client assertion needs iss, sub, aud, exp, iat and jti."
            ) from None
        except ExpiredTokenError:
            raise AssertionRejectedError("The client assertion has expired.") from None
        except InvalidClaimError as error:
            raise AssertionRejectedError(_claim_problem(error.claim)) from None
        except JoseError:
            raise AssertionRejectedError("The client assertion's claims are invalid.") from None
        if claims["iss"] != claims["sub"]:
            raise AssertionRejectedError("The client assertion's iss and sub must be equal.")
        if claims["exp"] - claims["iat"] > MAX_ASSERTION_LIFETIME_S:
            raise AssertionRejectedError(
                "The client assertion may live at most 300 seconds from iat to exp."
            )
        jti = claims["jti"]
        if not jti or len(jti) > MAX_JTI_LENGTH:
            raise AssertionRejectedError(
                f"The client assertion's jti must be 1 to {MAX_JTI_LENGTH} characters."
            )
        self.validate_jti(claims, jti)

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        """Only noted here: the endpoint records it once authlib has succeeded."""
        # Kept past ``exp`` by the leeway, for as long as the assertion is accepted.
        expires_at = datetime.fromtimestamp(claims["exp"] + self.leeway, UTC)
        self.used = UsedAssertion(client_id=claims["sub"], jti=jti, expires_at=expires_at)
        return True


def _claim_problem(claim: str) -> str:
    if claim == "aud":
        return "The client assertion's aud must be the token endpoint's URL."
    if claim in {"iat", "nbf"}:
        return "The client assertion is not valid yet."
    return f"The client assertion's {claim} claim is invalid."
