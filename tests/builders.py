"""Test-data builders: each test shows only the one thing it varies (STYLE.md habit 10)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any

import jwt

from consent.model import Consent
from hub.domain.agreements import Agreement, CatalogueField, Partner, PolicySet, SourceConfig
from hub.domain.audit import AuditEntry
from hub.domain.exchange import Actor, ExchangeRequest
from hub.domain.ids import FieldName, Insz, PartnerId, Purpose, Role

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
SOURCE = PartnerId("vdab")
REQUESTER = PartnerId("gtb")
PURPOSE = Purpose("trajectory-coordination")
ROLE = Role("casemanager-work")
OPEN = FieldName("trajectory.status")
PLAN = FieldName("trajectory.plan")
ICF = FieldName("icf.assessment")
PARTICIPANT = Insz.parse("85073003328")
PSEUDONYM = "p" * 64


def make_insz(rng: random.Random, *, bis: bool = False, after_2000: bool | None = None) -> str:
    """A valid synthetic INSZ."""
    after = rng.random() < 0.3 if after_2000 is None else after_2000
    year = rng.randint(0, 25) if after else rng.randint(30, 99)
    month = rng.randint(1, 12) + (rng.choice((20, 40)) if bis else 0)
    day = rng.randint(1, 28)
    serial = rng.randint(1, 997)
    body = f"{year:02d}{month:02d}{day:02d}{serial:03d}"
    check = 97 - int(("2" if after else "") + body) % 97
    return f"{body}{check:02d}"


def an_agreement(**overrides: object) -> Agreement:
    values: dict[str, object] = {
        "id": "vdab-coordination",
        "version": 1,
        "title": "Coordination",
        "provider": SOURCE,
        "recipients": frozenset({REQUESTER}),
        "purpose": PURPOSE,
        "legal_basis": "GDPR 6(1)(e)",
        "special_category_condition": "GDPR 9(2)(a)",
        "fields": frozenset({OPEN, PLAN, ICF}),
        "roles": frozenset({ROLE}),
        "consent_required": False,
        "valid_from": date(2026, 1, 1),
        "valid_until": date(2027, 12, 31),
        "retention_days": 30,
    }
    values.update(overrides)
    return Agreement(**values)  # type: ignore[arg-type]


def a_policy_set(
    *agreements: Agreement,
    extra_fields: tuple[str, ...] = (),
    catalogue: Mapping[str, Iterable[str]] | None = None,
    partners: Iterable[str] = (),
) -> PolicySet:
    """One source (``vdab``) by default; ``catalogue`` names every source and its fields
    instead, and ``partners`` adds partners that hold no data."""
    if catalogue is None:
        catalogue = {SOURCE: [OPEN, PLAN, ICF, *extra_fields]}
    fields = {
        PartnerId(source): MappingProxyType(
            {
                FieldName(name): CatalogueField(
                    PartnerId(source),
                    FieldName(name),
                    "health" if name == ICF else "trajectory",
                    name == ICF,
                )
                for name in names
            }
        )
        for source, names in catalogue.items()
    }
    members = {
        REQUESTER: Partner(REQUESTER, "GTB", "casemanager-work"),
        PartnerId("ocmw-gent"): Partner(PartnerId("ocmw-gent"), "OCMW", "welfare"),
        **{PartnerId(p): Partner(PartnerId(p), p.upper(), "partner") for p in partners},
        **{
            source: Partner(
                source, source.upper(), "source", SourceConfig("rest", "http://127.0.0.1:1", 3)
            )
            for source in fields
        },
    }
    return PolicySet(members, fields, tuple(agreements) if agreements else (an_agreement(),))


def a_request(*fields: str, **overrides: object) -> ExchangeRequest:
    values: dict[str, object] = {
        "requester": REQUESTER,
        "participant": PARTICIPANT,
        "source": SOURCE,
        "purpose": PURPOSE,
        "fields": tuple(FieldName(f) for f in (fields or (OPEN,))),
        "actor": Actor(ROLE, "u-1"),
    }
    values.update(overrides)
    return ExchangeRequest(**values)  # type: ignore[arg-type]


def a_consent(**overrides: object) -> Consent:
    values: dict[str, object] = {
        "id": "c-1",
        "participant": PSEUDONYM,
        "recipient": REQUESTER,
        "purpose": PURPOSE,
        "fields": frozenset({ICF}),
        "granted_at": NOW - timedelta(days=1),
        "valid_until": NOW + timedelta(days=30),
        "revoked_at": None,
    }
    values.update(overrides)
    return Consent(**values)  # type: ignore[arg-type]


def an_audit_entry(n: int = 1, **overrides: object) -> AuditEntry:
    """A denied exchange's audit entry; ``n`` makes its participant and actor its own."""
    values: dict[str, object] = {
        "at": "2026-06-15T10:00:00.000000Z",
        "kind": "exchange",
        "requester": "gtb",
        "source": "vdab",
        "participant": f"{n:064x}",
        "purpose": "trajectory-coordination",
        "actor": {"role": "casemanager-work", "id": f"actor-{n}"},
        "decision": "denied",
        "reason": "nothing-disclosed",
        "fields_requested": ["trajectory.status"],
        "fields_disclosed": [],
        "withheld": [{"field": "trajectory.status", "reason": "field-not-allowed"}],
        "agreement": None,
        "agreements": [],
        "consents": [],
        "disclosure_id": None,
    }
    values.update(overrides)
    return AuditEntry(**values)  # type: ignore[arg-type]


def an_assertion_form(
    client_id: str,
    key: Any,
    *,
    now: int,
    audience: str = "http://hub.test/oauth/token",
    kid: str = "k1",
) -> dict[str, str]:
    """A token request by ``private_key_jwt`` (RFC 7523 2.2): an ES256 assertion living
    two minutes from ``now`` (epoch seconds), with a fresh ``jti``."""
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 120,
        "jti": str(uuid.uuid4()),
    }
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid}),
    }
