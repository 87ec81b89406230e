"""Erasing a participant by crypto-shredding (GDPR Art. 17; CONTRACT.md 4).

``erase`` does, in one write transaction:

1. revoke every active consent of the participant: no exchange decided after
   ``erase`` returns discloses under them (the same serialisation as a revoke, see
   ``hub.services.exchange``);
2. delete every answer kept for their ``Idempotency-Key`` requests: a replay after
   the erasure is decided anew (and finds the consents revoked);
3. delete evidence sealed under the hub's one seal key (stored before data keys
   existed: there is no data key to destroy for it);
4. destroy their data key: everything sealed under it (consent evidence, kept
   answers) is unreadable from then on; in database backups taken before, once the
   master key of the time is retired (``hub.auth.datakeys``);
5. record the erasure: when, by whom, what it destroyed, under the pseudonym.

The audit log is not touched: it holds pseudonyms and field names only, so it still
verifies and the officers' events still list. Consents stay (revoked) as the record
of what was agreed. A later consent for the same person gets a new data key.
A participant the hub holds nothing of is not recorded (``erased`` False): recording
their pseudonym would itself be a new trace of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from hub.domain.errors import InvalidInputError
from hub.domain.ids import Insz, has_insz_shape
from hub.ports import Clock, Database, ErasureRecord, KeyRing, UnitOfWork

log = structlog.get_logger("hub.erasure")

MAX_BY = 200


@dataclass(frozen=True, slots=True)
class ErasureOutcome:
    record: ErasureRecord | None
    """This erasure; None when the hub held nothing of the participant."""
    earlier: Sequence[ErasureRecord]
    """Erasures of the same participant before this one."""
    consents_kept: int
    """The participant's consents kept as revoked records (their evidence shredded)."""

    @property
    def erased(self) -> bool:
        return self.record is not None

    def as_dict(self) -> dict[str, object]:
        def one(record: ErasureRecord) -> dict[str, object]:
            return {
                "id": record.id,
                "participant": record.participant,
                "at": record.at.isoformat(),
                "by": record.by,
                "key_destroyed": record.key_destroyed,
                "consents_revoked": record.consents_revoked,
                "answers_deleted": record.answers_deleted,
                "evidence_dropped": record.evidence_dropped,
            }

        return {
            "erased": self.erased,
            "erasure": None if self.record is None else one(self.record),
            "earlier": [one(r) for r in self.earlier],
        }


class ErasureService:
    def __init__(
        self,
        *,
        db: Database,
        keys: KeyRing,
        clock: Clock,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._db = db
        self._keys = keys
        self._clock = clock
        self._new_id = new_id

    async def erase(self, participant: Insz, *, by: str) -> ErasureOutcome:
        """Crypto-shred the participant (see the module docstring).

        ``by`` names who asked (an operator, an officer's client id); it is stored, so
        it must not hold a national number. ``InvalidInputError`` otherwise.
        """
        by = by.strip()
        if not by or len(by) > MAX_BY or has_insz_shape(by) or not by.isprintable():
            raise InvalidInputError(
                "invalid-erased-by",
                f"Who erases must be named in 1 to {MAX_BY} printable characters, "
                "without a national number.",
            )
        pseudonym = self._keys.pseudonym(participant)

        def erase(uow: UnitOfWork) -> ErasureOutcome:
            now = self._clock.now()
            earlier = uow.erasures.of_participant(pseudonym)
            revoked = uow.erasures.revoke_consents(pseudonym, now)
            deleted = uow.erasures.delete_answers(pseudonym)
            dropped = uow.erasures.drop_unshreddable_evidence(pseudonym)
            destroyed = uow.participant_keys.destroy(pseudonym)
            kept = uow.erasures.count_consents(pseudonym)
            if not (revoked or deleted or dropped or destroyed):
                return ErasureOutcome(None, earlier, kept)
            record = ErasureRecord(
                id=self._new_id(),
                participant=pseudonym,
                at=now,
                by=by,
                key_destroyed=destroyed,
                consents_revoked=revoked,
                answers_deleted=deleted,
                evidence_dropped=dropped,
            )
            uow.erasures.add(record)
            return ErasureOutcome(record, earlier, kept)

        outcome = await self._db.write(erase)
        if outcome.record is not None:
            log.info(
                "participant_erased",
                erasure_id=outcome.record.id,
                key_destroyed=outcome.record.key_destroyed,
                consents_revoked=outcome.record.consents_revoked,
                answers_deleted=outcome.record.answers_deleted,
            )
        else:
            log.info("participant_erasure_found_nothing", earlier=len(outcome.earlier))
        return outcome
