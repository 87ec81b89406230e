"""Issue #3: per-client rate limits on the partner API and at the token endpoint.

The limiter counts wall-clock time (the ``limits`` library reads it itself), so the
one test of recovery uses a one-second window and waits just past it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.auth.endpoint import TokenEndpoint
from hub.auth.keys import FileKeyRing
from hub.auth.tokens import TokenIssuer
from hub.cli import app as cli
from hub.clock import FixedClock
from hub.domain.ids import PartnerId
from hub.domain.principal import Scope
from hub.ports import ClientRecord
from hub.ratelimit import RateLimiter, parse_limits
from hub.settings import DEFAULT_RATE_LIMIT, DEFAULT_TOKEN_RATE_LIMIT, Settings, SettingsError
from tests.api.conftest import NOW, Hub
from tests.api.snapshot import snapshot
from tests.fakes_auth import FakeAuthDatabase

LIMIT = 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The conftest's hub with small limits, so that a test reaches them in a few calls."""
    return dataclasses.replace(
        settings, rate_limit=f"{LIMIT}/minute", token_rate_limit=f"{LIMIT}/minute"
    )


def _assert_rate_limited(response_status: int, headers: dict[str, str], body: dict) -> int:
    assert response_status == 429
    retry_after = headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= 60
    assert body["status"] == 429
    assert body["reason"] == "rate-limited"
    assert body["type"] == "urn:ketenhub:problem:rate-limited"
    return int(retry_after)


async def test_over_the_limit_is_a_429_problem_with_retry_after_counted_per_client(
    hub: Hub,
) -> None:
    for _ in range(LIMIT):
        assert (await hub.http.get("/v1/catalogue", headers=hub.auth("gtb"))).status_code == 200
    refused = await hub.http.get("/v1/catalogue", headers=hub.auth("gtb"))
    assert refused.headers["content-type"] == "application/problem+json"
    _assert_rate_limited(refused.status_code, dict(refused.headers), refused.json())
    assert refused.headers["cache-control"] == "no-store"
    assert refused.headers["x-content-type-options"] == "nosniff"

    # Another client (another partner's) is counted apart.
    assert (await hub.http.get("/v1/catalogue", headers=hub.auth("ocmw-gent"))).status_code == 200
    # The count is per OAuth client, whatever the token or scope: a fresh token of gtb's
    # client is refused too.
    other_token = hub.auth("gtb", "exchange")
    assert (await hub.http.get("/v1/catalogue", headers=other_token)).status_code == 429


async def test_two_clients_of_one_partner_are_counted_apart(hub: Hub) -> None:
    """A partner may run several systems, each with its own client: each has the limit."""
    second = ClientRecord(
        client_id="gtb-second-system",
        partner=PartnerId("gtb"),
        scopes=frozenset({"exchange"}),
        auth_method="client_secret",
        secret_hash=None,
        jwks=None,
        created_at=NOW,
    )
    token, _ = hub.container.tokens.issue(second, frozenset({Scope.EXCHANGE}), NOW)
    for _ in range(LIMIT):
        assert (await hub.http.get("/v1/catalogue", headers=hub.auth("gtb"))).status_code == 200
    assert (await hub.http.get("/v1/catalogue", headers=hub.auth("gtb"))).status_code == 429
    other = {"Authorization": f"Bearer {token}"}
    assert (await hub.http.get("/v1/catalogue", headers=other)).status_code == 200


async def test_concurrent_calls_are_admitted_exactly_up_to_the_limit(hub: Hub) -> None:
    answers = await asyncio.gather(
        *(hub.http.get("/v1/catalogue", headers=hub.auth("gtb")) for _ in range(4 * LIMIT))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * LIMIT + [429] * (3 * LIMIT)


async def test_a_refused_exchange_asks_no_source_and_audits_nothing(hub: Hub) -> None:
    participant = hub.person("vdab")
    for _ in range(LIMIT):
        ok = await hub.exchange(
            "gtb", participant=participant, source="vdab", fields=["trajectory.status"]
        )
        assert ok.status_code == 200, ok.text
    asked = len(hub.sources["vdab"].asked)
    before = snapshot(hub.database_url)

    refused = await hub.exchange(
        "gtb",
        participant=participant,
        source="vdab",
        fields=["trajectory.status"],
        headers={"Idempotency-Key": "k-429"},
    )

    _assert_rate_limited(refused.status_code, dict(refused.headers), refused.json())
    assert "audit_seq" not in refused.json()
    assert len(hub.sources["vdab"].asked) == asked
    assert snapshot(hub.database_url) == before


async def test_refused_consent_writes_change_nothing(hub: Hub) -> None:
    participant = hub.person("vdab")
    for _ in range(LIMIT):
        await hub.http.get("/v1/catalogue", headers=hub.auth("gtb"))
    before = snapshot(hub.database_url)
    refused = await hub.consent("gtb", participant, ["health.work_capacity"])
    _assert_rate_limited(refused.status_code, dict(refused.headers), refused.json())
    assert snapshot(hub.database_url) == before


async def test_a_client_is_admitted_again_when_the_window_has_moved_on(hub: Hub) -> None:
    hub.container.rate_limiter = RateLimiter.from_setting("1/second", name="X", namespace="api")
    assert (await hub.http.get("/v1/catalogue", headers=hub.auth("gtb"))).status_code == 200
    refused = await hub.http.get("/v1/catalogue", headers=hub.auth("gtb"))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    await asyncio.sleep(1.05)
    assert (await hub.http.get("/v1/catalogue", headers=hub.auth("gtb"))).status_code == 200


async def test_unauthenticated_calls_are_401_not_counted_against_a_client(hub: Hub) -> None:
    for _ in range(LIMIT + 2):
        answer = await hub.http.get("/v1/catalogue", headers={"Authorization": "Bearer x.y.z"})
        assert answer.status_code == 401
    assert (await hub.http.get("/v1/catalogue", headers=hub.auth("gtb"))).status_code == 200


async def _guess(hub: Hub, client_id: str) -> tuple[int, dict[str, str], dict]:
    answer = await hub.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": "guess",
        },
    )
    return answer.status_code, dict(answer.headers), answer.json()


async def test_the_token_endpoint_throttles_secret_guessing_per_client_id(hub: Hub) -> None:
    for _ in range(LIMIT):
        status, _, body = await _guess(hub, "gtb-0001")
        assert (status, body["error"]) == (400, "invalid_client")
    status, headers, body = await _guess(hub, "gtb-0001")
    _assert_rate_limited(status, headers, body)
    # RFC 6749 5.2 style, with the problem members beside, as every token error.
    assert body["error"] == "slow_down"
    assert body["error_description"] == body["detail"]
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    # Another client id still gets its answer.
    status, _, body = await _guess(hub, "gtb-0002")
    assert (status, body["error"]) == (400, "invalid_client")


async def test_token_requests_naming_no_client_are_counted_per_address(hub: Hub) -> None:
    form = {"grant_type": "client_credentials"}
    for _ in range(LIMIT):
        assert (await hub.http.post("/oauth/token", data=form)).status_code == 401
    answer = await hub.http.post("/oauth/token", data=form)
    _assert_rate_limited(answer.status_code, dict(answer.headers), answer.json())
    # Malformed requests from that address are throttled as well.
    junk = await hub.http.post("/oauth/token", content=b"\xff", headers={"Content-Type": "x/y"})
    assert junk.status_code == 429


async def test_a_throttled_token_request_does_not_read_the_database(tmp_path: Path) -> None:
    keys = FileKeyRing.load_or_create(tmp_path / "keys")
    endpoint = TokenEndpoint(
        TokenIssuer(keys, "urn:hub", "urn:hub"),
        FixedClock(NOW),
        None,
        limiter=RateLimiter.from_setting("1/minute", name="X", namespace="token"),
    )
    database = FakeAuthDatabase()
    body = b"grant_type=client_credentials&client_id=c-1&client_secret=s"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    async def ask() -> int:
        answer = await endpoint.handle(
            url="http://hub.test/oauth/token", headers=headers, body=body, db=database
        )
        return answer.status

    assert await ask() == 400
    assert database.reads == 1
    assert await ask() == 429
    assert database.reads == 1
    assert database.writes == 0


def test_the_limits_are_read_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert (defaults.rate_limit, defaults.token_rate_limit) == (
        DEFAULT_RATE_LIMIT,
        DEFAULT_TOKEN_RATE_LIMIT,
    )
    assert parse_limits(DEFAULT_RATE_LIMIT, name="X")
    chosen = Settings.from_env(
        {"KETENHUB_RATE_LIMIT": "5/second", "KETENHUB_TOKEN_RATE_LIMIT": "OFF"}
    )
    assert (chosen.rate_limit, chosen.token_rate_limit) == ("5/second", "OFF")
    assert parse_limits("off", name="X") == ()
    assert not RateLimiter.from_setting("off", name="X", namespace="api").enabled
    assert Settings.from_env(chosen.as_env()) == chosen


@pytest.mark.parametrize(
    "value", ["fast", "0/second", "-1/minute", "10/fortnight", "10/minute;", "10"]
)
@pytest.mark.parametrize("variable", ["KETENHUB_RATE_LIMIT", "KETENHUB_TOKEN_RATE_LIMIT"])
def test_a_bad_limit_is_refused_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_off_disables_the_limiter() -> None:
    limiter = RateLimiter.from_setting("off", name="X", namespace="api")
    assert all(limiter.retry_after("c") is None for _ in range(1000))


def test_the_hub_does_not_start_with_a_bad_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETENHUB_RATE_LIMIT", "lots")
    result = CliRunner().invoke(cli, ["serve", "--port", "0"])
    assert result.exit_code == 2
    assert "KETENHUB_RATE_LIMIT='lots' is not a rate limit" in result.output


def test_the_longest_full_window_says_how_long_to_wait() -> None:
    limiter = RateLimiter.from_setting("10/second;3/minute", name="X", namespace="api")
    assert [limiter.retry_after("c") for _ in range(3)] == [None, None, None]
    wait = limiter.retry_after("c")
    # The minute window is full, not the second's: a retry after one second would fail.
    assert wait is not None
    assert 2 <= wait <= 60
    assert limiter.retry_after("d") is None
