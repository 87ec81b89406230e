"""``ketenhub keys rotate`` against a real database and real hub processes (issue #5).

- a retired key stays published while a consent granted under it is still active, and
  leaves the JWK Set once that consent is revoked (``keys prune``);
- ``ketenhub audit verify`` passes after several rotations, holding the log against
  checkpoints each signed by a key retired since;
- rotations started at once from several processes lose no key;
- two hub processes over one key directory follow a rotation without a restart: a
  token one signs with the new key is accepted by the other, and tokens signed
  before the rotation stay valid at both.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
import jwt

from hub import bootstrap
from hub.auth.keyindex import INDEX_FILE, read_index
from hub.auth.rotation import TOKEN_WINDOW, KeyChange, ReceiptsSigned, prune, rotate
from hub.clock import FixedClock
from hub.domain.checkpoints import CHECKPOINT_EVERY
from hub.domain.ids import FieldName, Insz, PartnerId, Purpose
from hub.domain.principal import Principal, Scope
from hub.ports import OutstandingConsents
from hub.services.audit import AuditTrail
from tests.builders import NOW, an_audit_entry
from tests.e2e.harness import Hub, ketenhub

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

    from hub.settings import Settings

PARTICIPANT = Insz.parse("85073003328")
GTB = Principal("c-gtb", PartnerId("gtb"), frozenset({Scope.CONSENT_WRITE}), 0)
RECEIPT = "consent-receipt+jwt"


def environment(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.as_env()}


def summary(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout  # one line of JSON
    found: dict[str, object] = json.loads(lines[0])
    return found


async def _change(
    container: bootstrap.Container,
    how: Callable[..., KeyChange],
    now: datetime,
) -> KeyChange:
    """``how`` (rotate or prune) with the container's database as the receipts' witness."""
    loop = asyncio.get_running_loop()

    def receipts(since: datetime | None, before: datetime, at: datetime) -> OutstandingConsents:
        read = container.db.read(
            lambda uow: uow.consents.outstanding(granted_from=since, granted_before=before, now=at)
        )
        return asyncio.run_coroutine_threadsafe(read, loop).result()

    witness: ReceiptsSigned = receipts
    change = await asyncio.to_thread(how, container.settings.key_dir, now=now, receipts=witness)
    container.keys.refresh()
    return change


async def _grant(container: bootstrap.Container, valid_until: datetime | None) -> tuple[str, str]:
    granted = await container.consents.grant(
        GTB,
        participant=PARTICIPANT,
        recipient=PartnerId("gtb"),
        purpose=Purpose("trajectory-coordination"),
        fields=[FieldName("trajectory.status")],
        valid_until=valid_until,
        evidence=None,
    )
    return granted.consent.id, granted.receipt


async def test_a_key_stays_published_while_a_consent_granted_under_it_is_active(
    settings: Settings,
) -> None:
    clock = FixedClock(NOW)
    container = await bootstrap.build(settings, clock=clock, sources={})
    try:
        old = container.keys.active_kid
        dated_end = NOW + timedelta(days=60)
        _, dated_receipt = await _grant(container, dated_end)
        open_id, open_receipt = await _grant(container, None)
        revoked_id, _ = await _grant(container, NOW + timedelta(days=900))
        await container.consents.revoke(GTB, revoked_id)  # needs no key any more

        change = await _change(container, rotate, NOW + timedelta(hours=1))

        assert container.keys.active_kid == change.active != old
        (retired,) = read_index(settings.key_dir / INDEX_FILE).retired
        assert retired.publish_until is None  # the open-ended consent
        clock.set(NOW + timedelta(days=3650))
        assert old in {k["kid"] for k in container.keys.jwks()["keys"]}

        await container.consents.revoke(GTB, open_id)
        await _change(container, prune, NOW + timedelta(days=1))

        (retired,) = read_index(settings.key_dir / INDEX_FILE).retired
        assert retired.publish_until == dated_end  # the dated consent now bounds it
        clock.set(dated_end)
        assert old not in {k["kid"] for k in container.keys.jwks()["keys"]}
        # The participant's receipts still verify with the retired key, for the DPO.
        assert container.keys.verify(dated_receipt, typ=RECEIPT) is not None
        assert container.keys.verify(open_receipt, typ=RECEIPT) is not None
    finally:
        await container.aclose()


async def test_audit_verify_passes_after_several_rotations(settings: Settings) -> None:
    clock = FixedClock(NOW)
    container = await bootstrap.build(settings, clock=clock, sources={})
    anchors: list[str] = []
    kids: list[str] = []
    try:
        trail = AuditTrail(keys=container.keys, clock=clock)
        for round_ in range(3):
            first = round_ * CHECKPOINT_EVERY + 1

            def append(uow: object, first: int = first) -> None:
                for n in range(first, first + CHECKPOINT_EVERY):
                    trail.append(uow, an_audit_entry(n))  # type: ignore[arg-type]

            await container.db.write(append)
            stored = await container.db.read(lambda uow: uow.audit.latest_checkpoint())
            assert stored is not None
            assert stored.seq == (round_ + 1) * CHECKPOINT_EVERY
            anchors.append(stored.jws)
            kids.append(jwt.get_unverified_header(stored.jws)["kid"])
            await _change(container, rotate, NOW + timedelta(days=round_))
    finally:
        await container.aclose()  # signs one more checkpoint, with the newest key
    assert len(set(kids)) == 3  # each checkpoint by another key, all retired now

    arguments = [part for jws in anchors for part in ("--checkpoint", jws)]
    done = ketenhub(environment(settings), "audit", "verify", *arguments)

    report = summary(done)
    assert report["ok"] is True
    assert report["entries"] == 3 * CHECKPOINT_EVERY


def test_rotations_started_together_from_several_processes_lose_no_key(
    settings: Settings,
) -> None:
    env = environment(settings)
    summary(ketenhub(env, "keys", "init"))
    first = read_index(settings.key_dir / INDEX_FILE).active
    command = [sys.executable, "-m", "hub", "keys", "rotate"]
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    made = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        made.append(json.loads(out)["active"])

    index = read_index(settings.key_dir / INDEX_FILE)
    assert len(set(made)) == 4
    assert sorted([index.active, *(k.kid for k in index.retired)]) == sorted([first, *made])
    assert [p.name for p in settings.key_dir.glob("signing-*.pem")] == [
        f"signing-{index.active}.pem"
    ]
    status = summary(ketenhub(env, "keys", "status"))
    assert status["active"] == index.active
    assert all(key["published"] for key in status["retired"])  # type: ignore[attr-defined]


def _token(base: str, client: tuple[str, str]) -> str:
    answer = httpx.post(
        f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=client, timeout=10
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def _calls(base: str, token: str) -> int:
    answer = httpx.get(
        f"{base}/v1/catalogue", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    return answer.status_code


def _published(base: str) -> set[str]:
    return {
        key["kid"] for key in httpx.get(f"{base}/.well-known/jwks.json", timeout=10).json()["keys"]
    }


def test_two_hub_processes_follow_a_rotation_without_a_restart(
    settings: Settings, tmp_path: Path
) -> None:
    env = environment(settings)
    made = summary(
        ketenhub(env, "client", "create", "--partner", "gtb", "--scope", "exchange", "--json")
    )
    client = (str(made["client_id"]), str(made["client_secret"]))
    one = Hub.start(env, tmp_path / "one.log")
    try:
        two = Hub.start(env, tmp_path / "two.log")
        try:
            before = _token(one.base, client)
            old = jwt.get_unverified_header(before)["kid"]

            new = summary(ketenhub(env, "keys", "rotate"))["active"]

            deadline = time.monotonic() + 20
            token = _token(one.base, client)
            while jwt.get_unverified_header(token)["kid"] != new:
                assert time.monotonic() < deadline, "hub one never signed with the new key"
                time.sleep(0.3)
                token = _token(one.base, client)
            assert _calls(two.base, token) == 200  # signed by one, accepted by two
            assert _calls(one.base, before) == _calls(two.base, before) == 200
            assert _published(one.base) == _published(two.base) == {old, new}
        finally:
            two.stop()
    finally:
        one.stop()
    # The retired key's tokens expire; the rotation itself outlives both hubs.
    (retired,) = read_index(settings.key_dir / INDEX_FILE).retired
    assert retired.kid == old
    assert retired.publish_until is not None
    assert retired.retired_at is not None
    assert retired.publish_until - retired.retired_at == TOKEN_WINDOW
