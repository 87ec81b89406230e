"""A ``private_key_jwt`` client's public keys: the JWK Set it registers (RFC 7517 5).

The token endpoint verifies a client's assertions (RFC 7523 3) with these keys and
accepts ES256 and EdDSA only (CONTRACT.md 3), so a set holds EC P-256 keys
(RFC 7518 6.2) and OKP Ed25519 keys (RFC 8037 2), each public, named by a distinct
``kid`` (the assertion's header picks its key by it, RFC 7515 4.1.4).
"""

from __future__ import annotations

from typing import Any, Final

from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from hub.domain.errors import InvalidInputError

MAX_KEYS: Final = 20
MAX_KID_LENGTH: Final = 128
_CURVES: Final = {"EC": "P-256", "OKP": "Ed25519"}
_ALGORITHMS: Final = {"EC": "ES256", "OKP": "EdDSA"}
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def validate_client_jwks(jwks: object) -> dict[str, Any]:
    """The client's JWK Set, checked; ``InvalidInputError("invalid-jwks")`` otherwise.

    A member ``use`` must be ``sig``, ``alg`` must match the key type, ``key_ops``
    must allow ``verify``; the returned set holds a copy of every key as given.
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise _invalid("a JWK Set is a JSON object with a 'keys' array")
    keys: list[Any] = jwks["keys"]
    if not keys:
        raise _invalid("the JWK Set holds no key")
    if len(keys) > MAX_KEYS:
        raise _invalid(f"the JWK Set holds more than {MAX_KEYS} keys")
    checked = [_checked_key(index, key) for index, key in enumerate(keys)]
    kids = [key["kid"] for key in checked]
    if len(set(kids)) != len(kids):
        raise _invalid("every key needs its own 'kid'")
    return {"keys": checked}


def _checked_key(index: int, key: object) -> dict[str, Any]:
    where = f"keys[{index}]"
    if not isinstance(key, dict):
        raise _invalid(f"{where} is not a JSON object")
    if _PRIVATE_MEMBERS & key.keys():
        raise _invalid(f"{where} holds private key material: register the public key only")
    kty = key.get("kty")
    if kty not in _CURVES or key.get("crv") != _CURVES[kty]:
        raise _invalid(f"{where} must be an EC P-256 or an OKP Ed25519 key")
    kid = key.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        raise _invalid(f"{where} needs a 'kid' of 1 to {MAX_KID_LENGTH} characters")
    if key.get("use", "sig") != "sig":
        raise _invalid(f"{where}: 'use' must be 'sig'")
    if key.get("alg", _ALGORITHMS[kty]) != _ALGORITHMS[kty]:
        raise _invalid(f"{where}: 'alg' must be {_ALGORITHMS[kty]} for this key type")
    key_ops = key.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise _invalid(f"{where}: 'key_ops' must allow 'verify'")
    try:
        imported = JWKRegistry.import_key(dict(key))
    except (JoseError, ValueError, TypeError):
        raise _invalid(f"{where} cannot be imported as a public key") from None
    if imported.is_private:
        raise _invalid(f"{where} holds private key material: register the public key only")
    return dict(key)


def _invalid(detail: str) -> InvalidInputError:
    return InvalidInputError("invalid-jwks", f"Invalid JWK Set: {detail}.")
