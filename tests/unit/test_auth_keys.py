"""The hub's key directory: signing (RFC 8037, RFC 7638 kids), pseudonyms, sealing."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import threading
from typing import TYPE_CHECKING

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import ECKey, OKPKey, RSAKey

from hub.auth.jwks import validate_client_jwks
from hub.auth.keys import (
    INDEX_FILE,
    PSEUDONYM_KEY_FILE,
    SEAL_KEY_FILE,
    FileKeyRing,
    KeyRingError,
    jwk_thumbprint,
    public_x,
)
from hub.domain.errors import InvalidInputError, ServiceUnavailableError
from hub.domain.ids import Insz

if TYPE_CHECKING:
    from pathlib import Path

INSZ = Insz.parse("85073003328")
OTHER_INSZ = Insz.parse("90020199704")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the directory ------------------------------------------------------------------


def test_load_or_create_makes_a_private_directory_of_private_files(tmp_path: Path) -> None:
    key_dir = tmp_path / "var" / "keys"

    keys = FileKeyRing.load_or_create(key_dir)

    assert mode(key_dir) == 0o700
    names = sorted(path.name for path in key_dir.iterdir())
    assert names == sorted(
        [INDEX_FILE, PSEUDONYM_KEY_FILE, SEAL_KEY_FILE, f"signing-{keys.active_kid}.pem"]
    )
    for path in key_dir.iterdir():
        assert mode(path) == 0o600, path.name
    index = json.loads((key_dir / INDEX_FILE).read_text())
    assert index["active"] == keys.active_kid
    assert index["signing"] == [keys.active_kid]  # what the previous version reads
    assert index["origin"] == "development"
    assert index["retired"] == []
    assert len((key_dir / PSEUDONYM_KEY_FILE).read_bytes()) == 32
    assert len((key_dir / SEAL_KEY_FILE).read_bytes()) == 32


def test_a_second_start_loads_the_same_keys(tmp_path: Path) -> None:
    first = FileKeyRing.load_or_create(tmp_path)
    sealed = first.seal(b"answer", context=b"ctx")

    second = FileKeyRing.load_or_create(tmp_path)

    assert second.active_kid == first.active_kid
    assert second.jwks() == first.jwks()
    assert second.pseudonym(INSZ) == first.pseudonym(INSZ)
    assert second.unseal(sealed, context=b"ctx") == b"answer"
    assert FileKeyRing.load(tmp_path).active_kid == first.active_kid


def test_workers_starting_together_agree_on_one_key_set(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    rings: list[FileKeyRing] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        rings.append(FileKeyRing.load_or_create(key_dir))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(rings) == 8
    assert len({ring.active_kid for ring in rings}) == 1
    assert len({ring.pseudonym(INSZ) for ring in rings}) == 1
    assert len(list(key_dir.glob("signing-*.pem"))) == 1
    assert not list(key_dir.glob(".creating-*"))


def test_an_interrupted_creation_is_completed_with_the_secrets_already_made(
    tmp_path: Path,
) -> None:
    (tmp_path / PSEUDONYM_KEY_FILE).write_bytes(b"\x01" * 32)

    keys = FileKeyRing.load_or_create(tmp_path)

    expected = hmac.new(b"\x01" * 32, INSZ.digits.encode(), hashlib.sha256).hexdigest()
    assert keys.pseudonym(INSZ) == expected


@pytest.mark.parametrize("lost", [PSEUDONYM_KEY_FILE, SEAL_KEY_FILE, "signing"])
def test_a_lost_key_of_a_complete_set_is_never_silently_replaced(tmp_path: Path, lost: str) -> None:
    keys = FileKeyRing.load_or_create(tmp_path)
    name = f"signing-{keys.active_kid}.pem" if lost == "signing" else lost
    (tmp_path / name).unlink()

    with pytest.raises(KeyRingError, match="is missing") as caught:
        FileKeyRing.load_or_create(tmp_path)
    assert isinstance(caught.value, ServiceUnavailableError)
    assert not (tmp_path / name).exists()


def test_load_does_not_create(tmp_path: Path) -> None:
    with pytest.raises(KeyRingError, match=r"keys\.json is missing"):
        FileKeyRing.load(tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "index",
    [
        "not json",
        json.dumps({"active": "../../etc/passwd", "signing": ["../../etc/passwd"]}),
        json.dumps({"active": "x", "signing": []}),
        json.dumps([]),
    ],
)
def test_a_damaged_index_is_refused(tmp_path: Path, index: str) -> None:
    FileKeyRing.load_or_create(tmp_path)
    (tmp_path / INDEX_FILE).write_text(index)

    with pytest.raises(KeyRingError, match=INDEX_FILE):
        FileKeyRing.load(tmp_path)


def test_an_index_whose_active_kid_is_not_listed_is_refused(tmp_path: Path) -> None:
    keys = FileKeyRing.load_or_create(tmp_path)
    other = "A" * 43
    (tmp_path / INDEX_FILE).write_text(json.dumps({"active": other, "signing": [keys.active_kid]}))

    with pytest.raises(KeyRingError, match="'active'"):
        FileKeyRing.load(tmp_path)


def test_a_signing_key_that_is_not_the_one_its_kid_names_is_refused(tmp_path: Path) -> None:
    keys = FileKeyRing.load_or_create(tmp_path)
    elsewhere = FileKeyRing.load_or_create(tmp_path / "other")
    pem = (tmp_path / "other" / f"signing-{elsewhere.active_kid}.pem").read_bytes()
    (tmp_path / f"signing-{keys.active_kid}.pem").write_bytes(pem)

    with pytest.raises(KeyRingError, match="does not hold the key"):
        FileKeyRing.load(tmp_path)


def test_a_secret_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    FileKeyRing.load_or_create(tmp_path)
    (tmp_path / SEAL_KEY_FILE).write_bytes(b"short")

    with pytest.raises(KeyRingError, match="exactly 32 bytes"):
        FileKeyRing.load(tmp_path)


def test_a_signing_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    keys = FileKeyRing.load_or_create(tmp_path)
    (tmp_path / f"signing-{keys.active_kid}.pem").write_text("-----BEGIN nonsense")

    with pytest.raises(KeyRingError, match="not an unencrypted PEM"):
        FileKeyRing.load(tmp_path)


# -- signing and the JWK Set --------------------------------------------------------


def test_the_kid_is_the_rfc_7638_thumbprint() -> None:
    # RFC 8037 appendix A.3: the thumbprint of the RFC 8037 A.2 Ed25519 public key.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    assert jwk_thumbprint(x) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_the_jwks_publishes_public_keys_only() -> None:
    keys = FileKeyRing.ephemeral()

    (jwk,) = keys.jwks()["keys"]

    assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert jwk["kty"] == "OKP"
    assert jwk["crv"] == "Ed25519"
    assert jwk["use"] == "sig"
    assert jwk["alg"] == "EdDSA"
    assert jwk["kid"] == keys.active_kid == jwk_thumbprint(jwk["x"])


def test_the_jwks_cannot_be_changed_through_a_returned_copy() -> None:
    keys = FileKeyRing.ephemeral()
    keys.jwks()["keys"][0]["kid"] = "changed"
    assert keys.jwks()["keys"][0]["kid"] == keys.active_kid


def test_sign_makes_a_compact_jws_that_the_published_key_verifies() -> None:
    keys = FileKeyRing.ephemeral()

    token = keys.sign({"sub": "x", "n": 1}, typ="consent-receipt+jwt")

    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": keys.active_kid, "typ": "consent-receipt+jwt"}
    public = jwt.PyJWK(keys.jwks()["keys"][0])
    assert jwt.decode(token, public, algorithms=["EdDSA"]) == {"sub": "x", "n": 1}


def test_public_key_is_found_by_kid_only() -> None:
    keys = FileKeyRing.ephemeral()
    assert keys.public_key(keys.active_kid) is not None
    assert keys.public_key("unknown") is None


# -- pseudonyms ---------------------------------------------------------------------


def test_a_pseudonym_is_the_hmac_of_the_insz_under_the_pseudonym_key(tmp_path: Path) -> None:
    keys = FileKeyRing.load_or_create(tmp_path)
    key = (tmp_path / PSEUDONYM_KEY_FILE).read_bytes()

    pseudonym = keys.pseudonym(INSZ)

    assert pseudonym == hmac.new(key, b"85073003328", hashlib.sha256).hexdigest()
    assert len(pseudonym) == 64
    assert INSZ.digits not in pseudonym
    assert keys.pseudonym(OTHER_INSZ) != pseudonym


def test_pseudonyms_of_two_hubs_differ() -> None:
    assert FileKeyRing.ephemeral().pseudonym(INSZ) != FileKeyRing.ephemeral().pseudonym(INSZ)


# -- sealing ------------------------------------------------------------------------


def test_seal_and_unseal_round_trip_with_a_fresh_nonce_each_time() -> None:
    keys = FileKeyRing.ephemeral()

    first = keys.seal(b"disclosed values", context=b"idem:vdab:key-1")
    second = keys.seal(b"disclosed values", context=b"idem:vdab:key-1")

    assert first != second
    assert first[:12] != second[:12]
    assert len(first) == 12 + len(b"disclosed values") + 16
    assert b"disclosed values" not in first
    assert keys.unseal(first, context=b"idem:vdab:key-1") == b"disclosed values"
    assert keys.unseal(second, context=b"idem:vdab:key-1") == b"disclosed values"


def test_unseal_refuses_another_context() -> None:
    keys = FileKeyRing.ephemeral()
    sealed = keys.seal(b"x", context=b"idem:vdab:key-1")
    with pytest.raises(ValueError, match="cannot unseal"):
        keys.unseal(sealed, context=b"idem:ocmw:key-1")


@pytest.mark.parametrize("position", [0, 12, -1])
def test_unseal_refuses_any_changed_byte(position: int) -> None:
    keys = FileKeyRing.ephemeral()
    sealed = bytearray(keys.seal(b"secret", context=b"c"))
    sealed[position] ^= 0x01
    with pytest.raises(ValueError, match="cannot unseal"):
        keys.unseal(bytes(sealed), context=b"c")


@pytest.mark.parametrize("sealed", [b"", b"\x00" * 27])
def test_unseal_refuses_what_is_too_short_to_be_sealed(sealed: bytes) -> None:
    with pytest.raises(ValueError, match="cannot unseal"):
        FileKeyRing.ephemeral().unseal(sealed, context=b"c")


def test_unseal_refuses_what_another_key_sealed() -> None:
    sealed = FileKeyRing.ephemeral().seal(b"x", context=b"c")
    with pytest.raises(ValueError, match="cannot unseal"):
        FileKeyRing.ephemeral().unseal(sealed, context=b"c")


# -- no secret shows --------------------------------------------------------------------


def test_the_repr_shows_no_secret(tmp_path: Path) -> None:
    keys = FileKeyRing.load_or_create(tmp_path)
    shown = repr(keys) + str(keys)

    assert keys.active_kid in shown
    for name in (PSEUDONYM_KEY_FILE, SEAL_KEY_FILE):
        secret = (tmp_path / name).read_bytes()
        assert secret.hex() not in shown
        assert repr(secret) not in shown
    assert "PRIVATE KEY" not in shown
    with pytest.raises(AttributeError):
        keys.__dict__  # noqa: B018  # slots: no attribute dictionary to dump


def test_constructor_checks_its_arguments() -> None:
    key = Ed25519PrivateKey.generate()
    kid = jwk_thumbprint(public_x(key.public_key()))
    with pytest.raises(ValueError, match="active kid"):
        FileKeyRing(signing={}, active_kid="x", pseudonym_key=b"k" * 32, seal_key=b"k" * 32)
    with pytest.raises(ValueError, match="32 bytes"):
        FileKeyRing(
            signing={kid: key},
            active_kid=kid,
            pseudonym_key=b"short",
            seal_key=b"k" * 32,
        )


# -- a private_key_jwt client's JWK Set (hub.auth.jwks) ---------------------------------

EC_PUBLIC = ECKey.generate_key("P-256", parameters={"kid": "ec-1"}).as_dict(private=False)
ED_PUBLIC = OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"}).as_dict(private=False)


def test_a_set_of_public_p256_and_ed25519_keys_is_valid() -> None:
    jwks = {"keys": [EC_PUBLIC, ED_PUBLIC | {"use": "sig", "alg": "EdDSA"}]}
    assert validate_client_jwks(jwks) == jwks


def invalid(jwks: object) -> str:
    with pytest.raises(InvalidInputError) as caught:
        validate_client_jwks(jwks)
    assert caught.value.reason == "invalid-jwks"
    assert caught.value.status == 422
    return caught.value.detail


@pytest.mark.parametrize("jwks", [None, [], "keys", {"keys": "x"}, {"kty": "EC"}, {"keys": []}])
def test_a_set_must_be_an_object_with_keys(jwks: object) -> None:
    invalid(jwks)


def test_a_private_key_is_refused_and_its_secret_not_repeated() -> None:
    private = ECKey.generate_key("P-256", parameters={"kid": "ec-1"}).as_dict(private=True)
    detail = invalid({"keys": [private]})
    assert "private key material" in detail
    assert str(private["d"]) not in detail


@pytest.mark.parametrize(
    "key",
    [
        ECKey.generate_key("P-384", parameters={"kid": "k"}).as_dict(private=False),
        OKPKey.generate_key("Ed448", parameters={"kid": "k"}).as_dict(private=False),
        OKPKey.generate_key("X25519", parameters={"kid": "k"}).as_dict(private=False),
        RSAKey.generate_key(2048, parameters={"kid": "k"}).as_dict(private=False),
        {"kty": "oct", "k": "c2VjcmV0", "kid": "k"},
    ],
)
def test_only_p256_and_ed25519_keys_are_accepted(key: dict[str, object]) -> None:
    invalid({"keys": [key]})


@pytest.mark.parametrize(
    "change",
    [
        {"kid": None},
        {"kid": ""},
        {"kid": "k" * 129},
        {"use": "enc"},
        {"alg": "ES384"},
        {"key_ops": ["encrypt"]},
        {"x": "AAAA"},
        {"y": None},
    ],
)
def test_a_key_must_be_whole_named_and_meant_for_signatures(change: dict[str, object]) -> None:
    key = {name: value for name, value in (EC_PUBLIC | change).items() if value is not None}
    invalid({"keys": [key]})


def test_kids_must_be_distinct() -> None:
    assert "own 'kid'" in invalid({"keys": [EC_PUBLIC, ED_PUBLIC | {"kid": "ec-1"}]})


def test_a_set_is_bounded() -> None:
    invalid({"keys": [EC_PUBLIC | {"kid": f"k{n}"} for n in range(21)]})
