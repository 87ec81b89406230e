"""The success answers as the OpenAPI document describes them (CONTRACT.md 3 to 5).

Documentation only: the routes build their answers themselves (the exchange answer
is the exact bytes encoded before its audit record committed), and these models are
never used to validate or filter them. The fuzz run (tests/api/test_openapi_fuzz.py)
checks every answer against them instead. Members the contract names are required;
more members are allowed, so that adding one is not a breaking change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Jwks(_Open):
    """RFC 7517 5: the hub's public keys (tokens, consent receipts, audit checkpoints)."""

    keys: list[dict[str, Any]]


class CatalogueField(_Open):
    source: str
    name: str
    category: str
    special: bool


class AgreementInForce(_Open):
    id: str
    version: int
    title: str
    provider: str
    recipients: list[str]
    purpose: str
    legal_basis: str
    special_category_condition: str | None
    fields: list[str]
    roles: list[str]
    consent_required: bool
    valid_from: str
    valid_until: str | None
    retention_days: int


class Withheld(_Open):
    field: str
    reason: str


class Disclosure(_Open):
    """``200`` of ``POST /v1/exchange``: at least one field disclosed."""

    disclosure_id: str
    participant: str
    source: str
    purpose: str
    data: dict[str, Any]
    withheld: list[Withheld]
    audit_seq: int


class ConsentItem(_Open):
    id: str
    participant: str
    recipient: str
    purpose: str
    fields: list[str]
    status: Literal["active", "revoked", "expired"]
    valid_until: str | None
    granted_at: str
    revoked_at: str | None


class GrantedConsent(ConsentItem):
    """``201`` of ``POST /v1/consents``; ``receipt`` is a compact JWS signed by the hub."""

    receipt: str


class RevokedConsent(_Open):
    id: str
    status: Literal["revoked"]
    revoked_at: str


class AuditEvent(_Open):
    """An audit event; ``participant`` is a keyed pseudonym, never the INSZ."""

    seq: int
    at: str
    requester: str
    source: str
    participant: str
    purpose: str
    actor: dict[str, str]
    decision: Literal["disclosed", "denied", "failed"]
    fields_disclosed: list[str]
    withheld: list[Withheld]
    agreement: str | None
    hash: str
    prev_hash: str


class Verification(_Open):
    """``ok`` and, when it is false, ``first_bad_seq``: the first record that is not right."""

    ok: bool
    entries: int
    head: str | None
    first_bad_seq: int | None = None


class _Page(_Open):
    next_cursor: str | None


class CataloguePage(_Page):
    items: list[CatalogueField]


class AgreementPage(_Page):
    items: list[AgreementInForce]


class ConsentPage(_Page):
    items: list[ConsentItem]


class AuditEventPage(_Page):
    items: list[AuditEvent]


DOCUMENTED: tuple[type[BaseModel], ...] = (
    Jwks,
    CataloguePage,
    AgreementPage,
    Disclosure,
    GrantedConsent,
    ConsentPage,
    RevokedConsent,
    AuditEventPage,
    Verification,
)
"""Every answer model the document carries as a component (with the ones they use)."""
