"""The hub's keys, kept in one directory: the ``KeyRing`` port (``hub.ports``).

Layout of ``key_dir`` (created ``0700``, every file ``0600``)::

    keys.json             the index (``hub.auth.keyindex``): active key, retired keys, origin
    keys.lock             held while the index is rewritten (rotation, init, prune)
    signing-<kid>.pem     the active Ed25519 private key (PKCS#8 PEM)
    pseudonym.key         32 random bytes: the HMAC-SHA256 key of pseudonyms
    seal.key              32 random bytes: the AES-256-GCM key of sealed data

- Signing is EdDSA over Ed25519 (RFC 8037 3.1). A ``kid`` is the key's JWK
  thumbprint (RFC 7638 3, SHA-256, base64url), so it names the key and nothing else.
  Only the active key signs. A retired key (``hub.auth.rotation``) is verify-only: its
  private half is destroyed when it is retired, its public half kept forever, so
  receipts and audit checkpoints it signed stay verifiable (``verify``). It stays in
  the JWK Set (CONTRACT.md 3, ``/.well-known/jwks.json``) and verifies access tokens
  until its ``publish_until`` has passed (``jwks``, ``public_key``).
- A ring loaded from a directory follows rotations without a restart: at most every
  ``RELOAD_EVERY_S`` seconds, and at once when asked about a kid it does not know, it
  looks at ``keys.json`` and reloads the signing keys when the file was replaced. The
  pseudonym and sealing keys are never rotated, and are read once.
- Pseudonyms are HMAC-SHA256 of the INSZ (CONTRACT.md 4): stable, and the INSZ
  cannot be derived from them without the key.
- Sealing is AES-256-GCM with a random 96-bit nonce (NIST SP 800-38D 8.2.2) and the
  caller's ``context`` as associated data; the output is ``nonce || ciphertext``.

``keys.json`` is written last: a directory without it is being created, one with it
must be complete. Files are created whole (written aside, then linked into place)
and only when absent, so hub workers that start together agree on one key set.
Nothing here logs or shows secret material; the ``repr`` names the active kid only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import jwt
import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.auth.keyfiles import create_file
from hub.auth.keyindex import (
    INDEX_FILE,
    KeyIndex,
    KeyRingError,
    Origin,
    RetiredKey,
    read_index,
)
from hub.auth.production import check_key_dir
from hub.clock import SystemClock

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime

    from hub.domain.ids import Insz
    from hub.ports import Clock

__all__ = [
    "INDEX_FILE",
    "PSEUDONYM_KEY_FILE",
    "SEAL_KEY_FILE",
    "FileKeyRing",
    "KeyRingError",
    "Origin",
    "jwk_thumbprint",
    "public_jwk",
]

log = structlog.get_logger("hub.keys")

SIGNING_ALGORITHM: Final = "EdDSA"
PSEUDONYM_KEY_FILE: Final = "pseudonym.key"
SEAL_KEY_FILE: Final = "seal.key"
SECRET_KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
RELOAD_EVERY_S: Final = 2.0
"""How often a running hub looks whether ``keys.json`` was replaced (a rotation)."""
_TAG_BYTES: Final = 16


def jwk_thumbprint(x: str) -> str:
    """The RFC 7638 section 3 thumbprint of an Ed25519 public JWK (RFC 8037 2).

    The required members of an OKP key are ``crv``, ``kty`` and ``x``, serialised in
    lexicographic order without whitespace, hashed with SHA-256, base64url-encoded.
    """
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True
    )
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The public JWK of an Ed25519 key (RFC 8037 2), with its thumbprint ``kid``."""
    x = public_x(public_key)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": jwk_thumbprint(x),
        "use": "sig",
        "alg": SIGNING_ALGORITHM,
    }


def public_x(public_key: Ed25519PublicKey) -> str:
    """The JWK ``x`` member of an Ed25519 public key (RFC 8037 2)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64url(raw)


@dataclass(frozen=True, slots=True)
class _SigningKeys:
    """One consistent state of the signing keys; a reload swaps the whole of it."""

    active_kid: str
    signer: Ed25519PrivateKey
    public: Mapping[str, Ed25519PublicKey]
    """Every key the hub ever signed with and still knows, retired ones included."""
    jwks: tuple[tuple[dict[str, str], RetiredKey | None], ...]
    """Each public JWK with its retirement (None for the active key)."""
    origin: Origin

    @classmethod
    def make(
        cls,
        signing: Mapping[str, Ed25519PrivateKey],
        active_kid: str,
        retired: Sequence[RetiredKey],
        origin: Origin,
    ) -> _SigningKeys:
        if active_kid not in signing:
            raise ValueError("the active kid must be one of the signing keys")
        public: dict[str, Ed25519PublicKey] = {}
        jwks: list[tuple[dict[str, str], RetiredKey | None]] = []
        legacy = [
            RetiredKey(kid, public_x(key.public_key()), None, None, None)
            for kid, key in signing.items()
            if kid != active_kid
        ]
        active = signing[active_kid].public_key()
        public[active_kid] = active
        jwks.append((public_jwk(active), None))
        for entry in [*legacy, *retired]:
            key = _public_from_x(entry.x)
            public[entry.kid] = key
            jwks.append((public_jwk(key), entry))
        for kid, (jwk, _) in zip(public, jwks, strict=True):
            if jwk["kid"] != kid:
                raise ValueError("a kid must be the RFC 7638 thumbprint of its key")
        return cls(active_kid, signing[active_kid], public, tuple(jwks), origin)

    def published(self, now: datetime) -> list[dict[str, str]]:
        return [
            dict(jwk) for jwk, retired in self.jwks if retired is None or retired.published_at(now)
        ]

    def published_key(self, kid: str, now: datetime) -> Ed25519PublicKey | None:
        for jwk, retired in self.jwks:
            if jwk["kid"] == kid and (retired is None or retired.published_at(now)):
                return self.public[kid]
        return None


class FileKeyRing:
    """The ``KeyRing`` port over a key directory (see the module docstring)."""

    __slots__ = (
        "_clock",
        "_dir",
        "_keys",
        "_monotonic",
        "_next_check",
        "_pseudonym_key",
        "_reload_lock",
        "_sealer",
        "_stamp",
    )

    def __init__(
        self,
        *,
        signing: Mapping[str, Ed25519PrivateKey],
        active_kid: str,
        pseudonym_key: bytes,
        seal_key: bytes,
        retired: Sequence[RetiredKey] = (),
        origin: Origin = Origin.DEVELOPMENT,
        clock: Clock | None = None,
    ) -> None:
        """``signing``: the active key, and (format 1 only) older keys still published.

        ``clock`` says when a retired key's publication ends (``jwks``, ``public_key``).
        """
        if len(pseudonym_key) != SECRET_KEY_BYTES or len(seal_key) != SECRET_KEY_BYTES:
            raise ValueError("the pseudonym and sealing keys are 32 bytes each")
        self._keys = _SigningKeys.make(signing, active_kid, retired, origin)
        self._pseudonym_key = pseudonym_key
        self._sealer = AESGCM(seal_key)
        self._clock: Clock = clock or SystemClock()
        self._dir: Path | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._monotonic: Callable[[], float] = time.monotonic
        self._next_check = 0.0
        self._reload_lock = threading.Lock()

    # -- making one -----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        key_dir: Path,
        *,
        production: bool,
        may_create: bool = True,
        clock: Clock | None = None,
    ) -> FileKeyRing:
        """The hub's keys as a start needs them.

        In production (``KETENHUB_ENV=production``) the directory must pass
        ``hub.auth.production.check_key_dir`` and is never created (``ketenhub keys
        init`` does that, deliberately); otherwise as ``load_or_create``, marking keys it
        makes as development keys.
        """
        if production:
            check_key_dir(key_dir)
            return cls.load(key_dir, clock=clock)
        return cls.load_or_create(key_dir, may_create=may_create, clock=clock)

    @classmethod
    def load_or_create(
        cls,
        key_dir: Path,
        *,
        may_create: bool = True,
        origin: Origin = Origin.DEVELOPMENT,
        clock: Clock | None = None,
    ) -> FileKeyRing:
        """Load the key directory, creating the directory and its keys when absent.

        ``may_create`` is False for a database that already holds data: keys made anew
        then would cut every stored pseudonym, sealed answer and signature from its
        past, so a missing key set is a ``KeyRingError`` naming the directory instead.
        Raises ``KeyRingError`` too when ``keys.json`` exists but the set is incomplete
        or damaged: a lost pseudonym or sealing key is never silently replaced.
        Keys made here are marked with ``origin`` (``keys.json``).
        """
        clock = clock or SystemClock()
        try:
            absent = not (key_dir / INDEX_FILE).exists()
            if absent and not may_create:
                problem = f"{INDEX_FILE} is missing, but the database holds data made with keys"
            else:
                if absent:
                    create_key_set(key_dir, origin=origin, now=clock.now())
                return cls.load(key_dir, clock=clock)
        except KeyRingError as exc:
            problem = exc.detail
        except OSError as exc:
            problem = f"it cannot be read or made ({type(exc).__name__})"
        raise KeyRingError(
            f"The key directory {key_dir} is not usable: {problem}. Restore it from its "
            "backup, or set KETENHUB_KEY_DIR to where the hub's keys are."
        )

    @classmethod
    def load(
        cls,
        key_dir: Path,
        *,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> FileKeyRing:
        """Load an existing key directory; raises ``KeyRingError`` if it is incomplete.

        The ring follows later rotations of the directory (see the module docstring);
        ``monotonic`` times its looks at ``keys.json``.
        """
        stamp = _stamp_of(key_dir / INDEX_FILE)
        keys = _load_signing(key_dir)
        ring = cls(
            signing={keys.active_kid: keys.signer},
            active_kid=keys.active_kid,
            pseudonym_key=_read_secret(key_dir / PSEUDONYM_KEY_FILE),
            seal_key=_read_secret(key_dir / SEAL_KEY_FILE),
            clock=clock,
        )
        ring._keys = keys
        ring._monotonic = monotonic
        ring._dir = key_dir
        ring._stamp = stamp
        ring._next_check = ring._monotonic() + RELOAD_EVERY_S
        return ring

    @classmethod
    def ephemeral(cls) -> FileKeyRing:
        """Fresh keys held in memory only: for tests and throw-away runs."""
        key = Ed25519PrivateKey.generate()
        kid = public_jwk(key.public_key())["kid"]
        return cls(
            signing={kid: key},
            active_kid=kid,
            pseudonym_key=secrets.token_bytes(SECRET_KEY_BYTES),
            seal_key=secrets.token_bytes(SECRET_KEY_BYTES),
        )

    # -- following rotations ------------------------------------------------------------

    def _current(self, *, at_once: bool = False) -> _SigningKeys:
        if self._dir is not None and (at_once or self._monotonic() >= self._next_check):
            self._refresh()
        return self._keys

    def _refresh(self) -> None:
        directory = self._dir
        assert directory is not None
        with self._reload_lock:
            self._next_check = self._monotonic() + RELOAD_EVERY_S
            try:
                stamp = _stamp_of(directory / INDEX_FILE)
                if stamp == self._stamp:
                    return
                keys = _load_signing(directory)
            except KeyRingError as exc:
                # Keep signing with the keys in hand: a damaged index must not stop the hub;
                # the next change of the file is tried again.
                if stamp != self._stamp:
                    log.warning("keys_reload_failed", detail=exc.detail)
                self._stamp = stamp
                return
            self._keys, self._stamp = keys, stamp
        log.info("keys_reloaded", active_kid=keys.active_kid, known=len(keys.public))

    def refresh(self) -> None:
        """Look at the key directory now (rather than within ``RELOAD_EVERY_S``)."""
        if self._dir is not None:
            self._refresh()

    # -- the KeyRing port -------------------------------------------------------------

    @property
    def active_kid(self) -> str:
        return self._current().active_kid

    @property
    def _signing(self) -> Mapping[str, Ed25519PrivateKey]:
        """The private key that signs, by kid (tests forge tokens with it)."""
        keys = self._current()
        return {keys.active_kid: keys.signer}

    @property
    def origin(self) -> Origin:
        return self._current().origin

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        """A compact JWS (RFC 7515 7.1) with header ``{alg: EdDSA, kid, typ}``.

        ``typ`` makes the kind of token explicit (RFC 8725 3.11), so that a consent
        receipt can never pass for an access token or the other way round.
        """
        keys = self._current()
        return jwt.encode(
            dict(claims),
            keys.signer,
            algorithm=SIGNING_ALGORITHM,
            headers={"kid": keys.active_kid, "typ": typ},
        )

    def verify(self, jws: str, *, typ: str) -> dict[str, Any] | None:
        """The claims of a compact JWS of kind ``typ`` that one of these keys signed.

        Retired keys verify forever (old receipts, audit checkpoints). None for anything
        else: another ``typ`` or algorithm, an unknown ``kid``, a signature that does
        not hold, or claims that are not a JSON object.
        """
        try:
            header = jwt.get_unverified_header(jws)
            kid = header.get("kid")
            if not isinstance(kid, str) or header.get("typ") != typ:
                return None
            key = self._current().public.get(kid)
            if key is None:  # perhaps signed by another worker after a rotation
                key = self._current(at_once=True).public.get(kid)
            if key is None:
                return None
            claims = jwt.decode(
                jws, key, algorithms=[SIGNING_ALGORITHM], options={"verify_aud": False}
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        return claims if isinstance(claims, dict) else None

    def jwks(self) -> dict[str, Any]:
        """Every published public key (RFC 7517 5): the active one, and each retired one
        until its ``publish_until``."""
        return {"keys": self._current().published(self._clock.now())}

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The published public key named ``kid`` (access tokens), or None."""
        keys = self._current()
        if kid not in keys.public:
            keys = self._current(at_once=True)
        return keys.published_key(kid, self._clock.now())

    def pseudonym(self, participant: Insz) -> str:
        """HMAC-SHA256 (RFC 2104) of the INSZ's digits under the pseudonym key, in hex."""
        return hmac.new(
            self._pseudonym_key, participant.digits.encode(), hashlib.sha256
        ).hexdigest()

    def digest(self, value: str, *, context: str) -> str:
        """HMAC-SHA256 under the pseudonym key, separated by ``context`` from pseudonyms."""
        message = f"{context}\x00{value}".encode()
        return hmac.new(self._pseudonym_key, message, hashlib.sha256).hexdigest()

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        """AES-256-GCM with a random 96-bit nonce; ``context`` is the associated data."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._sealer.encrypt(nonce, plaintext, context)

    def unseal(self, sealed: bytes, *, context: bytes) -> bytes:
        """The plaintext; ``ValueError`` on any failure, whatever its cause."""
        if len(sealed) < NONCE_BYTES + _TAG_BYTES:
            raise ValueError("cannot unseal")
        try:
            return self._sealer.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
        except InvalidTag:
            raise ValueError("cannot unseal") from None

    def __repr__(self) -> str:
        keys = self._keys
        return f"FileKeyRing(active_kid={keys.active_kid!r}, known_keys={len(keys.public)})"


# -- the directory ------------------------------------------------------------------


def create_key_set(key_dir: Path, *, origin: Origin, now: datetime) -> bool:
    """Make a complete key set in ``key_dir`` unless one is there; False if one was.

    Safe for workers starting together: each file is created only when absent, and the
    index last, so all of them end up with the first complete set.
    """
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in (PSEUDONYM_KEY_FILE, SEAL_KEY_FILE):
        create_file(key_dir / name, secrets.token_bytes(SECRET_KEY_BYTES))
    key = Ed25519PrivateKey.generate()
    kid = write_signing_key(key_dir, key)
    index = KeyIndex(origin=origin, active=kid, activated_at=now)
    if create_file(key_dir / INDEX_FILE, index.encode()):
        return True
    # Another worker finished first; its key set is the one, ours was never used.
    (key_dir / f"signing-{kid}.pem").unlink(missing_ok=True)
    return False


def write_signing_key(key_dir: Path, key: Ed25519PrivateKey) -> str:
    """Store a private signing key as ``signing-<kid>.pem``; returns its kid."""
    kid = public_jwk(key.public_key())["kid"]
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    create_file(key_dir / f"signing-{kid}.pem", pem)
    return kid


def _stamp_of(path: Path) -> tuple[int, int, int] | None:
    """What changes when the index is replaced: a rename gives it a new inode."""
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_size)


def _load_signing(key_dir: Path) -> _SigningKeys:
    index = read_index(key_dir / INDEX_FILE)
    signing = {
        kid: read_signing_key(key_dir / f"signing-{kid}.pem")
        for kid in (index.active, *index.legacy_private)
    }
    for kid, key in signing.items():
        if public_jwk(key.public_key())["kid"] != kid:
            raise KeyRingError(f"signing-{kid}.pem does not hold the key its name says")
    try:
        return _SigningKeys.make(signing, index.active, index.retired, index.origin)
    except ValueError:
        raise KeyRingError(f"{INDEX_FILE}: a retired key is not the one its kid names") from None


def _public_from_x(x: str) -> Ed25519PublicKey:
    try:
        raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError):
        raise ValueError("not an Ed25519 public key") from None


def read_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyRingError(f"{path.name} is missing from the key directory") from None
    except (OSError, ValueError, TypeError):
        raise KeyRingError(f"{path.name} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyRingError(f"{path.name} is not an Ed25519 key")
    return key


def _read_secret(path: Path) -> bytes:
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        raise KeyRingError(f"{path.name} is missing from the key directory") from None
    except OSError:
        raise KeyRingError(f"{path.name} cannot be read") from None
    if len(secret) != SECRET_KEY_BYTES:
        raise KeyRingError(f"{path.name} must hold exactly {SECRET_KEY_BYTES} bytes")
    return secret


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
