"""Personal data sealed under its participant's data key (envelope encryption).

Every use case that stores personal data seals it here, inside its own transaction:

- ``seal`` finds the participant's data key (DEK) or makes it. Two hub processes
  granting a participant's first consent at once make one DEK: the repository's
  ``add`` refuses the second, which then uses the first's (``hub.db.participant_keys``).
- ``unseal`` opens what ``seal`` made; data whose DEK was destroyed (the participant
  was erased) is *shredded*: ``None``, never an error and never the plaintext. Rows
  sealed before per-participant keys (``key_id`` None) open with the hub's one seal key.
- ``rewrap_all`` puts every DEK under the active master key (``ketenhub keys
  rotate-master``): in batches of short transactions, so hubs keep serving; a run
  that stops half-way is resumed by running it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from hub.domain.errors import HubError, ServiceUnavailableError
from hub.ports import (
    Clock,
    Database,
    DataKey,
    KeyRing,
    MasterKeys,
    SealedData,
    UnitOfWork,
    WrappedDataKey,
)

log = structlog.get_logger("hub.datakeys")

REWRAP_BATCH = 500
"""DEKs per rewrap transaction: a few milliseconds of the writer's lock each."""


class ErasedError(HubError):
    """What was asked for was crypto-shredded: its participant was erased (RFC 9110 15.5.11)."""

    status = 410
    title = "Gone"


class Shredded(Exception):  # noqa: N818 - a state, not a failure
    """The data key this was sealed under was destroyed: the data is unreadable."""


@dataclass(frozen=True, slots=True)
class RewrapReport:
    active: str
    rewrapped: int
    unreadable: int
    """Rows that did not unwrap under any master key held (damaged): left as they are."""
    by_master: Mapping[str, int]
    """DEKs per master key id, after the run."""

    def as_dict(self) -> dict[str, object]:
        return {
            "active": self.active,
            "rewrapped": self.rewrapped,
            "unreadable": self.unreadable,
            "by_master": dict(self.by_master),
        }


class ParticipantSealer:
    def __init__(self, *, masters: MasterKeys, keys: KeyRing, clock: Clock) -> None:
        self._masters = masters
        self._keys = keys
        self._clock = clock

    def data_key(self, uow: UnitOfWork, participant: str) -> DataKey:
        """The participant's DEK, made (once, race-safe) when they have none."""
        stored = uow.participant_keys.get(participant)
        if stored is None:
            key, wrapped = self._masters.new_data_key(participant, self._clock.now())
            if uow.participant_keys.add(wrapped):
                return key
            stored = uow.participant_keys.get(participant)  # another process made it first
            if stored is None:
                raise _unavailable()
        return self._unwrap(stored)

    async def ensure(self, db: Database, participant: str) -> None:
        """Make the participant's DEK, if missing, in a short transaction of its own.

        Why not inside the caller's transaction: on PostgreSQL a second process's insert
        of the same participant's DEK waits for the first's commit. Made after a group's
        audit append (which holds the chain's lock to the commit), that wait can close a
        cycle with a group that made the DEK first and waits for the chain: a deadlock,
        and ``503`` for both groups. Made here, the DEK insert holds no other lock.
        ``data_key`` inside the caller's transaction still makes one if an erasure
        destroyed it meanwhile.
        """
        if await db.read(lambda uow: uow.participant_keys.get(participant)) is None:
            await db.write(lambda uow: self.data_key(uow, participant))

    def seal(
        self, uow: UnitOfWork, participant: str, plaintext: bytes, *, context: bytes
    ) -> SealedData:
        key = self.data_key(uow, participant)
        return SealedData(key.seal(plaintext, context=context), key.key_id)

    def unseal(
        self, uow: UnitOfWork, participant: str, sealed: SealedData, *, context: bytes
    ) -> bytes:
        """The plaintext; ``Shredded`` when its DEK is gone; ``ValueError`` when damaged."""
        if sealed.key_id is None:
            return self._keys.unseal(sealed.sealed, context=context)
        stored = uow.participant_keys.get(participant)
        if stored is None or stored.key_id != sealed.key_id:
            raise Shredded
        return self._unwrap(stored).unseal(sealed.sealed, context=context)

    def _unwrap(self, stored: WrappedDataKey) -> DataKey:
        try:
            return self._masters.unwrap(stored)
        except ValueError:
            # No traceback: nothing in it would help, and the row is not to be shown.
            log.error("data_key_unwrap_failed", master_id=stored.master_id)  # noqa: TRY400
            raise _unavailable() from None


async def rewrap_all(
    db: Database, masters: MasterKeys, *, batch: int = REWRAP_BATCH
) -> RewrapReport:
    """Rewrap every DEK not under the active master key, in short transactions.

    Passes over the table until one finds nothing left to do: DEKs that hubs which
    had not yet seen the rotation wrapped under the old key meanwhile are caught too.
    """
    active = masters.active_id
    rewrapped = 0
    broken: set[str] = set()
    while True:
        done_in_pass = 0
        after: str | None = None
        while True:

            def step(uow: UnitOfWork, after: str | None = after) -> tuple[int, str | None]:
                rows = uow.participant_keys.not_under(active, after=after, limit=batch)
                done = 0
                for row in rows:
                    try:
                        fresh = masters.rewrap(row)
                    except ValueError:
                        broken.add(row.participant)
                        continue
                    done += uow.participant_keys.replace(row, fresh)
                return done, rows[-1].participant if rows else None

            done, after = await db.write(step)
            done_in_pass += done
            if after is None:
                break
        rewrapped += done_in_pass
        if done_in_pass == 0:
            break
    by_master = await db.read(lambda uow: uow.participant_keys.count_by_master())
    log.info("data_keys_rewrapped", active=active, rewrapped=rewrapped, unreadable=len(broken))
    return RewrapReport(active, rewrapped, len(broken), by_master)


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "keys-unavailable",
        "The participant's data key cannot be opened with the hub's master keys.",
    )
