"""Envelope encryption: per-participant data keys wrapped by rotatable master keys.

The ``MasterKeys`` port (``hub.ports``). Each participant (by pseudonym, CONTRACT.md 4)
gets a random 256-bit data key (DEK). Personal data the hub must keep (consent
evidence, the answer kept for an ``Idempotency-Key``, CONTRACT.md 3) is sealed under
that DEK; the DEK is stored only wrapped under a master key, in the database
(``participant_keys``). Destroying the wrapped row crypto-shreds everything sealed
under it, while the audit chain (pseudonyms only) stays. A database backup taken
before the erasure still holds the wrapped row: it is shredded there too once the
master key it was wrapped under is retired (``ketenhub keys rotate-master``, then
``ketenhub keys retire-master``) and no backup of the key directory keeps that key.

Layout, beside the signing keys in ``KETENHUB_KEY_DIR`` (files ``0600``)::

    master-keys.json     {"active": "<id>", "keys": ["<id>", ...]}
    master-<id>.key      32 random bytes, one per listed id
    master-keys.lock     taken (flock) by whoever changes the index

- Wrapping is AES-256-GCM (NIST SP 800-38D) with a random 96-bit nonce; the
  associated data binds the wrapped key to its participant's pseudonym, its own id
  and the master key's id, so a row copied onto another participant (or relabelled
  with another master id) does not unwrap.
- A master key's id is the first 16 bytes, hex, of HMAC-SHA256(key, label): it names
  the key and nothing else, and ``load`` checks each file holds the key its name says.
- The index is written last and replaced atomically; files are created whole and only
  when absent (written aside, then hard-linked), so workers that start together
  agree on one first master key.
- Running hubs pick up a rotation without a restart: before wrapping a new DEK they
  look whether the index changed (one ``stat``), and a row naming a master id they do
  not hold makes them read the directory again.

Nothing here logs or shows key material; every failure to unwrap or unseal is one
opaque ``ValueError`` (as pyca/cryptography's ``InvalidTag``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.auth.keyfiles import create_file, exclusive, replace_file
from hub.domain.errors import ServiceUnavailableError
from hub.ports import WrappedDataKey

INDEX_FILE: Final = "master-keys.json"
LOCK_FILE: Final = "master-keys.lock"
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_ID_LABEL: Final = b"ketenhub master key id"
_MASTER_ID = re.compile(r"[0-9a-f]{32}")


class MasterKeyError(ServiceUnavailableError):
    """The master keys are missing or damaged; the message names the file, never a key."""

    def __init__(self, detail: str) -> None:
        super().__init__("keys-unavailable", detail)


def master_id(key: bytes) -> str:
    """The id of a master key: a keyed digest of a fixed label, so it reveals nothing."""
    return hmac.new(key, _ID_LABEL, hashlib.sha256).hexdigest()[:32]


def _wrap_aad(participant: str, key_id: str, master: str) -> bytes:
    return f"ketenhub-dek\x00{participant}\x00{key_id}\x00{master}".encode()


class DataKey:
    """One participant's unwrapped DEK: AES-256-GCM with the caller's context as AAD."""

    __slots__ = ("_aead", "key_id")

    def __init__(self, key_id: str, secret: bytes) -> None:
        self.key_id = key_id
        self._aead = AESGCM(secret)

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        """``nonce || ciphertext`` under this DEK, bound to ``context``."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def unseal(self, sealed: bytes, *, context: bytes) -> bytes:
        """The plaintext; ``ValueError`` on any failure, whatever its cause."""
        if len(sealed) < NONCE_BYTES + _TAG_BYTES:
            raise ValueError("cannot unseal")
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
        except InvalidTag:
            raise ValueError("cannot unseal") from None

    def __repr__(self) -> str:
        return f"DataKey(key_id={self.key_id!r})"


@dataclass(frozen=True, slots=True)
class _Loaded:
    active: str
    keys: dict[str, AESGCM]
    signature: tuple[int, int, int] | None
    """``(st_ino, st_mtime_ns, st_size)`` of the index as read; None in memory only."""


class MasterKeyRing:
    """The ``MasterKeys`` port over the master key files of a key directory."""

    __slots__ = ("_directory", "_lock", "_state")

    def __init__(self, state: _Loaded, directory: Path | None) -> None:
        self._state = state
        self._directory = directory
        self._lock = threading.Lock()

    # -- making one -----------------------------------------------------------------

    @classmethod
    def load_or_create(cls, key_dir: Path, *, may_create: bool = True) -> MasterKeyRing:
        """Load the master keys, making the first one when there is none.

        ``may_create`` is False when the database holds wrapped data keys: a new master
        key then would make every one of them unreadable, so a missing index is a
        ``MasterKeyError`` naming the directory instead.
        """
        try:
            absent = not (key_dir / INDEX_FILE).exists()
            if absent and not may_create:
                problem = (
                    f"{INDEX_FILE} is missing, but the database holds data keys wrapped "
                    "under a master key"
                )
            else:
                if absent:
                    cls._create_first(key_dir)
                return cls(_read(key_dir), key_dir)
        except MasterKeyError as exc:
            problem = exc.detail
        except OSError as exc:
            problem = f"it cannot be read or made ({type(exc).__name__})"
        raise MasterKeyError(
            f"The master keys in {key_dir} are not usable: {problem}. Restore the key "
            "directory from its backup, or set KETENHUB_KEY_DIR to where the hub's keys are."
        )

    @staticmethod
    def _create_first(key_dir: Path) -> None:
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        secret = secrets.token_bytes(KEY_BYTES)
        ident = master_id(secret)
        create_file(key_dir / f"master-{ident}.key", secret)
        if not create_file(key_dir / INDEX_FILE, _index_bytes(ident, [ident])):
            # Another worker finished first: its key is the one, ours never served.
            (key_dir / f"master-{ident}.key").unlink(missing_ok=True)

    @classmethod
    def ephemeral(cls) -> MasterKeyRing:
        """One master key held in memory only: for tests and throw-away runs."""
        secret = secrets.token_bytes(KEY_BYTES)
        ident = master_id(secret)
        return cls(_Loaded(ident, {ident: AESGCM(secret)}, None), None)

    # -- the MasterKeys port ----------------------------------------------------------

    @property
    def active_id(self) -> str:
        return self._state.active

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._state.keys)

    def new_data_key(self, participant: str, now: datetime) -> tuple[DataKey, WrappedDataKey]:
        """A fresh random DEK for ``participant``, and its row wrapped under the active key."""
        self._follow_rotation()
        secret = secrets.token_bytes(KEY_BYTES)
        key_id = secrets.token_hex(16)
        return DataKey(key_id, secret), self._wrap(participant, key_id, secret, now)

    def unwrap(self, wrapped: WrappedDataKey) -> DataKey:
        """The DEK of a row; ``ValueError`` when it does not unwrap (wrong participant,
        wrong or unknown master key, changed bytes)."""
        return DataKey(wrapped.key_id, self._unwrap_secret(wrapped))

    def rewrap(self, wrapped: WrappedDataKey) -> WrappedDataKey:
        """The same DEK (same id) wrapped under the active master key."""
        secret = self._unwrap_secret(wrapped)
        return self._wrap(wrapped.participant, wrapped.key_id, secret, wrapped.created_at)

    def reload(self) -> None:
        """Read the directory again (a rotation happened, here or in another process)."""
        if self._directory is not None:
            with self._lock:
                self._state = _read(self._directory)

    # -- rotation (``ketenhub keys rotate-master``, ``retire-master``) ---------------

    def rotate(self) -> str:
        """Make a new master key the active one; the old ones stay. Returns its id."""
        directory = self._require_directory()
        with exclusive(directory / LOCK_FILE):
            current = _read(directory)
            secret = secrets.token_bytes(KEY_BYTES)
            ident = master_id(secret)
            create_file(directory / f"master-{ident}.key", secret)
            keys = [*current.keys, ident]
            replace_file(directory / INDEX_FILE, _index_bytes(ident, keys))
        self.reload()
        return ident

    def retire(self, unused: Sequence[str]) -> list[str]:
        """Remove the listed master keys, except the active one; returns those removed.

        The caller has checked that no data key is wrapped under them any more
        (``ParticipantKeyRepository.count_by_master``).
        """
        directory = self._require_directory()
        with exclusive(directory / LOCK_FILE):
            current = _read(directory)
            gone = [k for k in current.keys if k in unused and k != current.active]
            if gone:
                keys = [k for k in current.keys if k not in gone]
                replace_file(directory / INDEX_FILE, _index_bytes(current.active, keys))
                for ident in gone:
                    (directory / f"master-{ident}.key").unlink(missing_ok=True)
        self.reload()
        return gone

    # -- inside -----------------------------------------------------------------------

    def _wrap(self, participant: str, key_id: str, secret: bytes, at: datetime) -> WrappedDataKey:
        state = self._state
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = _wrap_aad(participant, key_id, state.active)
        wrapped = nonce + state.keys[state.active].encrypt(nonce, secret, aad)
        return WrappedDataKey(participant, key_id, state.active, wrapped, at)

    def _unwrap_secret(self, wrapped: WrappedDataKey) -> bytes:
        master = self._state.keys.get(wrapped.master_id)
        if master is None:
            # Wrapped by a hub that rotated after this one started: read the keys again.
            with contextlib.suppress(MasterKeyError):
                self.reload()
            master = self._state.keys.get(wrapped.master_id)
        blob = wrapped.wrapped
        if master is None or len(blob) != NONCE_BYTES + KEY_BYTES + _TAG_BYTES:
            raise ValueError("cannot unwrap")
        aad = _wrap_aad(wrapped.participant, wrapped.key_id, wrapped.master_id)
        try:
            return master.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise ValueError("cannot unwrap") from None

    def _follow_rotation(self) -> None:
        """New DEKs go under the newest active key: reload if the index changed."""
        if self._directory is None:
            return
        try:
            seen = _signature(self._directory / INDEX_FILE)
        except OSError:
            return  # keep serving with the keys held; a reload would fail the same way
        if seen != self._state.signature:
            self.reload()

    def _require_directory(self) -> Path:
        if self._directory is None:
            raise MasterKeyError("an in-memory master key ring cannot be rotated")
        return self._directory

    def __repr__(self) -> str:
        return f"MasterKeyRing(active={self._state.active!r}, keys={len(self._state.keys)})"


# -- the directory ------------------------------------------------------------------


def _index_bytes(active: str, keys: Sequence[str]) -> bytes:
    return (json.dumps({"active": active, "keys": list(keys)}, indent=2) + "\n").encode()


def _signature(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _read(directory: Path) -> _Loaded:
    path = directory / INDEX_FILE
    try:
        signature = _signature(path)
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise MasterKeyError(f"{INDEX_FILE} is missing from the key directory") from None
    except (OSError, ValueError):
        raise MasterKeyError(f"{INDEX_FILE} cannot be read as JSON") from None
    active = document.get("active") if isinstance(document, dict) else None
    listed = document.get("keys") if isinstance(document, dict) else None
    if (
        not isinstance(listed, list)
        or not listed
        or not all(isinstance(k, str) and _MASTER_ID.fullmatch(k) for k in listed)
        or len(set(listed)) != len(listed)
    ):
        raise MasterKeyError(f"{INDEX_FILE}: 'keys' must list distinct master key ids")
    if not isinstance(active, str) or active not in listed:
        raise MasterKeyError(f"{INDEX_FILE}: 'active' must be one of the 'keys'")
    keys: dict[str, AESGCM] = {}
    for ident in listed:
        name = f"master-{ident}.key"
        try:
            secret = (directory / name).read_bytes()
        except FileNotFoundError:
            raise MasterKeyError(f"{name} is missing from the key directory") from None
        except OSError:
            raise MasterKeyError(f"{name} cannot be read") from None
        if len(secret) != KEY_BYTES or master_id(secret) != ident:
            raise MasterKeyError(f"{name} does not hold the key its name says")
        keys[ident] = AESGCM(secret)
    return _Loaded(active, keys, signature)
