"""CONTRACT.md 4: the privacy officer's view, partner scoping, and chain verification."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys

import pytest

from hub import bootstrap
from tests.api.conftest import Hub
from tests.conftest import connect

OPEN = ["trajectory.status"]


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


async def verify_offline(hub: Hub, *args: str) -> subprocess.CompletedProcess[str]:
    """``ketenhub audit verify`` in its own process, on the hub's database and keys."""
    env = {
        "KETENHUB_DATABASE_URL": hub.database_url,
        "KETENHUB_KEY_DIR": str(hub.container.settings.key_dir),
        "PATH": "/usr/bin:/bin",
    }
    command = [sys.executable, "-m", "hub", "audit", "verify", *args]
    return await asyncio.to_thread(run, command, env)


async def _some_decisions(hub: Hub) -> str:
    person = hub.person("vdab", "ocmw-gent")
    await hub.exchange("gtb", participant=person, source="vdab", fields=OPEN)
    await hub.exchange(
        "gtb", participant=person, source="ocmw-gent", fields=["social_assistance.leefloon"]
    )
    await hub.exchange(
        "cgg-vagga", participant=person, source="vdab", fields=OPEN, role="casemanager-care"
    )
    await hub.exchange("gtb", participant=person, source="vdab", fields=["icf.assessment"])
    return person


async def test_events_are_newest_first_with_the_contract_members(hub: Hub) -> None:
    person = await _some_decisions(hub)
    page = (await hub.http.get("/v1/audit/events", headers=hub.auth("hub"))).json()
    seqs = [e["seq"] for e in page["items"]]
    assert seqs == [4, 3, 2, 1]
    event = page["items"][-1]
    assert set(event) >= {
        "seq",
        "at",
        "requester",
        "source",
        "participant",
        "purpose",
        "actor",
        "decision",
        "fields_disclosed",
        "withheld",
        "agreement",
        "hash",
        "prev_hash",
    }
    assert event["participant"] != person
    assert len(event["participant"]) == 64
    assert event["agreement"] == "vdab-trajectory-open@2"
    assert event["actor"] == {"role": "casemanager-work", "id": "u-1"}
    assert page["items"][0]["decision"] == "denied"


async def test_a_partner_officer_sees_only_events_it_took_part_in(hub: Hub) -> None:
    await _some_decisions(hub)
    cgg = (await hub.http.get("/v1/audit/events", headers=hub.auth("cgg-vagga"))).json()["items"]
    assert [e["requester"] for e in cgg] == ["cgg-vagga"]
    ocmw = (await hub.http.get("/v1/audit/events", headers=hub.auth("ocmw-gent"))).json()["items"]
    assert [e["source"] for e in ocmw] == ["ocmw-gent"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("partner=ocmw-gent", [2]),
        ("decision=denied", [4]),
        ("purpose=trajectory-coordination", [4, 3, 2, 1]),
        ("since=2026-06-15T12:00:00", [4, 3, 2, 1]),
        ("since=2026-06-15T12:00:01%2B02:00", []),
        ("until=2026-06-15T12:00:00", []),
    ],
)
async def test_filters(hub: Hub, query: str, expected: list[int]) -> None:
    await _some_decisions(hub)
    page = await hub.http.get(f"/v1/audit/events?{query}", headers=hub.auth("hub"))
    assert page.status_code == 200
    assert [e["seq"] for e in page.json()["items"]] == expected


async def test_the_participant_filter_takes_the_insz(hub: Hub) -> None:
    person = await _some_decisions(hub)
    other = hub.person("vdab", skip=5)
    await hub.exchange("gtb", participant=other, source="vdab", fields=OPEN)
    page = await hub.http.get(f"/v1/audit/events?participant={person}", headers=hub.auth("hub"))
    assert [e["seq"] for e in page.json()["items"]] == [4, 3, 2, 1]
    bad = await hub.http.get("/v1/audit/events?participant=123", headers=hub.auth("hub"))
    assert bad.status_code == 422


async def test_cursor_paging_visits_every_event_once(hub: Hub) -> None:
    await _some_decisions(hub)
    await _some_decisions(hub)
    seen: list[int] = []
    url = "/v1/audit/events?limit=3"
    while url:
        page = (await hub.http.get(url, headers=hub.auth("hub"))).json()
        seen += [e["seq"] for e in page["items"]]
        url = (
            f"/v1/audit/events?limit=3&cursor={page['next_cursor']}" if page["next_cursor"] else ""
        )
    assert seen == list(range(8, 0, -1))


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=bogus",
        "decision=maybe",
        "since=soon",
        "partner=DROP%20TABLE",
        "purpose=' OR 1=1 --",
    ],
)
async def test_bad_queries_are_problems(hub: Hub, query: str) -> None:
    response = await hub.http.get(f"/v1/audit/events?{query}", headers=hub.auth("hub"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_audit_needs_the_audit_read_scope(hub: Hub) -> None:
    response = await hub.http.get("/v1/audit/events", headers=hub.auth("gtb", "exchange"))
    assert response.status_code == 403


async def test_verify_reports_the_head_of_an_intact_log(hub: Hub) -> None:
    await _some_decisions(hub)
    report = (await hub.http.get("/v1/audit/verify", headers=hub.auth("hub"))).json()
    events = (await hub.http.get("/v1/audit/events?limit=1", headers=hub.auth("hub"))).json()
    assert report == {
        "ok": True,
        "entries": 4,
        "head": events["items"][0]["hash"],
        "checkpoint": None,
    }


@pytest.mark.parametrize(
    ("statement", "bad_seq"),
    [
        ("UPDATE audit_events SET requester = 'in-gent' WHERE seq = 2", 2),
        ("UPDATE audit_events SET fields_disclosed = '[]' WHERE seq = 3", 3),
        ("DELETE FROM audit_events WHERE seq = 2", 2),
        ("UPDATE audit_events SET seq = seq + 10 WHERE seq = 3", 3),
    ],
)
async def test_verify_names_the_first_damaged_record(
    hub: Hub, statement: str, bad_seq: int
) -> None:
    await _some_decisions(hub)
    with connect(hub.database_url) as raw:
        raw.execute(statement)
    report = (await hub.http.get("/v1/audit/verify", headers=hub.auth("hub"))).json()
    assert report["ok"] is False
    assert report["first_bad_seq"] == bad_seq


async def test_the_cli_verifies_offline_and_fails_on_damage(hub: Hub) -> None:
    await _some_decisions(hub)
    intact = await verify_offline(hub)
    assert intact.returncode == 0, intact.stderr
    assert '"ok": true' in intact.stdout
    with connect(hub.database_url) as raw:
        raw.execute("UPDATE audit_events SET purpose = 'other' WHERE seq = 1")
    damaged = await verify_offline(hub)
    assert damaged.returncode == 1
    assert '"first_bad_seq": 1' in damaged.stdout


async def test_the_hub_signs_its_head_when_it_stops_and_verify_names_that_checkpoint(
    hub: Hub,
) -> None:
    await _some_decisions(hub)
    await hub.container.aclose()  # what a stopping hub does: the fixture's close is a no-op
    reopened = await bootstrap.build(hub.container.settings, clock=hub.clock)
    try:
        report = (await reopened.audit.verify()).as_dict()
    finally:
        await reopened.aclose()
    assert report["ok"] is True
    checkpoint = report["checkpoint"]
    assert checkpoint["seq"] == 4
    assert checkpoint["head"] == report["head"]
    header = json.loads(base64.urlsafe_b64decode(checkpoint["jws"].split(".")[0] + "=="))
    assert header["typ"] == "ketenhub-audit-checkpoint+jwt"
    assert header["kid"] in {k["kid"] for k in hub.container.keys.jwks()["keys"]}


async def test_a_checkpoint_kept_by_an_officer_catches_a_log_cut_short_with_its_checkpoints(
    hub: Hub,
) -> None:
    await _some_decisions(hub)
    kept = await hub.container.audit.checkpoint()
    assert kept is not None
    with connect(hub.database_url) as raw:
        raw.execute("DELETE FROM audit_events WHERE seq > 2")
        raw.execute("DELETE FROM audit_checkpoints")
        raw.execute("UPDATE audit_head SET seq = 2")
    alone = await verify_offline(hub)
    assert alone.returncode == 0  # what the database alone can prove: a shorter log
    held = await verify_offline(hub, "--checkpoint", kept.jws)
    assert held.returncode == 1
    assert json.loads(held.stdout)["first_bad_seq"] == 3
    forged = await verify_offline(hub, "--checkpoint", "a.b.c")
    assert forged.returncode == 2
    assert "not a checkpoint signed by this hub" in forged.stderr
