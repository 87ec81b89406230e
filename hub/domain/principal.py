"""Who is calling: the partner behind a verified access token."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hub.domain.agreements import HUB_PARTNER
from hub.domain.ids import PartnerId


class Scope(StrEnum):
    """OAuth scopes of the partner API (CONTRACT.md 3)."""

    EXCHANGE = "exchange"
    CONSENT_WRITE = "consent:write"
    AUDIT_READ = "audit:read"


ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: str
    partner: PartnerId
    scopes: frozenset[Scope]
    expires_at: int
    """Unix seconds: the token's ``exp``."""

    @property
    def is_operator(self) -> bool:
        return self.partner == HUB_PARTNER
