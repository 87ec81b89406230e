"""Partner API clients and their secrets.

Client secrets are 256-bit random strings made by the hub, so a single SHA-256 is
enough to store them safely (there is nothing to brute-force in a password sense)
and keeps the token endpoint fast; comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

CLIENT_SECRET_BASIC_OR_POST = "client_secret"  # noqa: S105 - a method name, not a secret
PRIVATE_KEY_JWT = "private_key_jwt"


def new_client_id(partner: str) -> str:
    return f"{partner}-{secrets.token_hex(6)}"


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_client_secret(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_client_secret(secret), stored_hash)
