"""CORS and security headers on every answer (OWASP API8 2023; ASVS 5 V3, V4).

The partner API is for servers, not browsers: no answer allows another origin
(no ``Access-Control-Allow-*``, preflight included), and every answer, error or
not, carries ``nosniff``, ``no-store`` (the JWKS excepted, it may be cached) and a
``frame-ancestors 'none'`` policy.
"""

from __future__ import annotations

import httpx
import pytest

from hub.ratelimit import RateLimiter
from tests.api.conftest import Hub

FOREIGN = {"Origin": "https://evil.example"}


def _assert_hardened(answer: httpx.Response, *, cacheable: bool = False) -> None:
    headers = answer.headers
    assert not [name for name in headers if name.lower().startswith("access-control-")], headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    if not cacheable:
        assert headers["cache-control"] == "no-store"


async def _answers(hub: Hub) -> dict[str, httpx.Response]:
    gtb = {**hub.auth("gtb"), **FOREIGN}
    http = hub.http
    answers = {
        "200 catalogue": await http.get("/v1/catalogue", headers=gtb),
        "200 healthz": await http.get("/healthz", headers=FOREIGN),
        "200 openapi": await http.get("/openapi.json", headers=FOREIGN),
        "200 docs": await http.get("/docs", headers=FOREIGN),
        "401": await http.get("/v1/catalogue", headers=FOREIGN),
        "403": await http.get(
            "/v1/audit/events", headers={**hub.auth("gtb", "exchange"), **FOREIGN}
        ),
        "404": await http.get("/v1/nothing", headers=gtb),
        "405": await http.delete("/v1/catalogue", headers=gtb),
        "413": await http.post("/v1/exchange", content=b"a" * (2 << 20), headers=gtb),
        "422": await http.get("/v1/catalogue?limit=0", headers=gtb),
        "400 invalid json": await http.post(
            "/v1/exchange", content=b"{", headers={**gtb, "Content-Type": "application/json"}
        ),
        "token 400": await http.post("/oauth/token", data={"grant_type": "x"}, headers=FOREIGN),
        "token 401": await http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, headers=FOREIGN
        ),
    }
    for path in ["/v1/exchange", "/v1/consents", "/oauth/token", "/v1/catalogue"]:
        answers[f"preflight {path}"] = await http.options(
            path,
            headers={
                **FOREIGN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
    hub.container.rate_limiter = RateLimiter.from_setting("1/minute", name="X", namespace="api")
    await http.get("/v1/catalogue", headers=gtb)
    answers["429"] = await http.get("/v1/catalogue", headers=gtb)

    async def broken(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("boom")

    hub.container.audit.verify = broken  # type: ignore[method-assign]
    answers["500"] = await http.get("/v1/audit/verify", headers={**hub.auth("hub"), **FOREIGN})
    return answers


async def test_every_answer_is_hardened_and_allows_no_other_origin(hub: Hub) -> None:
    answers = await _answers(hub)
    statuses = {name: answer.status_code for name, answer in answers.items()}
    for name, answer in answers.items():
        expected = name.split()[-1] if name.split()[0] == "token" else name.split()[0]
        if expected.isdigit():
            assert answer.status_code == int(expected), (name, statuses)
        _assert_hardened(answer)
    # A preflight is not answered as CORS: the browser then refuses the real request.
    for name, answer in answers.items():
        if name.startswith("preflight"):
            assert answer.status_code in {404, 405}, (name, answer.status_code)


async def test_the_jwks_may_be_cached_but_is_otherwise_hardened(hub: Hub) -> None:
    answer = await hub.http.get("/.well-known/jwks.json", headers=FOREIGN)
    assert answer.status_code == 200
    _assert_hardened(answer, cacheable=True)
    assert answer.headers["cache-control"] == "public, max-age=300"


@pytest.mark.parametrize("origin", ["null", "http://hub.test", "https://hub.test.evil.example"])
async def test_no_origin_is_reflected(hub: Hub, origin: str) -> None:
    answer = await hub.http.get("/v1/catalogue", headers={**hub.auth("gtb"), "Origin": origin})
    assert answer.status_code == 200
    assert origin not in str(answer.headers)
    _assert_hardened(answer)
