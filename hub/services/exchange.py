"""The exchange use case: decide, fetch, confirm and append, commit, and only then answer.

The order is the guarantee (STYLE.md habit 7):

1. decide on the consents as they stand, to know which fields the source may be asked;
2. ask the source for those fields only;
3. in one write transaction: read the consents again (on PostgreSQL under a share
   lock that a revoke must wait for) and decide again, append the audit record,
   encode the answer, keep it for its ``Idempotency-Key``; commit;
4. send the answer encoded in step 3.

So a revoke that returned before step 3 began is seen by it, and a revoke cannot
return between step 3's read and its commit: no field leaves under a consent
whose revoke had returned. If step 3 fails, nothing is disclosed (``503``).

``Idempotency-Key`` (CONTRACT.md 3): the key is kept per partner as a keyed digest
(a client may choose anything for it, a national number included). Two requests
with one key that race are settled in step 3, after the audit append has taken the
chain's lock: the later one finds the earlier's answer and replays it (or is
refused with ``422`` when its body differs), so one key never yields two
disclosures.

The kept answer carries personal data: it is sealed under the participant's data key
(``hub.services.datakeys``), so erasing the participant shreds it. An exchange without
an ``Idempotency-Key`` never touches the data keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from consent.model import Consent, ConsentStatus
from hub.domain.agreements import PolicySet
from hub.domain.audit import AuditEntry, AuditRecord
from hub.domain.errors import (
    ConflictError,
    HubError,
    InvalidInputError,
    NothingDisclosedError,
    SourceUnavailableError,
    UnknownParticipantError,
)
from hub.domain.exchange import Decision, ExchangeRequest, Outcome
from hub.domain.ids import FieldName, PartnerId
from hub.domain.moments import format_timestamp
from hub.policy.decide import brussels_day, decide
from hub.ports import (
    Clock,
    Database,
    KeyRing,
    SealedData,
    SilentTelemetry,
    SourceAdapter,
    StoredAnswer,
    Telemetry,
    UnitOfWork,
)
from hub.services.audit import AuditTrail
from hub.services.datakeys import ParticipantSealer, Shredded

log = structlog.get_logger("hub.exchange")

IDEMPOTENCY_TTL = timedelta(hours=24)
_SERVER_ERROR = 500


_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
"""What ``json.dumps`` with these options builds on every call (about 1 us); it keeps no
state between calls, so one serves every answer."""


def encode(document: Mapping[str, Any]) -> bytes:
    """The one JSON encoding of an answer: strict (no NaN), UTF-8."""
    return _ENCODER.encode(document).encode()


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to send: a status the contract names and its encoded JSON document."""

    status: int
    content: bytes
    replayed: bool = False

    @classmethod
    def of(cls, status: int, document: Mapping[str, Any]) -> Answer:
        return cls(status, encode(document))

    def document(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.content)
        return found


@dataclass(frozen=True, slots=True)
class _Context:
    request: ExchangeRequest
    pseudonym: str
    key: str | None
    """The ``Idempotency-Key``'s keyed digest."""
    fingerprint: str
    """The request's digest when it has an ``Idempotency-Key`` (empty otherwise)."""
    replacing: int | None
    """The audit seq of a kept answer this request may replace (it could not be replayed)."""


class _KeyTakenError(Exception):
    """Another request answered under the same key while this one was being decided."""

    def __init__(self, stored: StoredAnswer) -> None:
        super().__init__("idempotency key taken")
        self.stored = stored


class ExchangeService:
    def __init__(
        self,
        *,
        policies: PolicySet,
        db: Database,
        sources: Mapping[PartnerId, SourceAdapter],
        keys: KeyRing,
        clock: Clock,
        trail: AuditTrail,
        sealer: ParticipantSealer,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        telemetry: Telemetry | None = None,
    ) -> None:
        self._trail = trail
        self._sealer = sealer
        self._telemetry = telemetry or SilentTelemetry()
        self._policies = policies
        self._db = db
        self._sources = sources
        self._keys = keys
        self._clock = clock
        self._new_id = new_id

    async def exchange(self, request: ExchangeRequest, idempotency_key: str | None) -> Answer:
        adapter = self._sources.get(request.source)
        if adapter is None or not self._policies.is_source(request.source):
            raise InvalidInputError(
                "unknown-source", "The source is not a source partner of this hub."
            )
        pseudonym = self._keys.pseudonym(request.participant)
        key = None
        replacing = None
        fingerprint = ""  # only a request with an Idempotency-Key is compared with another
        if idempotency_key is not None:
            fingerprint = _fingerprint(request, pseudonym)
            digest = self._keys.digest(idempotency_key, context=f"idempotency:{request.requester}")
            key = digest
            stored, has_data_key = await self._db.read(
                lambda uow: (
                    uow.idempotency.get(request.requester, digest),
                    uow.participant_keys.get(pseudonym) is not None,
                )
            )
            if stored is not None and stored.expires_at > self._clock.now():
                _same_body(stored, fingerprint)
                replayed = await self._replay(request, stored)
                if replayed is not None:
                    return replayed
                replacing = stored.audit_seq
            if not has_data_key:
                # Made in a transaction of its own, not after the audit append: see
                # ParticipantSealer.ensure.
                await self._sealer.ensure(self._db, pseudonym)
        context = _Context(request, pseudonym, key, fingerprint, replacing)
        try:
            return await self._decide(context, adapter)
        except _KeyTakenError as taken:
            _same_body(taken.stored, fingerprint)
            replayed = await self._replay(request, taken.stored)
            if replayed is None:
                raise ConflictError(
                    "idempotency-key-in-use",
                    "Another request with this Idempotency-Key was answered at the same moment "
                    "and cannot be sent again; send the request again.",
                ) from None
            return replayed

    async def _decide(self, context: _Context, adapter: SourceAdapter) -> Answer:
        request = context.request
        consents = await self._db.read(
            lambda uow: uow.consents.of_participant(
                context.pseudonym, recipient=request.requester, purpose=request.purpose
            )
        )
        first = decide(request, self._policies, consents, self._clock.now())
        if not first.allowed:
            return await self._record(context, first, Outcome.DENIED)
        try:
            values = await adapter.fetch(request.participant, first.allowed_fields)
        except UnknownParticipantError as exc:
            return await self._record(context, first, Outcome.DENIED, error=exc)
        except SourceUnavailableError as exc:
            return await self._record(context, first, Outcome.FAILED, error=exc)
        except Exception as exc:  # noqa: BLE001 - an adapter's bug is still a failed source, audited
            # No traceback: an adapter's exception text can carry the participant's data.
            log.error("source_adapter_error", source=request.source, error_type=type(exc).__name__)  # noqa: TRY400
            failure = SourceUnavailableError("source-unavailable", "The source failed.")
            return await self._record(context, first, Outcome.FAILED, error=failure)
        return await self._record(context, first, Outcome.DISCLOSED, values=values)

    async def _record(
        self,
        context: _Context,
        decision: Decision,
        outcome: Outcome,
        *,
        error: HubError | None = None,
        values: Mapping[FieldName, object] | None = None,
    ) -> Answer:
        """Step 3: one write transaction that confirms, appends, keeps the answer, commits."""

        def record(uow: UnitOfWork) -> tuple[Answer, AuditRecord, Decision, Outcome, str | None]:
            confirmed, final = decision, outcome
            if values is not None:
                confirmed = self._confirm(uow, context, decision).after_fetch(values)
                if not confirmed.allowed:
                    final = Outcome.DENIED
            disclosure_id = self._new_id() if final is Outcome.DISCLOSED else None
            reason = error.reason if error is not None else _reason_for(final)
            appended = self._trail.append(
                uow, self._entry(context, confirmed, final, reason, disclosure_id)
            )
            if error is not None:
                answer = Answer.of(error.status, {**error.to_problem(), "audit_seq": appended.seq})
            elif disclosure_id is not None and values is not None:
                answer = Answer.of(200, _disclosure(context, confirmed, values, appended))
            else:
                answer = _refusal(appended)
            self._keep(uow, context, answer, appended)
            return answer, appended, confirmed, final, reason

        # Durations on a monotonic clock: how long, never when (that is the Clock's).
        queued = time.perf_counter()
        answer, appended, decision, outcome, reason = await self._db.write(record)
        self._telemetry.audit_appended(time.perf_counter() - queued)
        self._trail.committed(appended)
        (log.warning if outcome is Outcome.FAILED else log.info)(
            "exchange_decided",
            requester=context.request.requester,
            source=context.request.source,
            purpose=context.request.purpose,
            decision=str(outcome),
            reason=reason,
            disclosed=len(decision.allowed) if outcome is Outcome.DISCLOSED else 0,
            withheld=len(decision.withheld()),
            audit_seq=appended.seq,
        )
        self._telemetry.exchange_decided(
            context.request.source, outcome, reason, _field_outcomes(decision, outcome, reason)
        )
        return answer

    def _confirm(self, uow: UnitOfWork, context: _Context, first: Decision) -> Decision:
        """Decide again, now, on the consents as committed now; never widen the first decision.

        Also without consents: an agreement version that ended while the source was asked
        (Brussels midnight passed) allows nothing more than a revoked consent does.
        """
        request = context.request
        consents: Sequence[Consent] = ()
        if any(v.consent_id for v in first.allowed):
            consents = uow.consents.of_participant(
                context.pseudonym,
                recipient=request.requester,
                purpose=request.purpose,
                for_share=True,
            )
        again = decide(request, self._policies, consents, self._clock.now())
        return Decision(
            tuple(
                fresh if earlier.allowed else earlier
                for earlier, fresh in zip(first.verdicts, again.verdicts, strict=True)
            )
        )

    def _keep(
        self,
        uow: UnitOfWork,
        context: _Context,
        answer: Answer,
        record: AuditRecord,
    ) -> None:
        """Keep the answer under its key; the audit append before holds the chain's lock.

        The consents it relied on are the ones its audit record names.
        """
        if context.key is None:
            return
        partner, now = context.request.requester, self._clock.now()
        existing = uow.idempotency.get(partner, context.key)
        if (
            existing is not None
            and existing.expires_at > now
            and existing.audit_seq != context.replacing
        ):
            raise _KeyTakenError(existing)
        if answer.status >= _SERVER_ERROR:
            return  # 5xx answers are not kept (CONTRACT.md 3)
        sealed = self._sealer.seal(
            uow,
            context.pseudonym,
            answer.content,
            context=_seal_context(partner, context.key, context.fingerprint),
        )
        uow.idempotency.put(
            StoredAnswer(
                partner=partner,
                key=context.key,
                fingerprint=context.fingerprint,
                status=answer.status,
                sealed_body=sealed.sealed,
                consent_ids=tuple(record.entry.consents),
                audit_seq=record.seq,
                created_at=now,
                expires_at=now + IDEMPOTENCY_TTL,
                participant=context.pseudonym,
                data_key=sealed.key_id,
            )
        )

    async def _replay(self, request: ExchangeRequest, stored: StoredAnswer) -> Answer | None:
        """The first answer again, while every consent and agreement it relied on holds.

        CONTRACT.md 3 names the consents; an agreement version no longer in force
        (expired, or replaced) is a change in the law of the exchange just the same.
        """

        def replay(uow: UnitOfWork) -> tuple[bytes, AuditRecord] | None:
            consents = uow.consents.by_ids(stored.consent_ids, for_share=True)
            now = self._clock.now()
            if len(consents) != len(stored.consent_ids) or any(
                c.status_at(now) is not ConsentStatus.ACTIVE for c in consents
            ):
                return None
            original = uow.audit.get(stored.audit_seq)
            if original is None or not self._still_in_force(original.entry.agreements, now):
                return None
            try:
                content = self._sealer.unseal(
                    uow,
                    original.entry.participant,
                    SealedData(stored.sealed_body, stored.data_key),
                    context=_seal_context(stored.partner, stored.key, stored.fingerprint),
                )
            except Shredded:
                return None  # its participant was erased: decided anew
            entry = dataclasses.replace(
                original.entry,
                at=format_timestamp(now),
                kind="replay",
                actor={"role": request.actor.role, "id": request.actor.id},
                replay_of=original.seq,
            )
            return content, self._trail.append(uow, entry)

        queued = time.perf_counter()
        replayed = await self._db.write(replay)
        if replayed is None:
            return None
        self._telemetry.audit_appended(time.perf_counter() - queued)
        self._telemetry.exchange_replayed(request.source)
        content, record = replayed
        self._trail.committed(record)
        log.info(
            "exchange_replayed",
            requester=request.requester,
            source=request.source,
            replay_of=stored.audit_seq,
            audit_seq=record.seq,
        )
        return Answer(stored.status, content, replayed=True)

    def _still_in_force(self, refs: Sequence[str], now: datetime) -> bool:
        day = brussels_day(now)
        for ref in refs:
            agreement_id, _, _version = ref.rpartition("@")
            current = self._policies.in_force(agreement_id, day)
            if current is None or current.ref != ref:
                return False
        return True

    def _entry(
        self,
        context: _Context,
        decision: Decision,
        outcome: Outcome,
        reason: str | None,
        disclosure_id: str | None,
    ) -> AuditEntry:
        request = context.request
        disclosed = list(decision.allowed) if outcome is Outcome.DISCLOSED else []
        refs = sorted({v.agreement.ref for v in disclosed if v.agreement is not None})
        first_ref = next((v.agreement.ref for v in disclosed if v.agreement is not None), None)
        return AuditEntry(
            at=format_timestamp(self._clock.now()),
            kind="exchange",
            requester=request.requester,
            source=request.source,
            participant=context.pseudonym,
            purpose=request.purpose,
            actor={"role": request.actor.role, "id": request.actor.id},
            decision=outcome,
            reason=reason,
            fields_requested=list(request.fields),
            fields_disclosed=[v.field for v in disclosed],
            withheld=_withheld(decision),
            agreement=first_ref,
            agreements=refs,
            consents=list(_consents_of(decision, outcome)),
            disclosure_id=disclosure_id,
        )


def _fingerprint(request: ExchangeRequest, pseudonym: str) -> str:
    # Over the pseudonym, never the INSZ: an unkeyed hash of an 11-digit number is as
    # good as the number itself.
    material = json.dumps(
        [
            pseudonym,
            request.source,
            request.purpose,
            list(request.fields),
            request.actor.role,
            request.actor.id,
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode()).hexdigest()


def _same_body(stored: StoredAnswer, fingerprint: str) -> None:
    if stored.fingerprint != fingerprint:
        raise InvalidInputError(
            "idempotency-key-reused",
            "This Idempotency-Key was used with another request body in the last 24 hours.",
        )


def _field_outcomes(decision: Decision, outcome: Outcome, reason: str | None) -> list[str]:
    """Each requested field's one outcome, for the metrics: ``disclosed``, its withheld
    reason, or (allowed, but the source did not answer) the request's reason."""
    unanswered = "disclosed" if outcome is Outcome.DISCLOSED else (reason or str(outcome))
    return [unanswered if v.reason is None else str(v.reason) for v in decision.verdicts]


def _reason_for(outcome: Outcome) -> str | None:
    return "nothing-disclosed" if outcome is Outcome.DENIED else None


def _consents_of(decision: Decision, outcome: Outcome) -> tuple[str, ...]:
    if outcome is not Outcome.DISCLOSED:
        return ()
    return tuple(sorted({v.consent_id for v in decision.allowed if v.consent_id}))


def _withheld(decision: Decision) -> list[dict[str, str]]:
    return [{"field": f, "reason": str(r)} for f, r in decision.withheld()]


def _refusal(record: AuditRecord) -> Answer:
    error = NothingDisclosedError(
        "nothing-disclosed",
        "No requested field may be disclosed; see withheld for each field's reason.",
        extra={"withheld": list(record.entry.withheld), "audit_seq": record.seq},
    )
    return Answer.of(error.status, error.to_problem())


def _disclosure(
    context: _Context,
    decision: Decision,
    values: Mapping[FieldName, object],
    record: AuditRecord,
) -> dict[str, Any]:
    """The 200 body; its disclosure id and withheld list are the audit record's own."""
    return {
        "disclosure_id": record.entry.disclosure_id,
        "participant": context.request.participant.digits,
        "source": context.request.source,
        "purpose": context.request.purpose,
        "data": {v.field: values[v.field] for v in decision.allowed},
        "withheld": list(record.entry.withheld),
        "audit_seq": record.seq,
    }


def _seal_context(partner: str, key: str, fingerprint: str) -> bytes:
    return f"idempotency:{partner}:{key}:{fingerprint}".encode()
