"""The lean ``POST /v1/exchange`` (``hub.api.fastpath``) answers exactly as the framework does.

Every request below, good and bad, goes to two apps over one hub: the app as it
serves (``create_app``) and the framework-only reference (``create_app(lean=False)``).
Status, headers and body must be equal, except what differs between any two calls
(the correlation id, the date, the new disclosure's id and audit sequence number and
hence the length). Each request is also checked to have been served by the path
meant for it, so that the comparison cannot pass by the lean route never serving.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from hub.api.app import create_app
from hub.domain.ids import PartnerId
from hub.domain.principal import Scope as TokenScope
from hub.ports import ClientRecord
from hub.settings import Settings
from tests.api.conftest import Hub
from tests.api.test_exchange import NO_AUDIT
from tests.conftest import connect

OPEN = ["trajectory.status", "trajectory.start_date"]
LIMIT = 3
ONE_MIB = 1024 * 1024
VARIES = frozenset({"x-correlation-id", "date", "content-length"})
"""Headers that differ between any two calls (the length: a new disclosure id and seq)."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A small per-client limit, so that one case reaches 429 in a few calls."""
    return dataclasses.replace(settings, rate_limit=f"{LIMIT}/minute")


@dataclasses.dataclass
class Side:
    """One of the two apps, with the tokens and Idempotency-Keys its cases use."""

    name: str
    hub: Hub
    http: httpx.AsyncClient
    framework_served: list[bool] = dataclasses.field(default_factory=list)
    case: str = ""

    def auth(self, partner: str = "gtb", scopes: tuple[str, ...] = ("exchange",)) -> str:
        """A token of a client of this case and side only: the rate limit is per client."""
        now = self.hub.clock.now()
        client = ClientRecord(
            client_id=f"{self.case}-{self.name}",
            partner=PartnerId(partner),
            scopes=frozenset(scopes),
            auth_method="client_secret",
            secret_hash=None,
            jwks=None,
            created_at=now,
        )
        issued, _ = self.hub.container.tokens.issue(
            client, frozenset(TokenScope(s) for s in scopes), now
        )
        return f"Bearer {issued}"

    def key(self, name: str) -> str:
        """An Idempotency-Key of this side: keys are kept per partner, for both apps."""
        return f"{self.name}-{self.case}-{name}"

    async def send(
        self,
        content: bytes | Callable[[], AsyncIterator[bytes]] | None = None,
        headers: list[tuple[str, str]] | None = None,
        *,
        method: str = "POST",
        path: str = "/v1/exchange",
    ) -> httpx.Response:
        body: Any = content() if callable(content) else content
        return await self.http.request(method, path, content=body, headers=headers or [])


def a_body(participant: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "participant": participant,
        "source": "vdab",
        "purpose": "trajectory-coordination",
        "fields": OPEN,
        "actor": {"role": "casemanager-work", "id": "u-1"},
    }
    body.update(changes)
    return body


def encoded(body: object) -> bytes:
    return json.dumps(body).encode()


JSON = ("content-type", "application/json")
Case = Callable[[Side, str], Awaitable[list[httpx.Response]]]
LEAN: dict[str, Case] = {}
"""Cases the lean route serves itself."""
FRAMEWORK: dict[str, Case] = {}
"""Cases the lean route hands to the framework."""


def lean(case: Case) -> Case:
    LEAN[case.__name__] = case
    return case


def framework(case: Case) -> Case:
    FRAMEWORK[case.__name__] = case
    return case


@lean
async def disclosed(side: Side, person: str) -> list[httpx.Response]:
    return [await side.send(encoded(a_body(person)), [JSON, ("authorization", side.auth())])]


@lean
async def media_type_with_parameters_and_case(side: Side, person: str) -> list[httpx.Response]:
    headers = [("content-type", "Application/JSON ; charset=utf-8"), ("authorization", side.auth())]
    return [await side.send(encoded(a_body(person)), headers)]


@lean
async def nothing_disclosed(side: Side, person: str) -> list[httpx.Response]:
    token = side.auth("penhouder-antwerpen")
    return [await side.send(encoded(a_body(person)), [JSON, ("authorization", token)])]


@lean
async def unknown_source(side: Side, person: str) -> list[httpx.Response]:
    body = a_body(person, source="nobody")
    return [await side.send(encoded(body), [JSON, ("authorization", side.auth())])]


@lean
async def unknown_participant(side: Side, _person: str) -> list[httpx.Response]:
    body = a_body(side.hub.stranger())
    return [await side.send(encoded(body), [JSON, ("authorization", side.auth())])]


@lean
async def invalid_insz(side: Side, _person: str) -> list[httpx.Response]:
    body = a_body("85073003329")
    return [await side.send(encoded(body), [JSON, ("authorization", side.auth())])]


@lean
async def no_token(side: Side, person: str) -> list[httpx.Response]:
    return [await side.send(encoded(a_body(person)), [JSON])]


@lean
async def not_a_token(side: Side, person: str) -> list[httpx.Response]:
    return [await side.send(encoded(a_body(person)), [JSON, ("authorization", "Bearer x.y.z")])]


@lean
async def basic_credentials(side: Side, person: str) -> list[httpx.Response]:
    return [
        await side.send(encoded(a_body(person)), [JSON, ("authorization", "Basic Zm9vOmJhcg==")])
    ]


@lean
async def without_the_exchange_scope(side: Side, person: str) -> list[httpx.Response]:
    token = side.auth(scopes=("audit:read",))
    return [await side.send(encoded(a_body(person)), [JSON, ("authorization", token)])]


@lean
async def rate_limited(side: Side, person: str) -> list[httpx.Response]:
    token = side.auth()
    return [
        await side.send(encoded(a_body(person)), [JSON, ("authorization", token)])
        for _ in range(LIMIT + 1)
    ]


@lean
async def with_a_query_string(side: Side, person: str) -> list[httpx.Response]:
    headers = [JSON, ("authorization", side.auth())]
    return [await side.send(encoded(a_body(person)), headers, path="/v1/exchange?x=1")]


@lean
async def duplicate_field(side: Side, person: str) -> list[httpx.Response]:
    body = a_body(person, fields=[*OPEN, OPEN[0]])
    return [await side.send(encoded(body), [JSON, ("authorization", side.auth())])]


@lean
async def national_number_in_identifiers(side: Side, person: str) -> list[httpx.Response]:
    token = side.auth()
    shaped = [
        a_body(person, actor={"role": "casemanager-work", "id": "85.07.30-033.28"}),
        a_body(person, fields=["trajectory.x85073003328"]),
    ]
    return [await side.send(encoded(b), [JSON, ("authorization", token)]) for b in shaped]


@lean
async def duplicate_json_members_last_wins(side: Side, person: str) -> list[httpx.Response]:
    raw = encoded(a_body(person))[:-1] + b', "source": "nobody", "source": "vdab"}'
    return [await side.send(raw, [JSON, ("authorization", side.auth())])]


@lean
async def body_in_several_chunks(side: Side, person: str) -> list[httpx.Response]:
    raw = encoded(a_body(person))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 7):
            yield raw[start : start + 7]

    return [await side.send(chunks, [JSON, ("authorization", side.auth())])]


@lean
async def idempotency_key_replayed_and_reused(side: Side, person: str) -> list[httpx.Response]:
    token = side.auth()
    first = [JSON, ("authorization", token), ("idempotency-key", side.key("a"))]
    other = a_body(person, fields=OPEN[:1])
    return [
        await side.send(encoded(a_body(person)), first),
        await side.send(encoded(a_body(person)), first),
        await side.send(encoded(other), first),
    ]


@lean
async def idempotency_keys_first_one_counts(side: Side, person: str) -> list[httpx.Response]:
    token = side.auth()
    two = [JSON, ("authorization", token)]
    two += [("idempotency-key", side.key("first")), ("idempotency-key", side.key("second"))]
    return [
        await side.send(encoded(a_body(person)), two),
        await side.send(
            encoded(a_body(person)),
            [JSON, ("authorization", token), ("idempotency-key", side.key("first"))],
        ),
    ]


@lean
async def idempotency_key_blank_or_longest(side: Side, person: str) -> list[httpx.Response]:
    token = side.auth()
    longest = side.key("x").ljust(200, "k")
    return [
        await side.send(encoded(a_body(person)), [JSON, ("authorization", token), (k, v)])
        for k, v in (("idempotency-key", "   "), ("idempotency-key", longest))
    ]


@lean
async def source_breaks_its_promise(side: Side, person: str) -> list[httpx.Response]:
    recording = side.hub.sources["vdab"]
    working = recording.inner
    recording.inner = BrokenSource()
    try:
        answer = await side.send(encoded(a_body(person)), [JSON, ("authorization", side.auth())])
    finally:
        recording.inner = working
    assert answer.status_code == 502  # any error of an adapter is the source failing
    return [answer]


@lean
async def audit_record_cannot_be_written(side: Side, person: str) -> list[httpx.Response]:
    if side.name == "lean":  # the first side of the two: the trigger then stays
        with connect(side.hub.database_url) as raw:
            for statement in NO_AUDIT[side.hub.container.db.engine.dialect.name]:
                raw.execute(statement)
    answer = await side.send(encoded(a_body(person)), [JSON, ("authorization", side.auth())])
    assert answer.status_code == 503
    return [answer]


class BrokenSource:
    """A source adapter that breaks its port's promise (a bug, not a source failure)."""

    async def fetch(self, *_: object) -> dict[str, object]:
        raise RuntimeError

    async def aclose(self) -> None:
        return None


@framework
async def invalid_json(side: Side, person: str) -> list[httpx.Response]:
    raw = encoded(a_body(person))[:-1]
    return [
        await side.send(raw, [JSON, ("authorization", side.auth())]),
        await side.send(raw, [JSON]),
        await side.send(raw, [JSON, ("authorization", side.auth(scopes=("audit:read",)))]),
    ]


@framework
async def not_json(side: Side, person: str) -> list[httpx.Response]:
    token = side.auth()
    raw = encoded(a_body(person))
    return [
        await side.send(raw, [("content-type", "text/plain"), ("authorization", token)]),
        await side.send(raw, [("authorization", token)]),
        await side.send(
            b"participant=1",
            [("content-type", "application/x-www-form-urlencoded"), ("authorization", token)],
        ),
    ]


@framework
async def other_json_media_types(side: Side, person: str) -> list[httpx.Response]:
    token = side.auth()
    return [
        await side.send(
            encoded(a_body(person)), [(("content-type", media)), ("authorization", token)]
        )
        for media in ("application/problem+json", "application/json-seq")
    ]


@framework
async def json_the_parser_takes(side: Side, person: str) -> list[httpx.Response]:
    """JSON that ``json.loads`` reads and pydantic's own parser refuses: the framework's."""
    token = side.auth()
    raw = encoded(a_body(person))
    return [
        await side.send(b"\xef\xbb\xbf" + raw, [JSON, ("authorization", token)]),
        await side.send(raw.decode().encode("utf-16"), [JSON, ("authorization", token)]),
        await side.send(raw.replace(b'"u-1"', b"NaN"), [JSON, ("authorization", token)]),
    ]


@framework
async def does_not_match_the_api(side: Side, person: str) -> list[httpx.Response]:
    bodies: list[object] = [
        [],
        {},
        {k: v for k, v in a_body(person).items() if k != "actor"},
        {**a_body(person), "85073003328": "x"},
        a_body(person, fields="trajectory.status"),
        a_body(person, fields=[f"trajectory.f{i}" for i in range(101)]),
        a_body(person, fields=["Trajectory"]),
        {**a_body(person), "participant": 85073003328},
        a_body(person, actor={"role": "casemanager-work", "id": "u 1"}),
    ]
    responses = []
    for number, body in enumerate(bodies):
        # A client each three calls: the rate limit is not what this case is about.
        side.case = f"does_not_match_the_api-{number // LIMIT}"
        responses.append(await side.send(encoded(body), [JSON, ("authorization", side.auth())]))
    side.case = "does_not_match_the_api-no-token"
    responses.append(await side.send(encoded({}), [JSON]))
    responses.append(await side.send(b"", [JSON, ("authorization", side.auth())]))
    return responses


@framework
async def lone_surrogate(side: Side, _person: str) -> list[httpx.Response]:
    raw = encoded(a_body("\ud800" + "1" * 10))
    return [await side.send(raw, [JSON, ("authorization", side.auth())])]


@framework
async def idempotency_key_too_long(side: Side, person: str) -> list[httpx.Response]:
    headers = [JSON, ("authorization", side.auth()), ("idempotency-key", "k" * 201)]
    return [await side.send(encoded(a_body(person)), headers)]


@framework
async def body_over_the_limit(side: Side, person: str) -> list[httpx.Response]:
    raw = encoded(a_body(person, padding="x" * ONE_MIB))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 64 * 1024):
            yield raw[start : start + 64 * 1024]

    token = side.auth()
    return [
        await side.send(raw, [JSON, ("authorization", token)]),
        await side.send(chunks, [JSON, ("authorization", token)]),
    ]


@framework
async def other_methods_and_paths(side: Side, person: str) -> list[httpx.Response]:
    token = side.auth()
    raw = encoded(a_body(person))
    responses = [
        await side.send(None, [("authorization", token)], method=method)
        for method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH")
    ]
    for path in ("/v1/exchange/", "/v1/Exchange", "/v1/exchange/x"):
        side.case = f"other_methods_and_paths{path}"
        responses.append(await side.send(raw, [JSON, ("authorization", side.auth())], path=path))
    return responses


def comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], object]:
    headers = [
        (k, "<seconds>" if k == "retry-after" and v.isdigit() else v)
        for k, v in response.headers.multi_items()
        if k not in VARIES
    ]
    assert response.headers["x-correlation-id"]
    if response.request.method != "HEAD":
        assert int(response.headers["content-length"]) == len(response.content)
    body: object = response.content
    if response.content and response.headers.get("content-type", "").endswith("json"):
        document = response.json()
        if isinstance(document, dict):
            # New for every decision (a replay repeats its first answer's).
            for member in ("disclosure_id", "audit_seq"):
                if member in document:
                    document[member] = type(document[member]).__name__
        body = document
    return response.status_code, headers, body


def recording(app: Any, served: list[bool]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """``app``, noting whether FastAPI's route handling ran (it sets its exit stacks)."""

    async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)
        if scope["type"] == "http":
            served.append("fastapi_middleware_astack" in scope)

    return recorded


@pytest.fixture
async def sides(hub: Hub, settings: Settings) -> AsyncIterator[tuple[Side, Side]]:
    made = []
    for name, is_lean in (("lean", True), ("framework", False)):
        served: list[bool] = []
        app = recording(create_app(settings, container=hub.container, lean=is_lean), served)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test")
        made.append(Side(name, hub, http, served))
    try:
        yield made[0], made[1]
    finally:
        for side in made:
            await side.http.aclose()


async def _compare(case: Case, lean_side: Side, framework_side: Side, person: str) -> None:
    answers = []
    for side in (lean_side, framework_side):
        side.case = case.__name__
        side.framework_served.clear()
        answers.append(await case(side, person))
    lean_answers, framework_answers = answers
    assert len(lean_answers) == len(framework_answers)
    for number, (ours, theirs) in enumerate(zip(lean_answers, framework_answers, strict=True)):
        assert comparable(ours) == comparable(theirs), (case.__name__, number)


@pytest.mark.parametrize("name", sorted(LEAN))
async def test_the_lean_route_answers_as_the_framework_does(
    name: str, sides: tuple[Side, Side], hub: Hub
) -> None:
    lean_side, framework_side = sides
    await _compare(LEAN[name], lean_side, framework_side, hub.person("vdab"))
    assert not any(lean_side.framework_served), "the lean route handed this to FastAPI"
    assert all(framework_side.framework_served)


@pytest.mark.parametrize("name", sorted(FRAMEWORK))
async def test_what_the_lean_route_does_not_take_the_framework_answers(
    name: str, sides: tuple[Side, Side], hub: Hub
) -> None:
    lean_side, framework_side = sides
    await _compare(FRAMEWORK[name], lean_side, framework_side, hub.person("vdab"))
    assert lean_side.framework_served == framework_side.framework_served


async def test_the_document_describes_the_route_as_before(sides: tuple[Side, Side]) -> None:
    """/openapi.json is the framework's view of the route: the lean path changes nothing
    in it (request body, the Idempotency-Key header, every answer, the scope)."""
    lean_side, framework_side = sides
    documents = [(await s.http.get("/openapi.json")).json() for s in (lean_side, framework_side)]
    assert documents[0] == documents[1]
    operation = documents[0]["paths"]["/v1/exchange"]
    assert list(operation) == ["post"]
    post = operation["post"]
    assert post["requestBody"] == {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExchangeBody"}}},
        "required": True,
    }
    assert post["parameters"] == [
        {
            "in": "header",
            "name": "idempotency-key",
            "required": False,
            "schema": {
                "anyOf": [{"maxLength": 200, "type": "string"}, {"type": "null"}],
                "title": "Idempotency-Key",
            },
        }
    ]
    assert post["security"] == [{"oauth2": ["exchange"]}]
    statuses = [200, 400, 401, 403, 404, 409, 413, 415, 422, 429, 502, 503, 504]
    assert sorted(int(s) for s in post["responses"]) == statuses
    assert set(documents[0]["components"]["schemas"]["ExchangeBody"]["required"]) == {
        "participant",
        "source",
        "purpose",
        "fields",
        "actor",
    }


async def test_a_lean_answer_is_counted_under_the_route_template(
    sides: tuple[Side, Side], hub: Hub
) -> None:
    lean_side, _ = sides
    lean_side.case = "metrics"
    label = b'route="/v1/exchange"'
    before = [line for line in hub.container.metrics.render().splitlines() if label in line]
    response = await lean_side.send(
        encoded(a_body(hub.person("vdab"))), [JSON, ("authorization", lean_side.auth())]
    )
    assert response.status_code == 200
    assert lean_side.framework_served == [False]
    after = [line for line in hub.container.metrics.render().splitlines() if label in line]
    counted = b'ketenhub_http_requests_total{method="POST",route="/v1/exchange",status="200"} 1.0'
    assert counted in after
    assert counted not in before


async def test_before_the_hub_is_built_both_answer_500_with_the_same_headers(
    settings: Settings, hub: Hub
) -> None:
    """A request before the lifespan has built the container: an unexpected error."""
    answers = []
    for is_lean in (True, False):
        app = create_app(settings, lean=is_lean)  # no container, its lifespan not run
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
            answers.append(
                await http.post(
                    "/v1/exchange",
                    content=encoded(a_body(hub.person("vdab"))),
                    headers=[JSON, ("authorization", "Bearer x")],
                )
            )
    assert answers[0].status_code == 500
    assert comparable(answers[0]) == comparable(answers[1])
