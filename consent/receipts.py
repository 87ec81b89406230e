"""The consent receipt: what the hub signs so the participant can keep proof of a consent.

The claims name the participant by the hub's pseudonym, not the INSZ: a receipt
travels through mail and apps, and must not become a carrier of the national number.
"""

from __future__ import annotations

from typing import Any

from consent.model import Consent
from hub.domain.moments import iso_utc

RECEIPT_TYPE = "consent-receipt+jwt"


def receipt_claims(consent: Consent, *, issuer: str) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": issuer,
        "iat": int(consent.granted_at.timestamp()),
        "jti": consent.id,
        "sub": consent.participant,
        "recipient": consent.recipient,
        "purpose": consent.purpose,
        "fields": sorted(consent.fields),
        "granted_at": iso_utc(consent.granted_at),
        "valid_until": iso_utc(consent.valid_until),
    }
    if consent.recorded_by is not None:
        claims["recorded_by"] = consent.recorded_by
    return claims
