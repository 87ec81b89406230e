"""A consent a participant gave to one recipient, for one purpose, over named fields.

Pure: no storage, no clock. The participant is held as the hub's keyed pseudonym,
never as the INSZ (CONTRACT.md section 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hub.domain.ids import FieldName, PartnerId, Purpose


class ConsentStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Consent:
    id: str
    participant: str
    """The participant's keyed pseudonym."""
    recipient: PartnerId
    purpose: Purpose
    fields: frozenset[FieldName]
    granted_at: datetime
    valid_until: datetime | None
    revoked_at: datetime | None = None
    recorded_by: PartnerId | None = None

    def status_at(self, now: datetime) -> ConsentStatus:
        if self.revoked_at is not None:
            return ConsentStatus.REVOKED
        if self.valid_until is not None and now >= self.valid_until:
            return ConsentStatus.EXPIRED
        return ConsentStatus.ACTIVE

    def covers(self, recipient: PartnerId, purpose: Purpose, field: FieldName) -> bool:
        """Same recipient, purpose and field: the consent is about this, whatever its status."""
        return self.recipient == recipient and self.purpose == purpose and field in self.fields

    def matches(
        self, recipient: PartnerId, purpose: Purpose, field: FieldName, now: datetime
    ) -> bool:
        """CONTRACT.md 3: same recipient, purpose and field, active, and now before valid_until."""
        return (
            self.covers(recipient, purpose, field) and self.status_at(now) is ConsentStatus.ACTIVE
        )
