"""Consents: a partner records a consent given to it, lists and revokes its own (CONTRACT.md 3).

Evidence is personal data: it is sealed under the participant's data key
(``hub.services.datakeys``), so erasing the participant shreds it.

A revoke commits in a write transaction, which the exchange's confirming
transaction serialises with (see ``hub.services.exchange``): once ``revoke``
returns, no exchange decided afterwards can disclose under that consent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from consent.model import Consent
from consent.receipts import RECEIPT_TYPE, receipt_claims
from hub.domain.agreements import PolicySet
from hub.domain.errors import ForbiddenError, InvalidInputError, NotFoundError
from hub.domain.ids import FieldName, Insz, PartnerId, Purpose
from hub.domain.principal import Principal
from hub.ports import Clock, Database, KeyRing, UnitOfWork
from hub.services.datakeys import ErasedError, ParticipantSealer, Shredded
from hub.services.paging import Page, check_limit, decode_cursor, encode_cursor

log = structlog.get_logger("hub.consents")


@dataclass(frozen=True, slots=True)
class GrantedConsent:
    consent: Consent
    receipt: str


class ConsentService:
    def __init__(
        self,
        *,
        policies: PolicySet,
        db: Database,
        keys: KeyRing,
        clock: Clock,
        issuer: str,
        sealer: ParticipantSealer,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._sealer = sealer
        self._policies = policies
        self._db = db
        self._keys = keys
        self._clock = clock
        self._issuer = issuer
        self._new_id = new_id

    async def grant(
        self,
        principal: Principal,
        *,
        participant: Insz,
        recipient: PartnerId,
        purpose: Purpose,
        fields: Sequence[FieldName],
        valid_until: datetime | None,
        evidence: str | None,
    ) -> GrantedConsent:
        if recipient != principal.partner:
            raise ForbiddenError(
                "recipient-not-allowed",
                "A partner records only consents given to itself: recipient must be the "
                "token's partner.",
            )
        unknown = [f for f in fields if not self._policies.known_field(f)]
        if unknown:
            raise InvalidInputError(
                "unknown-field",
                "These fields are in no source's catalogue.",
                extra={"fields": sorted(unknown)},
            )
        now = self._clock.now()
        if valid_until is not None:
            valid_until = valid_until.astimezone(UTC)
        if valid_until is not None and valid_until <= now:
            raise InvalidInputError("consent-expired", "valid_until is already past.")
        consent = Consent(
            id=self._new_id(),
            participant=self._keys.pseudonym(participant),
            recipient=recipient,
            purpose=purpose,
            fields=frozenset(fields),
            granted_at=now,
            valid_until=valid_until,
            recorded_by=principal.partner,
        )
        receipt = self._keys.sign(receipt_claims(consent, issuer=self._issuer), typ=RECEIPT_TYPE)
        if evidence is not None:
            await self._sealer.ensure(self._db, consent.participant)

        def add(uow: UnitOfWork) -> None:
            if evidence is None:
                uow.consents.add(consent, None)
                return
            sealed = self._sealer.seal(
                uow, consent.participant, evidence.encode(), context=_evidence_context(consent.id)
            )
            uow.consents.add(consent, sealed.sealed, sealed.key_id)

        await self._db.write(add)
        log.info("consent_granted", recipient=recipient, purpose=purpose, fields=len(fields))
        return GrantedConsent(consent, receipt)

    async def page(
        self, principal: Principal, *, participant: Insz, cursor: str | None, limit: int
    ) -> Page[Consent]:
        check_limit(limit)
        after = decode_cursor(cursor)
        pseudonym = self._keys.pseudonym(participant)
        recipient = None if principal.is_operator else principal.partner
        found = await self._db.read(
            lambda uow: uow.consents.page(
                pseudonym, recipient=recipient, after=after, limit=limit + 1
            )
        )
        items = list(found[:limit])
        more = len(found) > limit
        return Page(items, encode_cursor(items[-1].id) if more and items else None)

    async def evidence(self, principal: Principal, consent_id: str) -> str | None:
        """The consent's evidence in clear, for its recipient or the hub's operator.

        ``NotFoundError`` as ``revoke``; ``ErasedError`` (``evidence-erased``, 410) when the
        participant was erased (crypto-shredded); None when none was given.
        """

        def read(uow: UnitOfWork) -> str | None:
            consent = uow.consents.get(consent_id)
            if consent is None or not (
                principal.is_operator or consent.recipient == principal.partner
            ):
                raise NotFoundError("unknown-consent", "No consent with this id was given to you.")
            sealed = uow.consents.evidence(consent_id)
            if sealed is None:
                return None
            try:
                plain = self._sealer.unseal(
                    uow, consent.participant, sealed, context=_evidence_context(consent_id)
                )
            except Shredded:
                raise ErasedError(
                    "evidence-erased",
                    "The participant was erased: this consent's evidence is destroyed.",
                ) from None
            return plain.decode()

        return await self._db.read(read)

    async def revoke(self, principal: Principal, consent_id: str) -> Consent:
        def revoke(uow: UnitOfWork) -> tuple[Consent, bool]:
            consent = uow.consents.get(consent_id)
            if consent is None or not (
                principal.is_operator or consent.recipient == principal.partner
            ):
                # The same answer for "not there" and "not yours": ids are not enumerable.
                raise NotFoundError("unknown-consent", "No consent with this id was given to you.")
            if consent.revoked_at is not None:
                return consent, False
            now = self._clock.now()
            uow.consents.revoke(consent_id, now)
            return replace(consent, revoked_at=now), True

        consent, changed = await self._db.write(revoke)
        if changed:
            log.info("consent_revoked", recipient=consent.recipient, purpose=consent.purpose)
        return consent


def _evidence_context(consent_id: str) -> bytes:
    return f"consent-evidence:{consent_id}".encode()
