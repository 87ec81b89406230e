"""The ports: what the use cases need from the world, as Protocols named for their role.

Implementations live at the edges (``hub.db``, ``hub.auth``, ``adapters``) and are
chosen in ``hub.bootstrap`` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from consent.model import Consent
from hub.domain.audit import AuditEntry, AuditRecord, ChainReport
from hub.domain.checkpoints import Checkpoint
from hub.domain.exchange import Outcome
from hub.domain.ids import FieldName, Insz, PartnerId, Purpose

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware datetime."""


class SourceAdapter(Protocol):
    async def fetch(
        self, participant: Insz, fields: frozenset[FieldName]
    ) -> Mapping[FieldName, object]:
        """Values for at most ``fields`` (a missing one means "no value").

        Raises ``UnknownParticipantError``, ``SourceTimeoutError`` or
        ``SourceUnavailableError``; never a transport exception. An answer with
        fields that were not asked for is a ``SourceUnavailableError``.
        """

    async def aclose(self) -> None: ...


class KeyRing(Protocol):
    """The hub's own keys: signing (tokens, receipts, checkpoints), pseudonyms, sealing."""

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        """A compact JWS over ``claims`` with the active signing key and its ``kid``.

        Raises ``ServiceUnavailableError`` (``keys-unavailable``) when it cannot sign."""

    def verify(self, jws: str, *, typ: str) -> dict[str, Any] | None:
        """The claims of a compact JWS of kind ``typ`` signed by one of the hub's keys
        (the active one, or a retired one: those verify forever, so old receipts and
        audit checkpoints stay checkable); None for anything else."""

    def jwks(self) -> dict[str, Any]:
        """The public signing keys, as a JWK Set (RFC 7517 section 5)."""

    def pseudonym(self, participant: Insz) -> str:
        """A stable keyed pseudonym (HMAC) of the INSZ; the INSZ cannot be derived from it."""

    def digest(self, value: str, *, context: str) -> str:
        """A keyed hash (HMAC) of a client-chosen value that may hold personal data."""

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        """Authenticated encryption bound to ``context``."""

    def unseal(self, sealed: bytes, *, context: bytes) -> bytes:
        """Raises ``ValueError`` if ``sealed`` was not made by ``seal`` with this context."""


@dataclass(frozen=True, slots=True)
class WrappedDataKey:
    """A participant's data key (DEK), as stored: wrapped under one master key.

    ``key_id`` names this DEK (random): data sealed under it records the id, so data
    sealed under a DEK that was destroyed is known for crypto-shredded, not damaged.
    """

    participant: str
    """The participant's keyed pseudonym (CONTRACT.md 4)."""
    key_id: str
    master_id: str
    wrapped: bytes
    created_at: datetime


class DataKey(Protocol):
    """One participant's unwrapped DEK."""

    @property
    def key_id(self) -> str: ...

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        """Authenticated encryption under this DEK, bound to ``context``."""

    def unseal(self, sealed: bytes, *, context: bytes) -> bytes:
        """Raises ``ValueError`` if ``sealed`` was not made by ``seal`` with this context."""


class MasterKeys(Protocol):
    """Envelope encryption: DEKs wrapped by the active master key (``hub.auth.datakeys``)."""

    @property
    def active_id(self) -> str: ...

    def new_data_key(self, participant: str, now: datetime) -> tuple[DataKey, WrappedDataKey]:
        """A fresh random DEK and its row, wrapped under the active master key."""

    def unwrap(self, wrapped: WrappedDataKey) -> DataKey:
        """Raises ``ValueError`` when the row does not unwrap (another participant's,
        an unknown master key, changed bytes)."""

    def rewrap(self, wrapped: WrappedDataKey) -> WrappedDataKey:
        """The same DEK wrapped under the active master key; ``ValueError`` as ``unwrap``."""


@dataclass(frozen=True, slots=True)
class SealedData:
    """Personal data sealed for storage; ``key_id`` None: under the hub's one seal key
    (rows written before per-participant keys), else under that participant DEK."""

    sealed: bytes
    key_id: str | None


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An ``Idempotency-Key``'s first answer, its body sealed (CONTRACT.md 3)."""

    partner: PartnerId
    key: str
    fingerprint: str
    status: int
    sealed_body: bytes
    consent_ids: tuple[str, ...]
    audit_seq: int
    created_at: datetime
    expires_at: datetime
    participant: str | None = None
    """The pseudonym the answer is about (erasure deletes by it)."""
    data_key: str | None = None
    """The participant DEK the body is sealed under; None: the hub's one seal key."""


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client_id: str
    partner: PartnerId
    scopes: frozenset[str]
    auth_method: str
    """``client_secret`` (basic or post) or ``private_key_jwt``."""
    secret_hash: str | None
    jwks: Mapping[str, Any] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditQuery:
    participant: str | None = None
    """A pseudonym."""
    partner: PartnerId | None = None
    """Requester or source."""
    purpose: Purpose | None = None
    decision: Outcome | None = None
    since: str | None = None
    until: str | None = None
    visible_to: PartnerId | None = None
    """Restrict to events where this partner is requester or source; None sees all."""
    before_seq: int | None = None


class ConsentRepository(Protocol):
    def add(
        self, consent: Consent, sealed_evidence: bytes | None, evidence_key: str | None = None
    ) -> None:
        """``evidence_key``: the participant DEK the evidence is sealed under (``SealedData``)."""

    def get(self, consent_id: str) -> Consent | None: ...

    def evidence(self, consent_id: str) -> SealedData | None:
        """The consent's sealed evidence; None when it has none (or it was dropped)."""

    def of_participant(
        self, participant: str, *, recipient: PartnerId, purpose: Purpose, for_share: bool = False
    ) -> Sequence[Consent]:
        """Every consent (any status) of a participant to one recipient for one purpose.

        ``for_share``: hold a share lock on them until the transaction ends, so that a
        revoke waits for a disclosure that relied on them (where the database can).
        """

    def by_ids(self, ids: Sequence[str], *, for_share: bool = False) -> Sequence[Consent]:
        """``for_share`` as for ``of_participant``."""

    def page(
        self, participant: str, *, recipient: PartnerId | None, after: str | None, limit: int
    ) -> Sequence[Consent]:
        """Ordered by id; ``recipient`` None lists all recipients."""

    def revoke(self, consent_id: str, at: datetime) -> None: ...

    def outstanding(
        self, *, granted_from: datetime | None, granted_before: datetime, now: datetime
    ) -> OutstandingConsents:
        """The consents granted in ``[granted_from, granted_before)`` (from the first
        when None) still active at ``now``: what a retired signing key's receipts
        still vouch for (``hub.auth.rotation``)."""


@dataclass(frozen=True, slots=True)
class OutstandingConsents:
    count: int
    open_ended: bool
    """At least one of them has no ``valid_until``."""
    latest_until: datetime | None
    """The latest ``valid_until`` among them; None when there are none."""


class AuditRepository(Protocol):
    def append(self, entry: AuditEntry, *, tag: Callable[[str], str] | None = None) -> AuditRecord:
        """Chain ``entry`` after the current head, inside the caller's transaction.

        ``tag`` makes the record's authentication tag from its hash (``AuditTrail``)."""

    def get(self, seq: int) -> AuditRecord | None: ...

    def head(self) -> tuple[int, str]:
        """The newest record's seq and hash; ``(0, GENESIS)`` for an empty log."""

    def hash_at(self, seq: int) -> str | None:
        """The stored hash of record ``seq``; None when there is no such record."""

    def tags_after(self, seq: int) -> Sequence[tuple[int, str, str | None]]:
        """``(seq, hash, tag)`` of every record after ``seq``, in order."""

    def legacy_through(self) -> int:
        """The seq the legacy prefix reaches: records 1 to it were written before record
        tags existed (migration 0005); 0 when there is none."""

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Keep a signed checkpoint; one for a seq that has one already is dropped."""

    def latest_checkpoint(self) -> Checkpoint | None:
        """The stored checkpoint with the highest seq, as stored (not yet checked)."""

    def page(self, query: AuditQuery, limit: int) -> Sequence[AuditRecord]:
        """Newest first."""

    def counts(
        self, *, since: str, until: str, visible_to: PartnerId | None = None
    ) -> Sequence[tuple[str, str, int]]:
        """``(requester, decision, records)`` for the records with ``since <= at < until``
        (stored timestamps), by requester then decision; with ``visible_to``, only those
        where that partner is requester or source."""

    def stream(self) -> Iterator[AuditRecord]:
        """Every record in ``seq`` order, as stored."""

    def verify(self) -> ChainReport:
        """``hub.domain.audit``'s chain check of every record as stored, as one
        ``ChainVerifier`` fed ``stream()`` would report it (possibly in several processes)."""


class IdempotencyRepository(Protocol):
    def get(self, partner: PartnerId, key: str) -> StoredAnswer | None: ...

    def put(self, answer: StoredAnswer) -> None:
        """Insert or replace the answer for ``(partner, key)``."""


class ParticipantKeyRepository(Protocol):
    """The wrapped DEKs, one per participant pseudonym."""

    def get(self, participant: str) -> WrappedDataKey | None: ...

    def add(self, key: WrappedDataKey) -> bool:
        """Insert unless the participant has a DEK already; False then (a race lost)."""

    def replace(self, old: WrappedDataKey, new: WrappedDataKey) -> bool:
        """Store ``new`` (a rewrap) only if the row is still ``old``; False otherwise."""

    def not_under(
        self, master_id: str, *, after: str | None, limit: int
    ) -> Sequence[WrappedDataKey]:
        """Rows wrapped under another master key, by pseudonym, after ``after``."""

    def count_by_master(self) -> Mapping[str, int]: ...

    def destroy(self, participant: str) -> bool:
        """Delete the participant's wrapped DEK; False when there was none."""


@dataclass(frozen=True, slots=True)
class ErasureRecord:
    """Proof that a participant was erased (crypto-shredded): no INSZ, a pseudonym."""

    id: str
    participant: str
    at: datetime
    by: str
    key_destroyed: bool
    consents_revoked: int
    answers_deleted: int
    evidence_dropped: int


class ErasureRepository(Protocol):
    def revoke_consents(self, participant: str, at: datetime) -> int:
        """Revoke every active consent of the participant; how many."""

    def count_consents(self, participant: str) -> int: ...

    def drop_unshreddable_evidence(self, participant: str) -> int:
        """Delete evidence sealed under the hub's one seal key (no DEK to destroy)."""

    def delete_answers(self, participant: str) -> int:
        """Delete every kept ``Idempotency-Key`` answer about the participant."""

    def add(self, record: ErasureRecord) -> None: ...

    def of_participant(self, participant: str) -> Sequence[ErasureRecord]: ...


class ClientRepository(Protocol):
    def add(self, client: ClientRecord) -> None: ...

    def get(self, client_id: str) -> ClientRecord | None: ...


class AssertionReplayRepository(Protocol):
    def remember(self, client_id: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        """Record a ``private_key_jwt`` assertion's ``jti``; False if it was seen before."""


class UnitOfWork(Protocol):
    """The repositories of one transaction; blocking, run by ``Database`` off the event loop."""

    @property
    def consents(self) -> ConsentRepository: ...
    @property
    def audit(self) -> AuditRepository: ...
    @property
    def idempotency(self) -> IdempotencyRepository: ...
    @property
    def clients(self) -> ClientRepository: ...
    @property
    def assertions(self) -> AssertionReplayRepository: ...
    @property
    def participant_keys(self) -> ParticipantKeyRepository: ...
    @property
    def erasures(self) -> ErasureRepository: ...


class Database(Protocol):
    """Transactions are plain functions of a ``UnitOfWork``, run in one thread hop.

    Keep them short and free of I/O other than the database's: no source calls.
    """

    async def read(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run ``work`` in a read-only transaction and return what it returns."""

    async def scan(self, work: Callable[[UnitOfWork], T]) -> T:
        """``read`` for work that takes long (the whole audit log): off the event loop."""

    async def write(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run ``work`` in a write transaction and return once that is durable.

        Writers are serialised (the audit chain stays linear), possibly several to a
        commit. When ``work`` raises, its changes are undone and the error is raised
        here. Raises ``ServiceUnavailableError`` when the database cannot be reached
        or written; then nothing ``work`` did was kept.
        """


class Telemetry(Protocol):
    """What operators count and time (Prometheus ``/metrics``, ``hub.observability``).

    Every argument is a bounded name: a partner id, a contract reason, an outcome, an
    OAuth error code. Never a participant, pseudonym, consent id, client id, token or
    secret (CONTRACT.md 4): they would be kept in every scrape, unredacted.
    """

    def exchange_decided(
        self, source: PartnerId, decision: Outcome, reason: str | None, fields: Sequence[str]
    ) -> None:
        """One exchange decided and audited. ``fields``: each requested field's outcome,
        ``disclosed`` or why it was not (a withheld reason, or the request's reason when
        the source did not answer)."""

    def exchange_replayed(self, source: PartnerId) -> None:
        """An ``Idempotency-Key`` answer sent again (CONTRACT.md 3)."""

    def source_called(self, source: PartnerId, outcome: str, seconds: float) -> None:
        """One call to a source: ``ok``, ``unknown-participant``, ``timeout`` or ``failed``."""

    def audit_appended(self, seconds: float) -> None:
        """A write transaction that appends to the audit log: from queued to durable."""

    def write_group_committed(
        self, transactions: int, turn_seconds: float, commit_seconds: float
    ) -> None:
        """One group commit (``Database.write``) made durable: how many write transactions
        it held, how long it waited for the database's write turn (another process's
        group), and how long its commit took to return durable (the disk's ``fsync``, and
        the hops to and from a thread that waits for it)."""

    def token_refused(self, endpoint: str, error: str) -> None:
        """``token``: an RFC 6749 5.2 ``error`` answered by ``POST /oauth/token``;
        ``bearer``: a presented access token refused (RFC 6750 3.1 ``error``)."""


class SilentTelemetry:
    """Counts nothing: the ``Telemetry`` of tools (``ketenhub audit verify``) and of
    tests that measure nothing."""

    def exchange_decided(
        self, source: PartnerId, decision: Outcome, reason: str | None, fields: Sequence[str]
    ) -> None:
        pass

    def exchange_replayed(self, source: PartnerId) -> None:
        pass

    def source_called(self, source: PartnerId, outcome: str, seconds: float) -> None:
        pass

    def audit_appended(self, seconds: float) -> None:
        pass

    def write_group_committed(
        self, transactions: int, turn_seconds: float, commit_seconds: float
    ) -> None:
        pass

    def token_refused(self, endpoint: str, error: str) -> None:
        pass
