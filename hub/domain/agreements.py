"""Partners, the field catalogue and processing agreements (CONTRACT.md section 1).

A ``PolicySet`` is the whole policy directory after validation: immutable, and
indexed once so that the decision never scans what it does not need.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from hub.domain.ids import FieldName, PartnerId, Purpose, Role

HUB_PARTNER = PartnerId("hub")
"""The hub operator's reserved partner id (CONTRACT.md section 3)."""


@dataclass(frozen=True, slots=True)
class SourceConfig:
    adapter: str
    base_url: str
    timeout_s: float
    options: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Partner:
    id: PartnerId
    name: str
    kind: str
    source: SourceConfig | None = None


@dataclass(frozen=True, slots=True)
class CatalogueField:
    source: PartnerId
    name: FieldName
    category: str
    special: bool


@dataclass(frozen=True, slots=True)
class Agreement:
    id: str
    version: int
    title: str
    provider: PartnerId
    recipients: frozenset[PartnerId]
    purpose: Purpose
    legal_basis: str
    special_category_condition: str | None
    fields: frozenset[FieldName]
    roles: frozenset[Role]
    consent_required: bool
    valid_from: date
    valid_until: date | None
    retention_days: int

    @property
    def ref(self) -> str:
        """How the audit log names it: ``id@version``."""
        return f"{self.id}@{self.version}"

    def valid_on(self, day: date) -> bool:
        """``valid_until`` is inclusive; days are Europe/Brussels calendar days."""
        return self.valid_from <= day and (self.valid_until is None or day <= self.valid_until)


@dataclass(frozen=True)
class PolicySet:
    partners: Mapping[PartnerId, Partner]
    catalogue: Mapping[PartnerId, Mapping[FieldName, CatalogueField]]
    agreements: tuple[Agreement, ...]
    _by_provider: Mapping[PartnerId, tuple[Agreement, ...]] = field(init=False, repr=False)
    _versions: Mapping[str, tuple[Agreement, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_provider: defaultdict[PartnerId, list[Agreement]] = defaultdict(list)
        versions: defaultdict[str, list[Agreement]] = defaultdict(list)
        for agreement in self.agreements:
            by_provider[agreement.provider].append(agreement)
            versions[agreement.id].append(agreement)
        object.__setattr__(self, "_by_provider", {k: tuple(v) for k, v in by_provider.items()})
        object.__setattr__(
            self,
            "_versions",
            {
                k: tuple(sorted(v, key=lambda a: a.version, reverse=True))
                for k, v in versions.items()
            },
        )

    def is_source(self, partner: PartnerId) -> bool:
        found = self.partners.get(partner)
        return found is not None and found.source is not None

    def fields_of(self, source: PartnerId) -> Mapping[FieldName, CatalogueField]:
        return self.catalogue.get(source, {})

    def provided_by(self, provider: PartnerId) -> tuple[Agreement, ...]:
        """Every version of every agreement with this provider, valid or not."""
        return self._by_provider.get(provider, ())

    def in_force(self, agreement_id: str, day: date) -> Agreement | None:
        """The highest version of ``agreement_id`` valid on ``day`` (CONTRACT.md 3)."""
        for version in self._versions.get(agreement_id, ()):
            if version.valid_on(day):
                return version
        return None

    def all_in_force(self, day: date) -> tuple[Agreement, ...]:
        found = (self.in_force(agreement_id, day) for agreement_id in self._versions)
        return tuple(sorted((a for a in found if a is not None), key=lambda a: a.id))

    def known_field(self, name: FieldName) -> bool:
        return any(name in fields for fields in self.catalogue.values())
