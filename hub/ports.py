"""The ports: what the use cases need from the world, as Protocols named for their role.

Implementations live at the edges (``hub.db``, ``hub.auth``, ``adapters``) and are
chosen in ``hub.bootstrap`` alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from consent.model import Consent
from hub.domain.audit import AuditEntry, AuditRecord
from hub.domain.exchange import Outcome
from hub.domain.ids import FieldName, Insz, PartnerId, Purpose


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
        """A compact JWS over ``claims`` with the active signing key and its ``kid``."""

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
    async def add(self, consent: Consent, sealed_evidence: bytes | None) -> None: ...

    async def get(self, consent_id: str) -> Consent | None: ...

    async def of_participant(
        self, participant: str, *, recipient: PartnerId, purpose: Purpose, for_share: bool = False
    ) -> Sequence[Consent]:
        """Every consent (any status) of a participant to one recipient for one purpose.

        ``for_share``: hold a share lock on them until the transaction ends, so that a
        revoke waits for a disclosure that relied on them (where the database can).
        """

    async def by_ids(self, ids: Sequence[str], *, for_share: bool = False) -> Sequence[Consent]:
        """``for_share`` as for ``of_participant``."""

    async def page(
        self, participant: str, *, recipient: PartnerId | None, after: str | None, limit: int
    ) -> Sequence[Consent]:
        """Ordered by id; ``recipient`` None lists all recipients."""

    async def revoke(self, consent_id: str, at: datetime) -> None: ...


class AuditRepository(Protocol):
    async def append(self, entry: AuditEntry) -> AuditRecord:
        """Chain ``entry`` after the current head, inside the caller's transaction."""

    async def get(self, seq: int) -> AuditRecord | None: ...

    async def page(self, query: AuditQuery, limit: int) -> Sequence[AuditRecord]:
        """Newest first."""

    def stream(self) -> AsyncIterator[AuditRecord]:
        """Every record in ``seq`` order, as stored."""


class IdempotencyRepository(Protocol):
    async def get(self, partner: PartnerId, key: str) -> StoredAnswer | None: ...

    async def put(self, answer: StoredAnswer) -> None:
        """Insert or replace the answer for ``(partner, key)``."""


class ClientRepository(Protocol):
    async def add(self, client: ClientRecord) -> None: ...

    async def get(self, client_id: str) -> ClientRecord | None: ...


class AssertionReplayRepository(Protocol):
    async def remember(self, client_id: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        """Record a ``private_key_jwt`` assertion's ``jti``; False if it was seen before."""


class UnitOfWork(Protocol):
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

    async def commit(self) -> None:
        """Make the transaction durable; leaving the block without it rolls back."""


class Database(Protocol):
    def reading(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    def writing(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A write transaction; writers are serialised so the audit chain stays linear.

        Raises ``ServiceUnavailableError`` when the database cannot be reached or written.
        """
