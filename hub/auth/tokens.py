"""JWT access tokens (RFC 9068), issued by the token endpoint and checked on every call.

A token is a compact JWS signed by the hub's active key (``hub.auth.keys``), with
header ``typ: at+jwt`` (RFC 9068 2.1) and the claims ``iss``, ``aud``, ``sub`` (the
client id: the client acts for itself, RFC 9068 2.2), ``client_id``, ``partner``,
``scope``, ``iat``, ``nbf``, ``exp`` and ``jti``. Its lifetime is at most 15 minutes
(CONTRACT.md 3).

Verification follows RFC 9068 4 and RFC 8725: one algorithm is allowed (EdDSA), so
``alg: none`` and an HMAC keyed with the public key are refused before any key is
used; the key is the hub's own key named by ``kid``; ``typ`` must say access token;
issuer, audience and times are checked against ``now`` with a small leeway for clock
skew. Every failure is the same ``UnauthenticatedError`` whose detail says nothing of
the cause beyond "expired", so a caller learns nothing it could use to forge one.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

import jwt

from hub.domain.errors import UnauthenticatedError
from hub.domain.ids import PartnerId
from hub.domain.principal import Principal, Scope
from hub.ports import SilentTelemetry, Telemetry

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from hub.ports import ClientRecord, KeyRing

ACCESS_TOKEN_TYP: Final = "at+jwt"  # noqa: S105  # a media type, not a password
_ACCEPTED_TYPS: Final = frozenset({"at+jwt", "application/at+jwt"})
"""RFC 9068 4: ``typ`` is ``at+jwt`` or ``application/at+jwt`` (case-insensitive)."""
ALGORITHMS: Final = ("EdDSA",)
MAX_LIFETIME_S: Final = 900
LEEWAY_S: Final = 30
CACHE_SIZE: Final = 10_000
MAX_TOKEN_LENGTH: Final = 8192
_REQUIRED_CLAIMS: Final = ("iss", "aud", "sub", "client_id", "partner", "scope")
_REQUIRED_TIMES: Final = ("iat", "nbf", "exp")
_INVALID: Final = "The access token is invalid."
_EXPIRED: Final = "The access token has expired."


def format_scope(scopes: Iterable[Scope]) -> str:
    """The ``scope`` value (RFC 6749 3.3): space-separated, in a stable order."""
    return " ".join(sorted(scope.value for scope in scopes))


class PublicKeys(Protocol):
    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The hub's public key named ``kid``, or None."""


class TokenIssuer:
    """Makes the access token of a client authenticated at the token endpoint."""

    def __init__(
        self, keyring: KeyRing, issuer: str, audience: str, lifetime_s: int = MAX_LIFETIME_S
    ) -> None:
        if not 0 < lifetime_s <= MAX_LIFETIME_S:
            raise ValueError("an access token lives at most 15 minutes (CONTRACT.md 3)")
        self._keyring = keyring
        self._issuer = issuer
        self._audience = audience
        self._lifetime_s = lifetime_s

    def issue(
        self, client: ClientRecord, scopes: frozenset[Scope], now: datetime
    ) -> tuple[str, int]:
        """The signed token and its lifetime in seconds (the response's ``expires_in``)."""
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        if not scopes:
            raise ValueError("a token carries at least one scope")
        issued_at = int(now.timestamp())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": client.client_id,
            "client_id": client.client_id,
            "partner": client.partner,
            "scope": format_scope(scopes),
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + self._lifetime_s,
            "jti": secrets.token_urlsafe(16),
        }
        return self._keyring.sign(claims, typ=ACCESS_TOKEN_TYP), self._lifetime_s


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    not_before: int
    expires: int


class TokenVerifier:
    """Checks a bearer token (RFC 6750) and says who is calling.

    Verified tokens are remembered (least recently used first out, at most
    ``cache_size``) until they expire, because partners reuse a token for many
    calls and a signature check costs about a hundred microseconds. The cache is
    keyed by the whole token, so a changed token is never found in it.
    """

    def __init__(
        self,
        keyring: PublicKeys,
        issuer: str,
        audience: str,
        *,
        leeway_s: int = LEEWAY_S,
        cache_size: int = CACHE_SIZE,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._telemetry: Telemetry = telemetry or SilentTelemetry()
        self._keyring = keyring
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        self._cache_size = cache_size
        self._cache: OrderedDict[str, _Verified] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: str, now: datetime) -> Principal:
        """The principal of a valid token; ``UnauthenticatedError`` otherwise (counted as
        ``invalid_token``, or ``expired_token`` for a token that was valid once)."""
        try:
            return self._check(token, now)
        except UnauthenticatedError as refused:
            expired = refused.detail == _EXPIRED
            self._telemetry.token_refused("bearer", "expired_token" if expired else "invalid_token")
            raise

    def _check(self, token: str, now: datetime) -> Principal:
        at = now.timestamp()
        with self._lock:
            known = self._cache.get(token)
            if known is not None:
                if self._in_time(known, at):
                    self._cache.move_to_end(token)
                    return known.principal
                if at >= known.expires + self._leeway_s:
                    del self._cache[token]
                    raise UnauthenticatedError("invalid-token", _EXPIRED)
                raise UnauthenticatedError("invalid-token", _INVALID)
        verified = self._verify(token, at)
        with self._lock:
            self._cache[token] = verified
            self._cache.move_to_end(token)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return verified.principal

    def _in_time(self, verified: _Verified, at: float) -> bool:
        leeway = self._leeway_s
        return verified.not_before - leeway <= at < verified.expires + leeway

    def _verify(self, token: str, at: float) -> _Verified:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise UnauthenticatedError("invalid-token", _INVALID)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise UnauthenticatedError("invalid-token", _INVALID) from None
        kid, typ = header.get("kid"), header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPS:
            raise UnauthenticatedError("invalid-token", _INVALID)
        key = self._keyring.public_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise UnauthenticatedError("invalid-token", _INVALID)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=self._audience,
                issuer=self._issuer,
                # Times are checked below against the caller's `now`, not the wall clock.
                options={
                    "require": [*_REQUIRED_CLAIMS, *_REQUIRED_TIMES, "jti"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            raise UnauthenticatedError("invalid-token", _INVALID) from None
        verified = _verified_claims(claims)
        if at >= verified.expires + self._leeway_s:
            raise UnauthenticatedError("invalid-token", _EXPIRED)
        issued_at = claims["iat"]
        if not self._in_time(verified, at) or issued_at > at + self._leeway_s:
            raise UnauthenticatedError("invalid-token", _INVALID)
        return verified


def _verified_claims(claims: dict[str, Any]) -> _Verified:
    """The principal of signature-checked claims; rejects a claim of the wrong shape."""
    times = [claims[name] for name in _REQUIRED_TIMES]
    texts = [claims[name] for name in ("sub", "client_id", "partner", "scope", "jti")]
    if any(isinstance(t, bool) or not isinstance(t, int) for t in times) or any(
        not isinstance(text, str) for text in texts
    ):
        raise UnauthenticatedError("invalid-token", _INVALID)
    client_id, partner, scope = claims["client_id"], claims["partner"], claims["scope"]
    if claims["sub"] != client_id:
        raise UnauthenticatedError("invalid-token", _INVALID)
    try:
        scopes = frozenset(Scope(value) for value in scope.split())
    except ValueError:
        raise UnauthenticatedError("invalid-token", _INVALID) from None
    if not scopes:
        raise UnauthenticatedError("invalid-token", _INVALID)
    return _Verified(
        principal=Principal(
            client_id=client_id,
            partner=PartnerId(partner),
            scopes=scopes,
            expires_at=claims["exp"],
        ),
        not_before=claims["nbf"],
        expires=claims["exp"],
    )
