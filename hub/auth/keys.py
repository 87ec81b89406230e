"""The hub's keys, kept in one directory: the ``KeyRing`` port (``hub.ports``).

Layout of ``key_dir`` (created ``0700``, every file ``0600``)::

    keys.json             {"active": "<kid>", "signing": ["<kid>", ...]}
    signing-<kid>.pem     an Ed25519 private key (PKCS#8 PEM), one per listed kid
    pseudonym.key         32 random bytes: the HMAC-SHA256 key of pseudonyms
    seal.key              32 random bytes: the AES-256-GCM key of sealed data

- Signing is EdDSA over Ed25519 (RFC 8037 3.1). A ``kid`` is the key's JWK
  thumbprint (RFC 7638 3, SHA-256, base64url), so it names the key and nothing else.
  ``keys.json`` names the active key and every key still published in the JWK Set
  (CONTRACT.md 3, ``/.well-known/jwks.json``); rotation adds a key there and moves
  ``active``, and receipts and checkpoints signed with the old key stay verifiable.
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
import contextlib
import errno
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.domain.errors import ServiceUnavailableError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hub.domain.ids import Insz

SIGNING_ALGORITHM: Final = "EdDSA"
INDEX_FILE: Final = "keys.json"
PSEUDONYM_KEY_FILE: Final = "pseudonym.key"
SEAL_KEY_FILE: Final = "seal.key"
SECRET_KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_KID = re.compile(r"[A-Za-z0-9_-]{43}")
"""A SHA-256 thumbprint in base64url without padding; also keeps file names plain."""
_LINK_UNSUPPORTED = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


class KeyRingError(ServiceUnavailableError):
    """The key directory is missing a file or holds one that is not what it should be.

    The message names the file and what is wrong, never the key material.
    """

    def __init__(self, detail: str) -> None:
        super().__init__("keys-unavailable", detail)


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
    x = _b64url(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": jwk_thumbprint(x),
        "use": "sig",
        "alg": SIGNING_ALGORITHM,
    }


class FileKeyRing:
    """The ``KeyRing`` port over a key directory (see the module docstring)."""

    __slots__ = ("_active_kid", "_jwks", "_pseudonym_key", "_public", "_sealer", "_signing")

    def __init__(
        self,
        *,
        signing: Mapping[str, Ed25519PrivateKey],
        active_kid: str,
        pseudonym_key: bytes,
        seal_key: bytes,
    ) -> None:
        if active_kid not in signing:
            raise ValueError("the active kid must be one of the signing keys")
        if len(pseudonym_key) != SECRET_KEY_BYTES or len(seal_key) != SECRET_KEY_BYTES:
            raise ValueError("the pseudonym and sealing keys are 32 bytes each")
        self._signing = dict(signing)
        self._public = {kid: key.public_key() for kid, key in self._signing.items()}
        self._active_kid = active_kid
        self._pseudonym_key = pseudonym_key
        self._sealer = AESGCM(seal_key)
        self._jwks = tuple(public_jwk(key) for key in self._public.values())
        for kid, jwk in zip(self._public, self._jwks, strict=True):
            if jwk["kid"] != kid:
                raise ValueError("a kid must be the RFC 7638 thumbprint of its key")

    # -- making one -----------------------------------------------------------------

    @classmethod
    def load_or_create(cls, key_dir: Path, *, may_create: bool = True) -> FileKeyRing:
        """Load the key directory, creating the directory and its keys when absent.

        ``may_create`` is False for a database that already holds data: keys made anew
        then would cut every stored pseudonym, sealed answer and signature from its
        past, so a missing key set is a ``KeyRingError`` naming the directory instead.
        Raises ``KeyRingError`` too when ``keys.json`` exists but the set is incomplete
        or damaged: a lost pseudonym or sealing key is never silently replaced.
        """
        try:
            absent = not (key_dir / INDEX_FILE).exists()
            if absent and not may_create:
                problem = f"{INDEX_FILE} is missing, but the database holds data made with keys"
            else:
                if absent:
                    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                    for name in (PSEUDONYM_KEY_FILE, SEAL_KEY_FILE):
                        _create_file(key_dir / name, secrets.token_bytes(SECRET_KEY_BYTES))
                    _create_index(key_dir)
                return cls.load(key_dir)
        except KeyRingError as exc:
            problem = exc.detail
        except OSError as exc:
            problem = f"it cannot be read or made ({type(exc).__name__})"
        raise KeyRingError(
            f"The key directory {key_dir} is not usable: {problem}. Restore it from its "
            "backup, or set KETENHUB_KEY_DIR to where the hub's keys are."
        )

    @classmethod
    def load(cls, key_dir: Path) -> FileKeyRing:
        """Load an existing key directory; raises ``KeyRingError`` if it is incomplete."""
        index = _read_index(key_dir / INDEX_FILE)
        signing = {kid: _read_signing_key(key_dir / f"signing-{kid}.pem") for kid in index[1]}
        for kid, key in signing.items():
            if public_jwk(key.public_key())["kid"] != kid:
                raise KeyRingError(f"signing-{kid}.pem does not hold the key its name says")
        return cls(
            signing=signing,
            active_kid=index[0],
            pseudonym_key=_read_secret(key_dir / PSEUDONYM_KEY_FILE),
            seal_key=_read_secret(key_dir / SEAL_KEY_FILE),
        )

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

    # -- the KeyRing port -------------------------------------------------------------

    @property
    def active_kid(self) -> str:
        return self._active_kid

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        """A compact JWS (RFC 7515 7.1) with header ``{alg: EdDSA, kid, typ}``.

        ``typ`` makes the kind of token explicit (RFC 8725 3.11), so that a consent
        receipt can never pass for an access token or the other way round.
        """
        return jwt.encode(
            dict(claims),
            self._signing[self._active_kid],
            algorithm=SIGNING_ALGORITHM,
            headers={"kid": self._active_kid, "typ": typ},
        )

    def verify(self, jws: str, *, typ: str) -> dict[str, Any] | None:
        """The claims of a compact JWS of kind ``typ`` that one of these keys signed.

        None for anything else: another ``typ`` or algorithm, an unknown ``kid``, a
        signature that does not hold, or claims that are not a JSON object.
        """
        try:
            header = jwt.get_unverified_header(jws)
            kid = header.get("kid")
            key = self._public.get(kid) if isinstance(kid, str) else None
            if key is None or header.get("typ") != typ:
                return None
            claims = jwt.decode(
                jws, key, algorithms=[SIGNING_ALGORITHM], options={"verify_aud": False}
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        return claims if isinstance(claims, dict) else None

    def jwks(self) -> dict[str, Any]:
        """Every published public key (RFC 7517 5), the active one included."""
        return {"keys": [dict(jwk) for jwk in self._jwks]}

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key named ``kid``, or None when the hub has no such key."""
        return self._public.get(kid)

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
        return f"FileKeyRing(active_kid={self._active_kid!r}, signing_keys={len(self._signing)})"


# -- the directory ------------------------------------------------------------------


def _create_index(key_dir: Path) -> None:
    key = Ed25519PrivateKey.generate()
    kid = public_jwk(key.public_key())["kid"]
    pem_path = key_dir / f"signing-{kid}.pem"
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _create_file(pem_path, pem)
    index = json.dumps({"active": kid, "signing": [kid]}, indent=2) + "\n"
    if not _create_file(key_dir / INDEX_FILE, index.encode()):
        # Another worker finished first; its key set is the one, ours was never used.
        pem_path.unlink(missing_ok=True)


def _create_file(path: Path, data: bytes) -> bool:
    """Create ``path`` (mode 0600) holding ``data``, whole; False if it already exists.

    The file is written aside and hard-linked into place, which fails when the name
    is taken: readers never see half a key, and concurrent creators cannot overwrite
    each other.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".creating-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in _LINK_UNSUPPORTED:
                raise
            return _create_exclusively(path, data)
    finally:
        Path(temporary).unlink(missing_ok=True)
    _sync_directory(path.parent)
    return True


def _create_exclusively(path: Path, data: bytes) -> bool:
    """The fallback for file systems without hard links: exclusive, but not atomic."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _sync_directory(directory: Path) -> None:
    # Make the new name durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_index(path: Path) -> tuple[str, tuple[str, ...]]:
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise KeyRingError(f"{path.name} is missing from the key directory") from None
    except (OSError, ValueError):
        raise KeyRingError(f"{path.name} cannot be read as JSON") from None
    active = document.get("active") if isinstance(document, dict) else None
    signing = document.get("signing") if isinstance(document, dict) else None
    if (
        not isinstance(signing, list)
        or not signing
        or not all(isinstance(kid, str) and _KID.fullmatch(kid) for kid in signing)
        or len(set(signing)) != len(signing)
    ):
        raise KeyRingError(f"{path.name}: 'signing' must list distinct RFC 7638 kids")
    if not isinstance(active, str) or active not in signing:
        raise KeyRingError(f"{path.name}: 'active' must be one of the 'signing' kids")
    return active, tuple(signing)


def _read_signing_key(path: Path) -> Ed25519PrivateKey:
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
