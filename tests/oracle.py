"""Deny by default (issue #3, invariant 1) restated as plainly as possible: a test oracle.

"No field leaves without a valid agreement version, role, purpose and, where required,
consent." It shares no code with ``hub.policy.decide``: it computes the Brussels day
itself and finds the version in force by scanning every agreement. Used by
tests/unit/test_deny_by_default.py (against ``decide``) and
tests/api/test_deny_by_default_api.py (against the running hub).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from consent.model import Consent
from hub.domain.agreements import Agreement, PolicySet
from hub.domain.exchange import ExchangeRequest
from hub.domain.ids import FieldName

BRUSSELS = ZoneInfo("Europe/Brussels")


@dataclass(frozen=True)
class Permit:
    """What allows one field: the agreement versions, and consents where they need one."""

    agreements: frozenset[str]
    """``id@version`` of every version in force that allows the field on its own terms."""
    consents: frozenset[str]
    """Ids of every consent that matches the field (CONTRACT.md 3's wording)."""

    @property
    def allows(self) -> bool:
        return bool(self.agreements)


def in_force(policies: PolicySet, now: datetime) -> list[Agreement]:
    """Per id, the highest version whose window holds the Brussels day of ``now``."""
    day: date = now.astimezone(BRUSSELS).date()
    best: dict[str, Agreement] = {}
    for agreement in policies.agreements:
        open_ = agreement.valid_from <= day and (
            agreement.valid_until is None or day <= agreement.valid_until
        )
        if open_ and (agreement.id not in best or agreement.version > best[agreement.id].version):
            best[agreement.id] = agreement
    return list(best.values())


def permit(
    request: ExchangeRequest,
    field: FieldName,
    policies: PolicySet,
    consents: Sequence[Consent],
    participant: str,
    now: datetime,
) -> Permit:
    """A field may leave only if the source's catalogue has it and a version in force
    names the source as provider, the requester among its recipients, the purpose, the
    field and the actor's role, and, when it needs consent, an active consent of this
    participant to this recipient for this purpose and field exists (now < valid_until).
    """
    matching = frozenset(
        c.id
        for c in consents
        if c.participant == participant
        and c.recipient == request.requester
        and c.purpose == request.purpose
        and field in c.fields
        and c.revoked_at is None
        and (c.valid_until is None or now < c.valid_until)
    )
    if field not in policies.catalogue.get(request.source, {}):
        return Permit(frozenset(), matching)
    allowing = frozenset(
        f"{a.id}@{a.version}"
        for a in in_force(policies, now)
        if a.provider == request.source
        and request.requester in a.recipients
        and a.purpose == request.purpose
        and field in a.fields
        and request.actor.role in a.roles
        and (not a.consent_required or matching)
    )
    return Permit(allowing, matching)
