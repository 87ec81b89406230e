"""Signing-key rotation (``hub.auth.rotation``) and running rings following it (issue #5).

The consents a retired key's receipts vouch for come from a hand-written fake of the
database's answer (``Outstanding``); ``tests/integration/test_key_rotation.py`` asks a
real database.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.auth.keyindex import INDEX_FILE, KeyRingError, Origin, read_index
from hub.auth.keys import RELOAD_EVERY_S, FileKeyRing, public_jwk
from hub.auth.rotation import TOKEN_WINDOW, init_keys, prune, rotate
from hub.auth.tokens import TokenIssuer, TokenVerifier
from hub.clock import FixedClock
from hub.domain.checkpoints import CHECKPOINT_TYP, checkpoint_claims
from hub.domain.errors import UnauthenticatedError
from hub.domain.principal import Scope
from hub.ports import ClientRecord, OutstandingConsents
from tests.builders import NOW

if TYPE_CHECKING:
    from pathlib import Path

HUB = "https://hub.test"
RECEIPT = "consent-receipt+jwt"
CLIENT = ClientRecord("c-1", "gtb", frozenset({"exchange"}), "client_secret", None, None, NOW)  # type: ignore[arg-type]


@dataclass
class Outstanding:
    """The database's answer, as a fake: consents ``(granted_at, valid_until)`` still active."""

    consents: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    asked: list[tuple[datetime | None, datetime]] = field(default_factory=list)

    def __call__(
        self, since: datetime | None, before: datetime, now: datetime
    ) -> OutstandingConsents:
        self.asked.append((since, before))
        found = [
            until
            for granted, until in self.consents
            if (since is None or granted >= since)
            and granted < before
            and (until is None or until > now)
        ]
        dated = [until for until in found if until is not None]
        return OutstandingConsents(len(found), None in found, max(dated, default=None))


NONE = Outstanding()


class Ticker:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def a_ring(key_dir: Path, clock: FixedClock, ticker: Ticker | None = None) -> FileKeyRing:
    if ticker is None:
        return FileKeyRing.load(key_dir, clock=clock)
    return FileKeyRing.load(key_dir, clock=clock, monotonic=ticker)


def published(ring: FileKeyRing) -> set[str]:
    return {jwk["kid"] for jwk in ring.jwks()["keys"]}


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    init_keys(tmp_path / "keys", now=NOW)
    return tmp_path / "keys"


# -- keys init ------------------------------------------------------------------------------


def test_keys_init_makes_a_private_key_set_marked_as_made_deliberately(tmp_path: Path) -> None:
    made = init_keys(tmp_path / "keys", now=NOW)

    index = read_index(tmp_path / "keys" / INDEX_FILE)
    assert index.origin is Origin.KEYS_INIT
    assert index.active == made.active
    assert index.activated_at == NOW
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    for path in (tmp_path / "keys").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path.name


def test_keys_init_never_replaces_keys(key_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in key_dir.iterdir()}
    with pytest.raises(KeyRingError, match="holds keys already"):
        init_keys(key_dir, now=NOW)
    assert {p.name: p.read_bytes() for p in key_dir.iterdir()} == before


# -- rotation ---------------------------------------------------------------------------------


def test_after_a_rotation_the_new_key_signs_and_the_old_one_still_verifies(key_dir: Path) -> None:
    clock = FixedClock(NOW)
    before = a_ring(key_dir, clock)
    old_token, _ = TokenIssuer(before, HUB, HUB).issue(CLIENT, frozenset({Scope.EXCHANGE}), NOW)
    old_receipt = before.sign({"jti": "consent-1"}, typ=RECEIPT)

    change = rotate(key_dir, now=NOW, receipts=NONE)

    after = a_ring(key_dir, clock)
    assert change.retired == before.active_kid
    assert after.active_kid == change.active != before.active_kid
    assert jwt.get_unverified_header(after.sign({}, typ=RECEIPT))["kid"] == change.active
    assert published(after) == {change.active, before.active_kid}
    verifier = TokenVerifier(after, HUB, HUB)
    assert verifier.verify(old_token, NOW + timedelta(minutes=5)).client_id == "c-1"
    assert after.verify(old_receipt, typ=RECEIPT) == {"jti": "consent-1"}


def test_a_retired_key_loses_its_private_half_at_once_and_keeps_its_public_half(
    key_dir: Path,
) -> None:
    old = read_index(key_dir / INDEX_FILE).active

    change = rotate(key_dir, now=NOW, receipts=NONE)

    assert change.destroyed_private_keys == 1
    assert sorted(p.name for p in key_dir.glob("signing-*.pem")) == [f"signing-{change.active}.pem"]
    document = json.loads((key_dir / INDEX_FILE).read_text())
    assert document["format"] == 2
    assert document["signing"] == [change.active]  # what a hub of the previous version reads
    (retired,) = document["retired"]
    assert retired["kid"] == old
    assert "PRIVATE" not in (key_dir / INDEX_FILE).read_text()


def test_a_retired_key_leaves_the_jwks_when_its_last_token_has_expired(key_dir: Path) -> None:
    clock = FixedClock(NOW)
    before = a_ring(key_dir, clock)
    token, _ = TokenIssuer(before, HUB, HUB).issue(CLIENT, frozenset({Scope.EXCHANGE}), NOW)
    checkpoint = before.sign(checkpoint_claims(100, "ab" * 32, "t"), typ=CHECKPOINT_TYP)
    rotate(key_dir, now=NOW, receipts=NONE)
    after = a_ring(key_dir, clock)

    clock.set(NOW + TOKEN_WINDOW - timedelta(seconds=1))
    assert before.active_kid in published(after)
    clock.set(NOW + TOKEN_WINDOW)
    assert before.active_kid not in published(after)
    assert after.public_key(before.active_kid) is None  # no access token by it any more
    with pytest.raises(UnauthenticatedError):
        TokenVerifier(after, HUB, HUB).verify(token, NOW)
    # Verify-only, forever: the audit checkpoint it signed still holds.
    assert after.verify(checkpoint, typ=CHECKPOINT_TYP) == checkpoint_claims(100, "ab" * 32, "t")


def test_a_consent_valid_longer_than_the_tokens_keeps_its_key_published_until_its_end(
    key_dir: Path,
) -> None:
    clock = FixedClock(NOW)
    old = read_index(key_dir / INDEX_FILE).active
    end = NOW + timedelta(days=90)
    receipts = Outstanding([(NOW, end), (NOW, NOW + timedelta(days=3))])

    rotate(key_dir, now=NOW + timedelta(hours=1), receipts=receipts)

    assert receipts.asked == [(NOW, NOW + timedelta(hours=1, minutes=1))]
    ring = a_ring(key_dir, clock)
    clock.set(end - timedelta(seconds=1))
    assert old in published(ring)
    clock.set(end)
    assert old not in published(ring)


def test_an_open_ended_consent_keeps_its_key_published_until_it_is_revoked(key_dir: Path) -> None:
    clock = FixedClock(NOW)
    old = read_index(key_dir / INDEX_FILE).active
    receipts = Outstanding([(NOW, None)])
    rotate(key_dir, now=NOW, receipts=receipts)
    ring = a_ring(key_dir, clock)
    clock.set(NOW + timedelta(days=3650))
    assert old in published(ring)

    receipts.consents.clear()  # revoked
    change = prune(key_dir, now=NOW + timedelta(days=1), receipts=receipts)

    assert old not in change.published
    assert old in change.verify_only
    ring.refresh()
    assert old not in published(ring)


def test_a_revoked_or_expired_consent_does_not_keep_a_key_published(key_dir: Path) -> None:
    old = read_index(key_dir / INDEX_FILE).active
    later = NOW + timedelta(days=1)
    # Expired before the rotation: the fake (like the database) no longer counts it.
    receipts = Outstanding([(NOW, NOW + timedelta(hours=1))])

    rotate(key_dir, now=later, receipts=receipts)

    (retired,) = read_index(key_dir / INDEX_FILE).retired
    assert retired.kid == old
    assert retired.publish_until == later + TOKEN_WINDOW


def test_pruning_never_publishes_a_key_longer(key_dir: Path) -> None:
    rotate(key_dir, now=NOW, receipts=NONE)
    (before,) = read_index(key_dir / INDEX_FILE).retired
    late = Outstanding([(NOW, NOW + timedelta(days=400))])  # as if one appeared later

    prune(key_dir, now=NOW + TOKEN_WINDOW, receipts=late)

    (after,) = read_index(key_dir / INDEX_FILE).retired
    assert after == before


def test_several_rotations_keep_every_retired_key_verify_only(key_dir: Path) -> None:
    clock = FixedClock(NOW)
    signed = []
    for n in range(4):
        ring = a_ring(key_dir, clock)
        signed.append(
            ring.sign(checkpoint_claims(100 * (n + 1), "cd" * 32, "t"), typ=CHECKPOINT_TYP)
        )
        rotate(key_dir, now=NOW + timedelta(days=n), receipts=NONE)

    final = a_ring(key_dir, clock)
    clock.set(NOW + timedelta(days=30))
    assert published(final) == {final.active_kid}
    for n, jws in enumerate(signed):
        assert final.verify(jws, typ=CHECKPOINT_TYP) == checkpoint_claims(
            100 * (n + 1), "cd" * 32, "t"
        )
    assert len(list(key_dir.glob("signing-*.pem"))) == 1


def test_rotations_racing_each_other_lose_no_key(key_dir: Path) -> None:
    first = read_index(key_dir / INDEX_FILE).active
    barrier = threading.Barrier(6)
    made: list[str] = []
    errors: list[BaseException] = []

    def go() -> None:
        barrier.wait()
        try:
            made.append(rotate(key_dir, now=NOW, receipts=NONE).active)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    index = read_index(key_dir / INDEX_FILE)
    retired = [key.kid for key in index.retired]
    assert index.active in made
    assert sorted([index.active, *retired]) == sorted({first, *made})  # every key, once
    assert [p.name for p in key_dir.glob("signing-*.pem")] == [f"signing-{index.active}.pem"]
    FileKeyRing.load(key_dir)  # and the directory is whole


def test_a_rotation_without_keys_says_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(KeyRingError, match="keys init"):
        rotate(tmp_path, now=NOW, receipts=NONE)
    assert list(tmp_path.iterdir()) == []


# -- the previous format --------------------------------------------------------------------


def _format_1(key_dir: Path, count: int) -> list[str]:
    """A key directory as the previous version wrote it, with ``count`` signing keys."""
    FileKeyRing.load_or_create(key_dir)
    index = json.loads((key_dir / INDEX_FILE).read_text())
    kids = [index["active"]]
    for _ in range(count - 1):
        key = Ed25519PrivateKey.generate()
        kid = public_jwk(key.public_key())["kid"]
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (key_dir / f"signing-{kid}.pem").write_bytes(pem)
        kids.append(kid)
    (key_dir / INDEX_FILE).write_text(json.dumps({"active": kids[0], "signing": kids}))
    return kids


def test_an_index_of_the_previous_format_is_read_and_rotated(tmp_path: Path) -> None:
    kids = _format_1(tmp_path, 2)
    clock = FixedClock(NOW)
    ring = a_ring(tmp_path, clock)
    assert ring.active_kid == kids[0]
    assert published(ring) == set(kids)
    assert ring.origin is Origin.DEVELOPMENT  # a start made it
    legacy = ring.sign({"n": 1}, typ=RECEIPT)

    change = rotate(tmp_path, now=NOW, receipts=NONE)

    assert change.destroyed_private_keys == 2
    assert set(change.published) == {change.active, *kids}
    after = a_ring(tmp_path, clock)
    assert after.verify(legacy, typ=RECEIPT) == {"n": 1}
    clock.set(NOW + TOKEN_WINDOW)
    assert published(after) == {change.active}


# -- a running ring follows the directory ---------------------------------------------------------


def test_a_running_ring_follows_a_rotation_within_the_reload_interval(key_dir: Path) -> None:
    clock, ticker = FixedClock(NOW), Ticker()
    ring = a_ring(key_dir, clock, ticker)
    old = ring.active_kid

    new = rotate(key_dir, now=NOW, receipts=NONE).active

    assert ring.active_kid == old  # not looked yet: at most every RELOAD_EVERY_S
    ticker.now += RELOAD_EVERY_S
    assert ring.active_kid == new
    assert jwt.get_unverified_header(ring.sign({}, typ=RECEIPT))["kid"] == new


def test_a_token_of_another_workers_new_key_verifies_at_once(key_dir: Path) -> None:
    clock, ticker = FixedClock(NOW), Ticker()
    here = a_ring(key_dir, clock, ticker)
    rotate(key_dir, now=NOW, receipts=NONE)
    there = a_ring(key_dir, clock)  # a worker that has seen the rotation

    token, _ = TokenIssuer(there, HUB, HUB).issue(CLIENT, frozenset({Scope.EXCHANGE}), NOW)
    receipt = there.sign({"jti": "c"}, typ=RECEIPT)

    assert TokenVerifier(here, HUB, HUB).verify(token, NOW).client_id == "c-1"
    assert here.verify(receipt, typ=RECEIPT) == {"jti": "c"}


def test_a_damaged_index_does_not_stop_a_running_ring(key_dir: Path) -> None:
    clock, ticker = FixedClock(NOW), Ticker()
    ring = a_ring(key_dir, clock, ticker)
    kid = ring.active_kid
    (key_dir / INDEX_FILE).write_text("{not json")

    ticker.now += RELOAD_EVERY_S
    signed = ring.sign({"still": True}, typ=RECEIPT)

    assert jwt.get_unverified_header(signed)["kid"] == kid
    assert ring.verify(signed, typ=RECEIPT) == {"still": True}
