"""The decision: which fields of a request may leave the hub, and why not the others.

``decide`` is pure and total: no I/O, no clock, no logging; every requested field
gets exactly one verdict. The reasons and their precedence are CONTRACT.md
section 3's, checked in this order for each field:

1. ``unknown-field``        the field is not in the source's catalogue;
2. ``no-agreement``         no agreement (any version, valid or not) has this source as
                            provider and the requester among its recipients;
3. ``purpose-not-allowed``  there are such agreements, none for this purpose;
4. ``field-not-allowed``    one is for this purpose, but no version in force lists the
                            field (a field only in a replaced version lands here);
5. ``agreement-expired``    the field is only in agreements whose id has no version
                            valid today (expired, or not yet valid);
6. ``role-not-allowed``     the field is in a version in force, the actor's role is not;
7. ``no-consent`` / ``consent-revoked`` / ``consent-expired``
                            every version in force that allows field and role needs
                            consent, and no active consent matches;
8. ``not-available`` is decided after the source answered (``Decision.after_fetch``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from consent.model import Consent, ConsentStatus
from hub.domain.agreements import Agreement, PolicySet
from hub.domain.exchange import Decision, ExchangeRequest, FieldVerdict, Reason
from hub.domain.ids import FieldName

BRUSSELS = ZoneInfo("Europe/Brussels")


def brussels_day(now: datetime) -> date:
    """Agreement dates are calendar days in Europe/Brussels (CONTRACT.md 3)."""
    return now.astimezone(BRUSSELS).date()


def decide(
    request: ExchangeRequest,
    policies: PolicySet,
    consents: Iterable[Consent],
    now: datetime,
) -> Decision:
    """Decide every field of ``request`` on its own.

    ``consents`` may hold any consents; only those of the requester for the request's
    purpose count (the caller passes the participant's, already selected by pseudonym).
    """
    day = brussels_day(now)
    catalogue = policies.fields_of(request.source)
    to_requester = [
        a for a in policies.provided_by(request.source) if request.requester in a.recipients
    ]
    for_purpose = [a for a in to_requester if a.purpose == request.purpose]
    in_force: list[Agreement] = []
    expired: list[Agreement] = []
    for agreement_id in sorted({a.id for a in for_purpose}):
        current = policies.in_force(agreement_id, day)
        if current is None:
            expired.extend(a for a in for_purpose if a.id == agreement_id)
        elif (
            current.provider == request.source
            and request.requester in current.recipients
            and current.purpose == request.purpose
        ):
            in_force.append(current)
    relevant = [
        c for c in consents if c.recipient == request.requester and c.purpose == request.purpose
    ]

    def verdict(field: FieldName) -> FieldVerdict:
        if field not in catalogue:
            return FieldVerdict(field, Reason.UNKNOWN_FIELD)
        if not to_requester:
            return FieldVerdict(field, Reason.NO_AGREEMENT)
        if not for_purpose:
            return FieldVerdict(field, Reason.PURPOSE_NOT_ALLOWED)
        listing = [a for a in in_force if field in a.fields]
        if not listing:
            if any(field in a.fields for a in expired):
                return FieldVerdict(field, Reason.AGREEMENT_EXPIRED)
            return FieldVerdict(field, Reason.FIELD_NOT_ALLOWED)
        for_role = [a for a in listing if request.actor.role in a.roles]
        if not for_role:
            return FieldVerdict(field, Reason.ROLE_NOT_ALLOWED)
        # Prefer an agreement that needs no consent; among equals, the lowest id.
        for_role.sort(key=lambda a: (a.consent_required, a.id))
        if not for_role[0].consent_required:
            return FieldVerdict(field, None, for_role[0])
        return _by_consent(field, for_role[0], relevant, now)

    return Decision(tuple(verdict(f) for f in request.fields))


def _by_consent(
    field: FieldName, agreement: Agreement, consents: Sequence[Consent], now: datetime
) -> FieldVerdict:
    about_field = [c for c in consents if field in c.fields]
    active = [c for c in about_field if c.status_at(now) is ConsentStatus.ACTIVE]
    if active:
        # The most recently granted active consent is the one named in the audit log.
        chosen = max(active, key=lambda c: (c.granted_at, c.id))
        return FieldVerdict(field, None, agreement, chosen.id)
    if not about_field:
        return FieldVerdict(field, Reason.NO_CONSENT)
    # Several lapsed consents: the participant's latest word on it speaks.
    latest = max(about_field, key=lambda c: (c.granted_at, c.id))
    if latest.status_at(now) is ConsentStatus.REVOKED:
        return FieldVerdict(field, Reason.CONSENT_REVOKED)
    return FieldVerdict(field, Reason.CONSENT_EXPIRED)
