"""Master keys and participant data keys (``hub.auth.datakeys``): wrapping, the binding
of a wrapped key to its participant and master key, rotation, reload, and the files."""

from __future__ import annotations

import dataclasses
import json
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.auth.datakeys import INDEX_FILE, MasterKeyError, MasterKeyRing, master_id

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
ALICE = "a" * 64
BOB = "b" * 64


def test_a_data_key_unwraps_to_the_same_key_under_the_right_master_key() -> None:
    ring = MasterKeyRing.ephemeral()
    key, wrapped = ring.new_data_key(ALICE, NOW)
    sealed = key.seal(b"evidence", context=b"consent-evidence:1")
    again = ring.unwrap(wrapped)
    assert again.key_id == key.key_id == wrapped.key_id
    assert wrapped.master_id == ring.active_id
    assert again.unseal(sealed, context=b"consent-evidence:1") == b"evidence"
    assert b"evidence" not in sealed


def test_another_master_key_does_not_unwrap_it() -> None:
    _, wrapped = MasterKeyRing.ephemeral().new_data_key(ALICE, NOW)
    other = MasterKeyRing.ephemeral()
    with pytest.raises(ValueError, match="cannot unwrap"):
        other.unwrap(wrapped)
    # Not even when the row claims the other ring's key id.
    with pytest.raises(ValueError, match="cannot unwrap"):
        other.unwrap(dataclasses.replace(wrapped, master_id=other.active_id))


def test_a_wrapped_key_moved_to_another_participant_does_not_unwrap() -> None:
    ring = MasterKeyRing.ephemeral()
    _, wrapped = ring.new_data_key(ALICE, NOW)
    with pytest.raises(ValueError, match="cannot unwrap"):
        ring.unwrap(dataclasses.replace(wrapped, participant=BOB))
    with pytest.raises(ValueError, match="cannot unwrap"):
        ring.unwrap(dataclasses.replace(wrapped, key_id="0" * 32))


@given(position=st.integers(min_value=0, max_value=59), flip=st.integers(1, 255))
def test_any_changed_byte_of_a_wrapped_key_is_refused(position: int, flip: int) -> None:
    ring = _RING
    blob = bytearray(_WRAPPED.wrapped)
    blob[position] ^= flip
    with pytest.raises(ValueError, match="cannot unwrap"):
        ring.unwrap(dataclasses.replace(_WRAPPED, wrapped=bytes(blob)))


_RING = MasterKeyRing.ephemeral()
_, _WRAPPED = _RING.new_data_key(ALICE, NOW)


def test_data_under_one_dek_does_not_open_under_another_or_another_context() -> None:
    ring = MasterKeyRing.ephemeral()
    alice, _ = ring.new_data_key(ALICE, NOW)
    bob, _ = ring.new_data_key(BOB, NOW)
    sealed = alice.seal(b"x", context=b"c")
    with pytest.raises(ValueError, match="cannot unseal"):
        bob.unseal(sealed, context=b"c")
    with pytest.raises(ValueError, match="cannot unseal"):
        alice.unseal(sealed, context=b"d")
    with pytest.raises(ValueError, match="cannot unseal"):
        alice.unseal(b"short", context=b"c")


def test_the_key_directory_holds_private_files_named_by_their_key(tmp_path: Path) -> None:
    ring = MasterKeyRing.load_or_create(tmp_path / "keys")
    files = {p.name for p in (tmp_path / "keys").iterdir()}
    assert files == {INDEX_FILE, f"master-{ring.active_id}.key"}
    for path in (tmp_path / "keys").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = (tmp_path / "keys" / f"master-{ring.active_id}.key").read_bytes()
    assert master_id(secret) == ring.active_id
    assert secret.hex() not in repr(ring)


def test_workers_starting_together_agree_on_one_first_master_key(tmp_path: Path) -> None:
    rings: list[MasterKeyRing] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        rings.append(MasterKeyRing.load_or_create(tmp_path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.active_id for r in rings}) == 1
    assert len(list(tmp_path.glob("master-*.key"))) == 1


def test_a_missing_index_is_refused_when_data_keys_exist(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match=r"master-keys\.json is missing"):
        MasterKeyRing.load_or_create(tmp_path, may_create=False)
    assert not list(tmp_path.iterdir())


def test_a_master_key_file_that_is_not_the_key_its_name_says_is_refused(tmp_path: Path) -> None:
    ring = MasterKeyRing.load_or_create(tmp_path)
    (tmp_path / f"master-{ring.active_id}.key").write_bytes(b"\x00" * 32)
    with pytest.raises(MasterKeyError, match="does not hold the key its name says"):
        MasterKeyRing.load_or_create(tmp_path)


def test_a_damaged_index_is_refused_not_replaced(tmp_path: Path) -> None:
    MasterKeyRing.load_or_create(tmp_path)
    (tmp_path / INDEX_FILE).write_text('{"active": "x", "keys": []}')
    with pytest.raises(MasterKeyError, match="'keys' must list"):
        MasterKeyRing.load_or_create(tmp_path)
    assert json.loads((tmp_path / INDEX_FILE).read_text())["keys"] == []


def test_rotation_keeps_the_old_key_and_rewraps_the_same_dek(tmp_path: Path) -> None:
    ring = MasterKeyRing.load_or_create(tmp_path)
    old = ring.active_id
    key, wrapped = ring.new_data_key(ALICE, NOW)
    new = ring.rotate()
    assert new != old
    assert set(ring.ids) == {old, new}
    assert ring.unwrap(wrapped).key_id == key.key_id  # still opens under the old key
    moved = ring.rewrap(wrapped)
    assert moved.master_id == new
    assert moved.key_id == wrapped.key_id
    sealed = key.seal(b"x", context=b"c")
    assert ring.unwrap(moved).unseal(sealed, context=b"c") == b"x"


def test_a_running_hub_picks_up_a_rotation_made_by_another_process(tmp_path: Path) -> None:
    running = MasterKeyRing.load_or_create(tmp_path)
    operator = MasterKeyRing.load_or_create(tmp_path)
    _, before = running.new_data_key(ALICE, NOW)
    new = operator.rotate()
    moved = operator.rewrap(before)
    # A row naming a master key it does not hold: it reads the directory again.
    assert running.unwrap(moved).key_id == before.key_id
    other = MasterKeyRing.load_or_create(tmp_path)
    operator.rotate()
    # New DEKs go under the newest key even before any row names it.
    _, fresh = other.new_data_key(BOB, NOW)
    assert fresh.master_id == operator.active_id != new


def test_retire_removes_only_unused_keys_and_never_the_active_one(tmp_path: Path) -> None:
    ring = MasterKeyRing.load_or_create(tmp_path)
    first = ring.active_id
    second = ring.rotate()
    third = ring.rotate()
    assert ring.retire([first, third]) == [first]
    assert set(ring.ids) == {second, third}
    assert not (tmp_path / f"master-{first}.key").exists()
    assert MasterKeyRing.load_or_create(tmp_path).active_id == third


def test_an_in_memory_ring_cannot_be_rotated() -> None:
    with pytest.raises(MasterKeyError, match="cannot be rotated"):
        MasterKeyRing.ephemeral().rotate()


@given(
    other=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).filter(
        lambda p: p != ALICE
    )
)
def test_no_other_pseudonym_unwraps_a_participants_key(other: str) -> None:
    with pytest.raises(ValueError, match="cannot unwrap"):
        _RING.unwrap(dataclasses.replace(_WRAPPED, participant=other))


@given(plaintext=st.binary(max_size=2048), context=st.binary(max_size=64))
def test_what_a_data_key_seals_it_opens_with_the_same_context(
    plaintext: bytes, context: bytes
) -> None:
    key = _RING.unwrap(_WRAPPED)
    assert key.unseal(key.seal(plaintext, context=context), context=context) == plaintext
