"""Signing-key rotation: ``ketenhub keys init | rotate | prune`` over a key directory.

Rotation makes a new Ed25519 key the active one and retires the old one at once:
its private key is destroyed (the file unlinked; a retired key never signs again, so
keeping it would only widen what a stolen disk gives away) and its public key is kept
in ``keys.json`` forever, verify-only. The retired key stays *published* in the JWK
Set until everything it signed that someone may still check has expired
(``publish_until``, decided by ``publish_until``):

- access tokens: signed until every hub worker has seen the rotation (they look at
  ``keys.json`` every ``RELOAD_EVERY_S``; ``RELOAD_GRACE`` allows for a slow or busy
  one), and valid ``MAX_LIFETIME_S`` (+ ``LEEWAY_S`` clock skew) after that;
- consent receipts: those of consents granted while the key was active (up to the
  same grace) and still active: not revoked, not past ``valid_until``. Their latest
  ``valid_until`` bounds the publication; one open-ended consent keeps the key
  published (``publish_until`` null) until ``keys prune`` (or the next rotation) finds
  it revoked. A receipt of a revoked or expired consent proves nothing a partner can
  still act on, so it does not keep the key published; the privacy officer verifies
  it (and every audit checkpoint) with the retired key, which the hub keeps.

The publication only ever shortens: no consent is granted under a retired key later.
Every change holds ``keys.lock`` and replaces ``keys.json`` atomically
(``hub.auth.keyindex``); running hubs pick it up without a restart
(``hub.auth.keys.FileKeyRing``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.auth.keyfiles import replace_file
from hub.auth.keyindex import (
    INDEX_FILE,
    KeyIndex,
    KeyRingError,
    Origin,
    RetiredKey,
    index_lock,
    read_index,
)
from hub.auth.keys import (
    RELOAD_EVERY_S,
    create_key_set,
    public_x,
    read_signing_key,
    write_signing_key,
)
from hub.auth.tokens import LEEWAY_S, MAX_LIFETIME_S
from hub.domain.moments import format_timestamp

if TYPE_CHECKING:
    from pathlib import Path

    from hub.ports import OutstandingConsents

RELOAD_GRACE: Final = timedelta(seconds=60)
"""How long after a rotation a hub worker may still sign with the old key: many times
``RELOAD_EVERY_S``, for a worker busy or paused when the index changed."""
TOKEN_WINDOW: Final = RELOAD_GRACE + timedelta(seconds=MAX_LIFETIME_S + LEEWAY_S)
"""From retirement to the expiry of the last access token the key can have signed."""
assert RELOAD_GRACE.total_seconds() >= 10 * RELOAD_EVERY_S

ReceiptsSigned = Callable[[datetime | None, datetime, datetime], "OutstandingConsents"]
"""``(granted_from, granted_before, now)``: the consents granted in that window (from
the beginning when None) that are still active at ``now``; their receipts may carry
the key's signature."""


@dataclass(frozen=True, slots=True)
class KeyChange:
    """What a command did to the key directory: its one-line JSON summary."""

    action: str
    active: str
    retired: str | None = None
    published: tuple[str, ...] = ()
    verify_only: tuple[str, ...] = ()
    destroyed_private_keys: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "active": self.active,
            "retired": self.retired,
            "published": list(self.published),
            "verify_only": list(self.verify_only),
            "destroyed_private_keys": self.destroyed_private_keys,
        }


def init_keys(key_dir: Path, *, now: datetime) -> KeyChange:
    """Make a new key set marked ``keys-init`` (the only origin production accepts).

    Refuses (``KeyRingError``) a directory that already holds ``keys.json``: its
    pseudonym and sealing keys protect data already stored, and are never replaced.
    """
    if (key_dir / INDEX_FILE).exists():
        raise KeyRingError(
            f"The key directory {key_dir} holds keys already ({INDEX_FILE}); keys init "
            "never replaces them. Use `ketenhub keys rotate` for a new signing key"
        )
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_dir.chmod(0o700)
    with index_lock(key_dir):
        if not create_key_set(key_dir, origin=Origin.KEYS_INIT, now=now):
            raise KeyRingError(f"The key directory {key_dir} was given keys meanwhile")
        index = read_index(key_dir / INDEX_FILE)
    return KeyChange("init", index.active, published=(index.active,))


def rotate(key_dir: Path, *, now: datetime, receipts: ReceiptsSigned) -> KeyChange:
    """Make a new active key, retire the old one, and prune the retired ones.

    Safe against rotations racing (``keys.lock``); the hub may be running.
    """
    _require_keys(key_dir)
    with index_lock(key_dir):
        index = read_index(key_dir / INDEX_FILE)
        key = Ed25519PrivateKey.generate()
        kid = write_signing_key(key_dir, key)
        old_keys = _retire(key_dir, index, now)
        updated = KeyIndex(
            origin=index.origin,
            active=kid,
            activated_at=now,
            retired=tuple(_prune(old, now, receipts) for old in old_keys),
        )
        replace_file(key_dir / INDEX_FILE, updated.encode())
        destroyed = _destroy_private_keys(key_dir, keep=kid)
    return _change("rotate", updated, now, destroyed, retired=index.active)


def prune(key_dir: Path, *, now: datetime, receipts: ReceiptsSigned) -> KeyChange:
    """Look again at what each published retired key signed: a consent revoked or
    expired since may let it leave the JWK Set earlier (never later)."""
    _require_keys(key_dir)
    with index_lock(key_dir):
        index = read_index(key_dir / INDEX_FILE)
        old_keys = [*_retire_legacy(key_dir, index, now), *index.retired]
        updated = replace(
            index,
            retired=tuple(_prune(old, now, receipts) for old in old_keys),
            legacy_private=(),
        )
        if updated != index:
            replace_file(key_dir / INDEX_FILE, updated.encode())
        destroyed = _destroy_private_keys(key_dir, keep=index.active)
    return _change("prune", updated, now, destroyed)


def _require_keys(key_dir: Path) -> None:
    if not (key_dir / INDEX_FILE).is_file():
        raise KeyRingError(
            f"The key directory {key_dir} holds no keys ({INDEX_FILE} is missing): make "
            "them with `ketenhub keys init`"
        )


def publish_until(
    *,
    activated_at: datetime | None,
    retired_at: datetime,
    now: datetime,
    receipts: ReceiptsSigned,
) -> datetime | None:
    """When a key retired at ``retired_at`` may leave the JWK Set (see the module
    docstring); None while an open-ended consent granted under it is still active."""
    tokens_until = retired_at + TOKEN_WINDOW
    outstanding = receipts(activated_at, retired_at + RELOAD_GRACE, now)
    if outstanding.open_ended:
        return None
    if outstanding.latest_until is None:
        return tokens_until
    return max(tokens_until, outstanding.latest_until)


def _retire(key_dir: Path, index: KeyIndex, now: datetime) -> list[RetiredKey]:
    """The retired keys once the active one is retired at ``now``, newest first."""
    active = _public_entry(key_dir, index.active, index.activated_at, now)
    return [active, *_retire_legacy(key_dir, index, now), *index.retired]


def _retire_legacy(key_dir: Path, index: KeyIndex, now: datetime) -> list[RetiredKey]:
    """Format 1 kept older keys private and published without end: retire them now,
    as if they had stopped signing just now (the safe guess)."""
    return [_public_entry(key_dir, kid, None, now) for kid in index.legacy_private]


def _public_entry(
    key_dir: Path, kid: str, activated_at: datetime | None, now: datetime
) -> RetiredKey:
    private = read_signing_key(key_dir / f"signing-{kid}.pem")
    return RetiredKey(kid, public_x(private.public_key()), activated_at, now, None)


def _prune(key: RetiredKey, now: datetime, receipts: ReceiptsSigned) -> RetiredKey:
    if not key.published_at(now):
        return key  # out of the JWK Set for good
    retired_at = key.retired_at or now
    until = publish_until(
        activated_at=key.activated_at, retired_at=retired_at, now=now, receipts=receipts
    )
    return replace(key, retired_at=retired_at, publish_until=until)


def _destroy_private_keys(key_dir: Path, *, keep: str) -> int:
    """Unlink every private signing key but the active one (retired, or left behind by
    a rotation that crashed before its index was written)."""
    destroyed = 0
    for path in key_dir.glob("signing-*.pem"):
        if path.name != f"signing-{keep}.pem":
            path.unlink(missing_ok=True)
            destroyed += 1
    return destroyed


def _change(
    action: str, index: KeyIndex, now: datetime, destroyed: int, retired: str | None = None
) -> KeyChange:
    published = [index.active, *(k.kid for k in index.retired if k.published_at(now))]
    verify_only = [k.kid for k in index.retired if not k.published_at(now)]
    return KeyChange(action, index.active, retired, tuple(published), tuple(verify_only), destroyed)


def describe(index: KeyIndex, now: datetime) -> dict[str, Any]:
    """``ketenhub keys status``: the key set without any key material."""
    return {
        "origin": index.origin.value,
        "active": index.active,
        "activated_at": index.activated_at and format_timestamp(index.activated_at),
        "retired": [{**key.as_json(), "published": key.published_at(now)} for key in index.retired],
    }
