"""Hostile bodies and look-alike identifiers (OWASP API4 and API8 2023; ASVS 5 V1, V2).

Oversized, deeply nested and very long inputs are clear problems (never a 500 or a
RecursionError), and an INSZ or an id written with other Unicode characters than
the ASCII ones is refused, never matched to the ASCII form.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api.conftest import Hub
from tests.api.snapshot import snapshot

DEPTH = 100_000


def _exchange_body(hub: Hub, **changes: object) -> dict[str, object]:
    return {
        "participant": hub.person("vdab"),
        "source": "vdab",
        "purpose": "trajectory-coordination",
        "fields": ["trajectory.status"],
        "actor": {"role": "casemanager-work", "id": "u-1"},
        **changes,
    }


def _assert_problem(answer: httpx.Response, *statuses: int) -> dict:
    assert answer.status_code in statuses, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict = answer.json()
    assert {"type", "title", "status", "detail", "reason"} <= problem.keys()
    assert problem["status"] == answer.status_code
    return problem


def _nested(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(lambda _: _nested(DEPTH), id="the whole body"),
        pytest.param(
            lambda body: json.dumps(body).replace('["trajectory.status"]', _nested(DEPTH)),
            id="inside fields",
        ),
        pytest.param(
            lambda body: json.dumps(body).replace('"u-1"', '{"a":' * DEPTH + "1" + "}" * DEPTH),
            id="objects inside actor",
        ),
    ],
)
@pytest.mark.parametrize("path", ["/v1/exchange", "/v1/consents"])
async def test_deeply_nested_json_is_a_problem_not_a_crash(
    hub: Hub, raw: object, path: str
) -> None:
    body = _exchange_body(hub)
    content = raw(body)  # type: ignore[operator]
    before = snapshot(hub.database_url)
    answer = await hub.http.post(
        path, content=content, headers={**hub.auth("gtb"), "Content-Type": "application/json"}
    )
    _assert_problem(answer, 400, 422)
    assert snapshot(hub.database_url) == before
    assert hub.sources["vdab"].asked == []


@pytest.mark.parametrize(
    "changes",
    [
        {"participant": "8" * 100_000},
        {"source": "v" * 100_000},
        {"purpose": "p" * 100_000},
        {"fields": ["trajectory." + "s" * 100_000]},
        {"fields": [f"trajectory.f{i}" for i in range(20_000)]},
        {"fields": ["trajectory.status"] * 101},
        {"fields": []},
        {"actor": {"role": "casemanager-work", "id": "u" * 100_000}},
        {"actor": {"role": "casemanager-work", "id": "u-1", "name": "x"}},
        {"participant": 85073003328},
        {"fields": "trajectory.status"},
        {"fields": [None]},
    ],
    ids=lambda c: next(iter(c)) + ":" + type(next(iter(c.values()))).__name__,
)
async def test_long_huge_and_mistyped_members_are_422(hub: Hub, changes: dict[str, object]) -> None:
    before = snapshot(hub.database_url)
    answer = await hub.http.post(
        "/v1/exchange", json=_exchange_body(hub, **changes), headers=hub.auth("gtb")
    )
    problem = _assert_problem(answer, 422)
    # The input is not echoed back (it may be an INSZ, or just big).
    assert len(answer.content) < 10_000
    assert "8888888888" not in json.dumps(problem)
    assert snapshot(hub.database_url) == before
    assert hub.sources["vdab"].asked == []


async def _chunks(total: int) -> AsyncIterator[bytes]:
    chunk = b"a" * 65_536
    for _ in range(total // len(chunk) + 1):
        yield chunk


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/exchange", "application/json"),
        ("/v1/consents", "application/json"),
        ("/oauth/token", "application/x-www-form-urlencoded"),
    ],
)
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_bodies_over_one_mebibyte_are_413_everywhere(
    hub: Hub, path: str, content_type: str, declared: bool
) -> None:
    size = 2 * 1024 * 1024
    content = b"a" * size if declared else _chunks(size)
    answer = await hub.http.post(
        path, content=content, headers={**hub.auth("gtb"), "Content-Type": content_type}
    )
    problem = _assert_problem(answer, 413)
    assert problem["reason"] == "body-too-large"
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "client_credentials", "client_id": "c" * 100_000, "client_secret": "s"},
        {"grant_type": "client_credentials", "client_id": "gtb\x00", "client_secret": "s"},
        {"grant_type": "client_credentials", "client_id": "ｇｔｂ-1", "client_secret": "s"},
        {"grant_type": "client_credentials", "scope": "exchange " * 10_000},
        {"grant_type": "client_credentials" + "\u200b"},
        {f"p{i}": "x" for i in range(1000)},
    ],
    ids=["long id", "NUL", "fullwidth id", "long scope", "zero-width grant", "many fields"],
)
async def test_odd_token_requests_are_oauth_errors_not_crashes(
    hub: Hub, form: dict[str, str]
) -> None:
    answer = await hub.http.post("/oauth/token", data=form)
    assert answer.status_code in {400, 401}, answer.text[:300]
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] in {"invalid_request", "invalid_client", "unsupported_grant_type"}
    assert "access_token" not in answer.json()


def _look_alikes(digits: str) -> dict[str, str]:
    return {
        "fullwidth": digits.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        "arabic-indic": digits.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
        "devanagari": digits.translate(str.maketrans("0123456789", "०१२३४५६७८९")),
        "mathematical": digits.translate(str.maketrans("0123456789", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗")),
        "zero-width space": digits[:6] + "\u200b" + digits[6:],
        "zero-width joiner": "\u2060" + digits,
        "leading space": " " + digits,
        "trailing space": digits + " ",
        "trailing newline": digits + "\n",
        "non-breaking space": digits[:6] + "\u00a0" + digits[6:],
        "formatted": f"{digits[:2]}.{digits[2:4]}.{digits[4:6]}-{digits[6:9]}.{digits[9:]}",
        "plus sign": "+" + digits[1:],
        "NUL": digits + "\x00",
    }


LOOK_ALIKES = list(_look_alikes("85073003328"))


@pytest.mark.parametrize("kind", LOOK_ALIKES)
async def test_an_insz_in_other_characters_is_refused_everywhere(hub: Hub, kind: str) -> None:
    person = hub.person("vdab")
    odd = _look_alikes(person)[kind]
    assert (await hub.consent("gtb", person, ["icf.assessment"])).status_code == 201
    before = snapshot(hub.database_url)

    answers = [
        await hub.http.post(
            "/v1/exchange", json=_exchange_body(hub, participant=odd), headers=hub.auth("gtb")
        ),
        await hub.consent("gtb", odd, ["icf.assessment"]),
        await hub.http.get("/v1/consents", params={"participant": odd}, headers=hub.auth("gtb")),
        await hub.http.get(
            "/v1/audit/events", params={"participant": odd}, headers=hub.auth("hub")
        ),
    ]
    for answer in answers:
        assert _assert_problem(answer, 422)["reason"] == "invalid-insz", answer.text
    assert snapshot(hub.database_url) == before
    assert hub.sources["vdab"].asked == []


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("source", "ｖｄａｂ"),
        ("source", "VDAB"),
        ("source", "vdab\u200b"),
        ("source", "vdab\n"),
        ("source", "vdаb"),  # a Cyrillic a
        ("purpose", "trajectory\u2010coordination"),  # a Unicode hyphen
        ("purpose", "trajectory-coordination "),
        ("purpose", "trajectory-coordination\n"),
        ("purpose", "Trajectory-coordination"),
        ("fields", ["trajectory.statuѕ"]),  # a Cyrillic s
        ("fields", ["trajectory.status\n"]),
        ("fields", ["trajectory\u2024status"]),  # a one-dot leader
        ("fields", ["ＴＲＡＪＥＣＴＯＲＹ.status"]),
        ("actor", {"role": "casemanager\u2011work", "id": "u-1"}),
        ("actor", {"role": "casemanager-work", "id": "u-1\u202e"}),
    ],
)
async def test_identifiers_in_look_alike_characters_are_422(
    hub: Hub, member: str, value: object
) -> None:
    before = snapshot(hub.database_url)
    answer = await hub.http.post(
        "/v1/exchange", json=_exchange_body(hub, **{member: value}), headers=hub.auth("gtb")
    )
    _assert_problem(answer, 422)
    assert snapshot(hub.database_url) == before
    assert hub.sources["vdab"].asked == []


@pytest.mark.parametrize(
    "recipient",
    ["ｇｔｂ", "GTB", "gtb\u200b", "gtb ", "ɡtb"],  # the last: a Latin script g
)
async def test_a_look_alike_recipient_is_not_the_tokens_partner(hub: Hub, recipient: str) -> None:
    before = snapshot(hub.database_url)
    answer = await hub.http.post(
        "/v1/consents",
        json={
            "participant": hub.person("vdab"),
            "recipient": recipient,
            "purpose": "trajectory-coordination",
            "fields": ["icf.assessment"],
        },
        headers=hub.auth("gtb"),
    )
    _assert_problem(answer, 403, 422)
    assert snapshot(hub.database_url) == before


async def test_a_look_alike_consent_id_or_cursor_finds_nothing(hub: Hub) -> None:
    person = hub.person("vdab")
    consent_id = (await hub.consent("gtb", person, ["icf.assessment"])).json()["id"]
    before = snapshot(hub.database_url)
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in consent_id)
    for odd in [fullwidth, consent_id.upper(), consent_id + "\u200b", f" {consent_id}"]:
        answer = await hub.http.post(f"/v1/consents/{odd}/revoke", headers=hub.auth("gtb"))
        _assert_problem(answer, 404, 422)
    assert snapshot(hub.database_url) == before
    listed = await hub.http.get(
        "/v1/consents", params={"participant": person, "limit": 1}, headers=hub.auth("gtb")
    )
    assert listed.status_code == 200
    for cursor in ["０", "\u200b", "Ｃ" * 40]:
        for path, params in [
            ("/v1/consents", {"participant": person, "cursor": cursor}),
            ("/v1/audit/events", {"cursor": cursor}),
            ("/v1/catalogue", {"cursor": cursor}),
        ]:
            answer = await hub.http.get(path, params=params, headers=hub.auth("gtb"))
            _assert_problem(answer, 422)


@pytest.mark.parametrize(
    "odd_key",
    ["ＲＥＱ-1".encode(), "req-1\u200b".encode(), b"REQ-1", b"req_1", b"req-%", b"req-1\x00"],
    ids=["fullwidth", "zero-width", "upper case", "_", "%", "NUL"],
)
async def test_a_look_alike_idempotency_key_is_another_key(hub: Hub, odd_key: bytes) -> None:
    """Only the very same key replays; a look-alike is decided anew (and asks the source)."""
    person = hub.person("vdab")
    fields = ["trajectory.status"]
    first = await hub.exchange(
        "gtb",
        participant=person,
        source="vdab",
        fields=fields,
        headers={"Idempotency-Key": "req-1"},
    )
    assert first.status_code == 200
    other = await hub.http.post(
        "/v1/exchange",
        json=_exchange_body(hub, participant=person),
        headers={**hub.auth("gtb"), "Idempotency-Key": odd_key},  # type: ignore[dict-item]
    )
    if other.status_code == 422:  # a key the hub refuses outright is fine as well
        assert len(hub.sources["vdab"].asked) == 1
        return
    assert other.status_code == 200, other.text
    assert "idempotency-replayed" not in other.headers
    assert other.json()["audit_seq"] != first.json()["audit_seq"]
    assert len(hub.sources["vdab"].asked) == 2
