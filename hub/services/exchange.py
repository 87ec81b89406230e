"""The exchange use case: decide, fetch, confirm and append, commit, and only then answer.

The order is the guarantee (STYLE.md habit 7):

1. decide on the consents as they stand, to know which fields the source may be asked;
2. ask the source for those fields only;
3. in one write transaction, read the consents again (on PostgreSQL under a share
   lock that a revoke must wait for), decide again, append the audit record and
   keep the ``Idempotency-Key`` answer; commit;
4. build the answer from what was committed.

So a revoke that returned before step 3 began is seen by it, and a revoke cannot
return between step 3's read and its commit: no field leaves under a consent
whose revoke had returned. If step 3 fails, nothing is disclosed (``503``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog

from consent.model import ConsentStatus
from hub.domain.agreements import PolicySet
from hub.domain.audit import AuditEntry, AuditRecord
from hub.domain.errors import (
    HubError,
    InvalidInputError,
    NothingDisclosedError,
    SourceTimeoutError,
    SourceUnavailableError,
    UnknownParticipantError,
)
from hub.domain.exchange import Decision, ExchangeRequest, FieldVerdict, Outcome
from hub.domain.ids import FieldName, PartnerId
from hub.domain.moments import format_timestamp
from hub.policy.decide import decide
from hub.ports import Clock, Database, KeyRing, SourceAdapter, StoredAnswer, UnitOfWork

log = structlog.get_logger("hub.exchange")

IDEMPOTENCY_TTL = timedelta(hours=24)
_SERVER_ERROR = 500


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to send: a status the contract names and its JSON document."""

    status: int
    body: Mapping[str, Any]
    replayed: bool = False


class ExchangeService:
    def __init__(
        self,
        *,
        policies: PolicySet,
        db: Database,
        sources: Mapping[PartnerId, SourceAdapter],
        keys: KeyRing,
        clock: Clock,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
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
        fingerprint = self._fingerprint(request, pseudonym)
        if idempotency_key is not None:
            replayed = await self._replay(request, pseudonym, idempotency_key, fingerprint)
            if replayed is not None:
                return replayed
        context = _Context(request, pseudonym, idempotency_key, fingerprint)

        async with self._db.reading() as uow:
            consents = await uow.consents.of_participant(
                pseudonym, recipient=request.requester, purpose=request.purpose
            )
        first = decide(request, self._policies, consents, self._clock.now())
        if not first.allowed:
            return await self._record_refusal(context, first)

        try:
            values = await adapter.fetch(request.participant, first.allowed_fields)
        except UnknownParticipantError as exc:
            return await self._record_error(context, first, Outcome.DENIED, exc)
        except SourceUnavailableError as exc:
            return await self._record_error(context, first, Outcome.FAILED, exc)
        except Exception as exc:  # noqa: BLE001 - an adapter's bug is still a failed source, audited
            # No traceback: an adapter's exception text can carry the participant's data.
            log.error("source_adapter_error", source=request.source, error_type=type(exc).__name__)  # noqa: TRY400
            failure = SourceUnavailableError("source-unavailable", "The source failed.")
            return await self._record_error(context, first, Outcome.FAILED, failure)

        async with self._db.writing() as uow:
            confirmed = await self._confirm(uow, context, first)
            final = confirmed.after_fetch(values)
            if not final.allowed:
                record = await uow.audit.append(self._entry(context, final, Outcome.DENIED))
                answer = _refusal(final, record)
            else:
                disclosure_id = self._new_id()
                record = await uow.audit.append(
                    self._entry(context, final, Outcome.DISCLOSED, disclosure_id=disclosure_id)
                )
                answer = Answer(200, _disclosure(context, final, values, disclosure_id, record))
            await self._keep(uow, context, answer, _consents_of(final), record)
            await uow.commit()
        log.info(
            "exchange_decided",
            requester=request.requester,
            source=request.source,
            purpose=request.purpose,
            disclosed=len(final.allowed),
            withheld=len(final.verdicts) - len(final.allowed),
            audit_seq=record.seq,
        )
        return answer

    async def _confirm(self, uow: UnitOfWork, context: _Context, first: Decision) -> Decision:
        """Decide again on the consents as committed now; never widen the first decision."""
        request = context.request
        if not any(v.consent_id for v in first.allowed):
            return first
        consents = await uow.consents.of_participant(
            context.pseudonym, recipient=request.requester, purpose=request.purpose, for_share=True
        )
        again = decide(request, self._policies, consents, self._clock.now())
        return Decision(
            tuple(
                fresh if earlier.allowed else earlier
                for earlier, fresh in zip(first.verdicts, again.verdicts, strict=True)
            )
        )

    async def _record_refusal(self, context: _Context, decision: Decision) -> Answer:
        async with self._db.writing() as uow:
            record = await uow.audit.append(self._entry(context, decision, Outcome.DENIED))
            answer = _refusal(decision, record)
            await self._keep(uow, context, answer, (), record)
            await uow.commit()
        log.info(
            "exchange_refused",
            requester=context.request.requester,
            source=context.request.source,
            withheld=len(decision.verdicts),
            audit_seq=record.seq,
        )
        return answer

    async def _record_error(
        self, context: _Context, decision: Decision, outcome: Outcome, error: HubError
    ) -> Answer:
        async with self._db.writing() as uow:
            record = await uow.audit.append(
                self._entry(context, decision, outcome, reason=error.reason)
            )
            answer = Answer(error.status, {**error.to_problem(), "audit_seq": record.seq})
            await self._keep(uow, context, answer, (), record)
            await uow.commit()
        log.warning(
            "exchange_source_error",
            requester=context.request.requester,
            source=context.request.source,
            reason=error.reason,
            timeout=isinstance(error, SourceTimeoutError),
            audit_seq=record.seq,
        )
        return answer

    async def _replay(
        self, request: ExchangeRequest, pseudonym: str, key: str, fingerprint: str
    ) -> Answer | None:
        """CONTRACT.md 3: the first answer again while every consent it relied on is active."""
        async with self._db.reading() as uow:
            stored = await uow.idempotency.get(request.requester, key)
        now = self._clock.now()
        if stored is None or stored.expires_at <= now:
            return None
        if stored.fingerprint != fingerprint:
            raise InvalidInputError(
                "idempotency-key-reused",
                "This Idempotency-Key was used with another request body in the last 24 hours.",
            )
        async with self._db.writing() as uow:
            consents = await uow.consents.by_ids(stored.consent_ids)
            now = self._clock.now()
            if len(consents) != len(stored.consent_ids) or any(
                c.status_at(now) is not ConsentStatus.ACTIVE for c in consents
            ):
                return None
            body = json.loads(
                self._keys.unseal(
                    stored.sealed_body,
                    context=_seal_context(stored.partner, stored.key, stored.fingerprint),
                )
            )
            record = await uow.audit.append(self._replay_entry(request, pseudonym, stored, body))
            await uow.commit()
        log.info(
            "exchange_replayed",
            requester=request.requester,
            source=request.source,
            replay_of=stored.audit_seq,
            audit_seq=record.seq,
        )
        return Answer(stored.status, body, replayed=True)

    async def _keep(
        self,
        uow: UnitOfWork,
        context: _Context,
        answer: Answer,
        consent_ids: Sequence[str],
        record: AuditRecord,
    ) -> None:
        if context.idempotency_key is None or answer.status >= _SERVER_ERROR:
            return
        now = self._clock.now()
        partner, key = context.request.requester, context.idempotency_key
        plaintext = json.dumps(answer.body, separators=(",", ":")).encode()
        sealed = self._keys.seal(
            plaintext, context=_seal_context(partner, key, context.fingerprint)
        )
        await uow.idempotency.put(
            StoredAnswer(
                partner=partner,
                key=key,
                fingerprint=context.fingerprint,
                status=answer.status,
                sealed_body=sealed,
                consent_ids=tuple(consent_ids),
                audit_seq=record.seq,
                created_at=now,
                expires_at=now + IDEMPOTENCY_TTL,
            )
        )

    def _entry(
        self,
        context: _Context,
        decision: Decision,
        outcome: Outcome,
        *,
        reason: str | None = None,
        disclosure_id: str | None = None,
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
            reason=reason if reason is not None else _reason_for(outcome),
            fields_requested=list(request.fields),
            fields_disclosed=[v.field for v in disclosed],
            withheld=[{"field": f, "reason": str(r)} for f, r in decision.withheld()],
            agreement=first_ref,
            agreements=refs,
            consents=sorted({v.consent_id for v in disclosed if v.consent_id}),
            disclosure_id=disclosure_id,
        )

    def _replay_entry(
        self,
        request: ExchangeRequest,
        pseudonym: str,
        stored: StoredAnswer,
        body: Mapping[str, Any],
    ) -> AuditEntry:
        disclosed = list(body.get("data", {})) if stored.status == 200 else []  # noqa: PLR2004
        return AuditEntry(
            at=format_timestamp(self._clock.now()),
            kind="replay",
            requester=request.requester,
            source=request.source,
            participant=pseudonym,
            purpose=request.purpose,
            actor={"role": request.actor.role, "id": request.actor.id},
            decision=Outcome.DISCLOSED if disclosed else Outcome.DENIED,
            reason=None if disclosed else body.get("reason"),
            fields_requested=list(request.fields),
            fields_disclosed=disclosed,
            withheld=list(body.get("withheld", [])),
            agreement=None,
            agreements=[],
            consents=list(stored.consent_ids),
            disclosure_id=body.get("disclosure_id"),
            replay_of=stored.audit_seq,
        )

    def _fingerprint(self, request: ExchangeRequest, pseudonym: str) -> str:
        # Over the pseudonym, never the INSZ: an unkeyed hash of an 11-digit number
        # is as good as the number itself.
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


@dataclass(frozen=True, slots=True)
class _Context:
    request: ExchangeRequest
    pseudonym: str
    idempotency_key: str | None
    fingerprint: str


def _reason_for(outcome: Outcome) -> str | None:
    return "nothing-disclosed" if outcome is Outcome.DENIED else None


def _consents_of(decision: Decision) -> tuple[str, ...]:
    return tuple(sorted({v.consent_id for v in decision.allowed if v.consent_id}))


def _withheld(decision: Decision) -> list[dict[str, str]]:
    return [{"field": f, "reason": str(r)} for f, r in decision.withheld()]


def _refusal(decision: Decision, record: AuditRecord) -> Answer:
    error = NothingDisclosedError(
        "nothing-disclosed",
        "No requested field may be disclosed; see withheld for each field's reason.",
        extra={"withheld": _withheld(decision), "audit_seq": record.seq},
    )
    return Answer(error.status, error.to_problem())


def _disclosure(
    context: _Context,
    decision: Decision,
    values: Mapping[FieldName, object],
    disclosure_id: str,
    record: AuditRecord,
) -> dict[str, Any]:
    allowed: Sequence[FieldVerdict] = decision.allowed
    return {
        "disclosure_id": disclosure_id,
        "participant": context.request.participant.digits,
        "source": context.request.source,
        "purpose": context.request.purpose,
        "data": {v.field: values[v.field] for v in allowed},
        "withheld": _withheld(decision),
        "audit_seq": record.seq,
    }


def _seal_context(partner: str, key: str, fingerprint: str) -> bytes:
    return f"idempotency:{partner}:{key}:{fingerprint}".encode()
