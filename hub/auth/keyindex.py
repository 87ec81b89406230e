"""``keys.json``: which signing key is active, which are retired, and how the set was made.

Format 2 (written by this version)::

    {"format": 2,
     "origin": "keys-init" | "development" | "demo",
     "active": "<kid>", "activated_at": "<UTC timestamp>" | null,
     "signing": ["<kid>"],
     "retired": [{"kid", "x", "activated_at", "retired_at", "publish_until"}, ...]}

- ``signing`` lists the kids whose private key is on disk: only the active one. It is
  kept under that name so that a hub of the previous version still reads the file.
- A retired key is verify-only: its private key was destroyed when it was retired, and
  only its public half (``x``, RFC 8037 2) is kept, forever, so receipts and audit
  checkpoints it signed stay verifiable. It is published in the JWK Set until
  ``publish_until`` (null: until a ``keys prune`` finds nothing it signed still needs it).
- ``origin`` says how the key set was made: ``keys-init`` by an operator
  (``ketenhub keys init``), ``development`` on the fly by a development start,
  ``demo`` by ``ketenhub demo``. Production accepts ``keys-init`` only.

Format 1 (``{"active", "signing": [...]}``, every listed key private) is read as made
by a development start, with every non-active listed key retired at an unknown time
and published until the next rotation decides.

Writes are atomic (written aside, fsynced, renamed over, the directory fsynced) and
serialised by ``keys.lock`` (``flock``), so two rotations never lose each other's key.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hub.auth.keyfiles import exclusive
from hub.domain.errors import ServiceUnavailableError
from hub.domain.moments import format_timestamp

if TYPE_CHECKING:
    from collections.abc import Iterator

INDEX_FILE: Final = "keys.json"
LOCK_FILE: Final = "keys.lock"
FORMAT: Final = 2
KID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{43}")
"""A SHA-256 thumbprint in base64url without padding; also keeps file names plain."""


class KeyRingError(ServiceUnavailableError):
    """The key directory is missing a file or holds one that is not what it should be.

    The message names the file and what is wrong, never the key material.
    """

    def __init__(self, detail: str) -> None:
        super().__init__("keys-unavailable", detail)


class Origin(StrEnum):
    """How a key set was made (see the module docstring)."""

    KEYS_INIT = "keys-init"
    DEVELOPMENT = "development"
    DEMO = "demo"


@dataclass(frozen=True, slots=True)
class RetiredKey:
    kid: str
    x: str
    """The public key (RFC 8037 2, base64url); its thumbprint is ``kid``."""
    activated_at: datetime | None
    """None when unknown (a key of a format 1 index)."""
    retired_at: datetime | None
    """None when unknown (format 1): treated as retired just now by the next rotation."""
    publish_until: datetime | None
    """Published in the JWK Set while ``now < publish_until``; None: until pruned."""

    def published_at(self, now: datetime) -> bool:
        return self.publish_until is None or now < self.publish_until

    def as_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "x": self.x,
            "activated_at": _stamp(self.activated_at),
            "retired_at": _stamp(self.retired_at),
            "publish_until": _stamp(self.publish_until),
        }


@dataclass(frozen=True, slots=True)
class KeyIndex:
    origin: Origin
    active: str
    activated_at: datetime | None
    retired: tuple[RetiredKey, ...] = ()
    legacy_private: tuple[str, ...] = field(default=())
    """Format 1 only: non-active kids whose private key is still on disk."""

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "origin": self.origin.value,
            "active": self.active,
            "activated_at": _stamp(self.activated_at),
            "signing": [self.active],
            "retired": [key.as_json() for key in self.retired],
        }

    def encode(self) -> bytes:
        return (json.dumps(self.as_json(), indent=2) + "\n").encode()


def read_index(path: Path) -> KeyIndex:
    """The index at ``path``, format 1 or 2; ``KeyRingError`` naming the problem otherwise."""
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise KeyRingError(f"{path.name} is missing from the key directory") from None
    except (OSError, ValueError):
        raise KeyRingError(f"{path.name} cannot be read as JSON") from None
    if not isinstance(document, dict):
        raise KeyRingError(f"{path.name} is not a JSON object")
    return parse_index(document, path.name)


def parse_index(document: dict[str, Any], name: str = INDEX_FILE) -> KeyIndex:
    active, signing = document.get("active"), document.get("signing")
    if (
        not isinstance(signing, list)
        or not signing
        or not all(isinstance(kid, str) and KID_PATTERN.fullmatch(kid) for kid in signing)
        or len(set(signing)) != len(signing)
    ):
        raise KeyRingError(f"{name}: 'signing' must list distinct RFC 7638 kids")
    if not isinstance(active, str) or active not in signing:
        raise KeyRingError(f"{name}: 'active' must be one of the 'signing' kids")
    version = document.get("format", 1)
    if version == 1:
        return KeyIndex(
            origin=Origin.DEVELOPMENT,
            active=active,
            activated_at=None,
            legacy_private=tuple(kid for kid in signing if kid != active),
        )
    if version != FORMAT:
        raise KeyRingError(f"{name}: format {version!r} is not one this hub reads")
    try:
        origin = Origin(str(document.get("origin")))
    except ValueError:
        raise KeyRingError(f"{name}: 'origin' must be one of {[o.value for o in Origin]}") from None
    if signing != [active]:
        raise KeyRingError(f"{name}: 'signing' must name the active key only")
    retired_raw = document.get("retired", [])
    if not isinstance(retired_raw, list):
        raise KeyRingError(f"{name}: 'retired' must be a list")
    retired = tuple(_retired(item, name) for item in retired_raw)
    kids = [active, *(key.kid for key in retired)]
    if len(set(kids)) != len(kids):
        raise KeyRingError(f"{name}: a kid is listed twice")
    return KeyIndex(
        origin=origin,
        active=active,
        activated_at=_moment(document.get("activated_at"), name, "activated_at"),
        retired=retired,
    )


def _retired(item: object, name: str) -> RetiredKey:
    if not isinstance(item, dict):
        raise KeyRingError(f"{name}: each 'retired' entry must be an object")
    kid, x = item.get("kid"), item.get("x")
    if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid) or not isinstance(x, str):
        raise KeyRingError(f"{name}: a 'retired' entry needs a kid and its public key 'x'")
    return RetiredKey(
        kid=kid,
        x=x,
        activated_at=_moment(item.get("activated_at"), name, "activated_at"),
        retired_at=_moment(item.get("retired_at"), name, "retired_at"),
        publish_until=_moment(item.get("publish_until"), name, "publish_until"),
    )


def _moment(value: object, name: str, member: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return moment
    raise KeyRingError(f"{name}: '{member}' must be a UTC timestamp or null")


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


@contextlib.contextmanager
def index_lock(key_dir: Path) -> Iterator[None]:
    """Hold ``keys.lock`` exclusively: one rotation (or init, or prune) at a time."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive(key_dir / LOCK_FILE))
        except OSError as exc:
            raise KeyRingError(
                f"the lock file {LOCK_FILE} cannot be opened ({type(exc).__name__})"
            ) from None
        yield
