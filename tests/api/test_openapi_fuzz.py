"""Schemathesis against the hub's own OpenAPI document (CONTRACT.md 3 and 5).

Every operation the document lists is called with inputs generated from the
document itself: valid ones (positive) and ones that break it (negative), by a
partner with every scope, by the operator ``hub`` (who sees the whole audit log), by a
partner with one scope only, and with no or a forged token. The real app answers
in-process on the test's own event loop, with a real database and real simulated
sources (tests/api/conftest.py): schemathesis generates and checks, httpx sends
(schemathesis' own ASGI transport runs the app on an event loop of its own per call,
and the hub's database engine and source sessions belong to the test's loop).
Each answer must:

- never be a 500, on any input (502/503/504 only where the document lists them);
- have a status the document lists for that operation;
- have the documented content type and conform to the documented schema;
- be ``application/problem+json`` with ``type``, ``title``, ``status`` and ``detail``
  when it is an error (``/oauth/token``: RFC 6749 5.2, ``application/json`` with ``error``);
- be a 4xx when the input breaks the document (negative mode);
- be 401 for a protected operation called without a valid token, whatever the body.

Two thirds of the positive cases get values the hub knows (a participant's INSZ, an
agreement's source, purpose, fields and roles, a consent granted before the run, a
client's id and secret), so that disclosures, consents, revokes and tokens are reached
and checked too, not only the INSZ rule.

Bounded: a fixed number of derandomized examples per operation and mode, so that every
CI run sends the same requests (about 20 s). The same test with 300 examples, or not
derandomized, passed as well when it was written.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from hub.api.app import create_app
from hub.api.problems import PROBLEM_JSON
from hub.domain.ids import PartnerId
from hub.domain.principal import ALL_SCOPES
from hub.settings import Settings
from tests.api.conftest import POLICIES, Hub

EXAMPLES = 40
BASE_URL = "http://hub.test"
TOKEN_PATH = "/oauth/token"
PARTNER = "ocmw-gent"
OPERATOR = "hub"
ALL = tuple(str(s) for s in ALL_SCOPES)
CALLERS = (
    *("partner",) * 3,
    *("operator",) * 2,
    *(f"partner:{s}" for s in ALL),
    "anonymous",
    "forged-token",
)
"""Weighted towards callers who get past the token. ``partner:SCOPE``: only that scope."""
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@cache
def _document() -> dict[str, Any]:
    """The document as the app serves it; building the app does no I/O (its lifespan does)."""
    unused = Path("/nonexistent")
    settings = Settings(
        policy_dir=POLICIES, database_url="sqlite://", key_dir=unused, public_url=None
    )
    return create_app(settings).openapi()


@cache
def _schema() -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(_document())


def _operations() -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, ops in _document()["paths"].items() for method in ops]


def _protected(method: str, path: str) -> bool:
    return bool(_document()["paths"][path][method.lower()].get("security"))


def _has_inputs(method: str, path: str) -> bool:
    operation = _document()["paths"][path][method.lower()]
    return bool(operation.get("parameters") or operation.get("requestBody"))


CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
]


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The conftest's settings; rate limits off unless a test names them (``indirect``).

    The fuzz sends hundreds of calls a second from one client: a 429 would hide answers.
    """
    limits = getattr(request, "param", "off")
    return dataclasses.replace(settings, rate_limit=limits, token_rate_limit=limits)


def _assert_error_shape(response: httpx.Response, path: str) -> None:
    """CONTRACT.md 5: every error is problem+json; the token endpoint answers RFC 6749 5.2."""
    media_type = response.headers.get("content-type", "").partition(";")[0].strip()
    document = response.json()
    if path == TOKEN_PATH and response.status_code != 413:  # the body limit comes before OAuth
        assert media_type == "application/json", response.headers
        assert isinstance(document.get("error"), str), document
        return
    assert media_type == PROBLEM_JSON, (response.status_code, response.headers)
    for member, kind in (("type", str), ("title", str), ("status", int), ("detail", str)):
        assert isinstance(document.get(member), kind), (member, document)
    assert document["status"] == response.status_code, document


async def _send(hub: Hub, case: Case, authorization: str | None) -> httpx.Response:
    """The case's exact request, encoded as schemathesis encodes it, over the test's client."""
    headers = {"Authorization": authorization} if authorization else None
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=headers)
    kwargs.pop("cookies", None)  # the document declares none
    prepared = requests.Request(**kwargs).prepare()
    body = prepared.body
    content = body.encode() if isinstance(body, str) else body
    return await hub.http.request(
        str(prepared.method), str(prepared.url), headers=dict(prepared.headers), content=content
    )


def _authorization(hub: Hub, caller: str) -> str | None:
    if caller == "anonymous":
        return None
    if caller == "forged-token":
        # Well-formed, signed by nobody the hub knows.
        return "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    partner = OPERATOR if caller == "operator" else PARTNER
    _, _, scope = caller.partition(":")
    return f"Bearer {hub.token(partner, (scope,) if scope else ALL)}"


@dataclasses.dataclass
class Known:
    """Values the hub knows, to put into some positive cases (drawn, so reproducible)."""

    participants: dict[str, str]
    """A participant each source knows, by source; and one no source knows."""
    catalogue: dict[str, list[str]]
    purposes: list[str]
    roles: list[str]
    agreements: list[tuple[str, str, list[str], list[str]]]
    """Source, purpose, fields and roles of each agreement that names the partner."""
    client: tuple[str, str] = ("", "")
    """A client_secret client of the partner: its id and secret."""
    consents: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, hub: Hub) -> Known:
        policies = hub.container.policies
        catalogue = {str(s): sorted(fields) for s, fields in policies.catalogue.items()}
        return cls(
            participants={**{s: hub.person(s) for s in catalogue}, "": hub.stranger()},
            catalogue=catalogue,
            purposes=sorted({a.purpose for a in policies.agreements}),
            roles=sorted({r for a in policies.agreements for r in a.roles}),
            agreements=[
                (a.provider, a.purpose, sorted(a.fields), sorted(a.roles))
                for a in policies.agreements
                if PARTNER in a.recipients
            ],
        )


def _realistic(case: Case, known: Known, data: st.DataObject, caller: str) -> None:
    """Replace generated values by ones the hub knows, where the case has them."""
    pick = lambda values: data.draw(st.sampled_from(sorted(values)))  # noqa: E731
    source = pick(known.catalogue)
    participant = known.participants[pick([source, ""])]
    if isinstance(case.query, dict) and "participant" in case.query:
        case.query["participant"] = participant
    if isinstance(case.path_parameters, dict) and "consent_id" in case.path_parameters:
        case.path_parameters["consent_id"] = pick(known.consents)
    if isinstance(case.body, dict) and "grant_type" in case.body:
        body = {k: v for k, v in case.body.items() if not k.startswith("client_assertion")}
        body["client_id"], body["client_secret"] = known.client
        case.body = body
    if isinstance(case.body, dict) and "participant" in case.body:
        body = dict(case.body)
        body["participant"] = participant
        body["purpose"] = pick(known.purposes)
        fields = known.catalogue[source]
        if "source" in body:
            # An agreement that names the partner, so that some fields are disclosed.
            source, body["purpose"], fields, roles = pick(known.agreements)
            body["source"] = source
            body["participant"] = known.participants[pick([source, source, ""])]
            body["actor"] = {"role": pick(roles), "id": "u-1"}
        body["fields"] = sorted(set(data.draw(st.lists(st.sampled_from(fields), min_size=1))))
        if "recipient" in body:
            body["recipient"] = OPERATOR if caller == "operator" else PARTNER
        case.body = body


@pytest.fixture
async def known(hub: Hub) -> Known:
    """What the hub knows, with a few consents given to the partner (to list and revoke)."""
    found = Known.of(hub)
    made = await hub.container.clients.create(PartnerId(PARTNER), frozenset(ALL))
    assert made.client_secret is not None
    found.client = (made.client_id, made.client_secret)
    for source, participant in sorted(found.participants.items())[1:4]:
        fields = found.catalogue[source][:2]
        granted = await hub.consent(PARTNER, participant, fields)
        assert granted.status_code == 201, granted.text
        found.consents.append(granted.json()["id"])
    return found


FUZZ = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[
        # One hub per operation, shared by its examples: state accumulating is the point.
        HealthCheck.function_scoped_fixture,
        # Schemathesis' strategies build large, filtered values by design.
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


FUZZED = [
    pytest.param(method, path, mode, id=f"{method}-{path}-{mode.value}")
    for method, path in _operations()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # An operation without parameters or body has nothing to break.
    if mode is GenerationMode.POSITIVE or _has_inputs(method, path)
]


@pytest.mark.parametrize(("method", "path", "mode"), FUZZED)
@FUZZ
@given(data=st.data())
async def test_every_answer_is_documented(
    hub: Hub, known: Known, method: str, path: str, mode: GenerationMode, data: st.DataObject
) -> None:
    caller = data.draw(st.sampled_from(CALLERS), label="caller")
    case = data.draw(_schema()[path][method].as_strategy(generation_mode=mode), label="case")
    if mode is GenerationMode.POSITIVE and data.draw(st.sampled_from((True, True, False))):
        _realistic(case, known, data, caller)

    response = await _send(hub, case, _authorization(hub, caller))

    assert response.status_code != 500, response.text
    if response.status_code >= 400:
        _assert_error_shape(response, path)
    if _protected(method, path) and caller in {"anonymous", "forged-token"}:
        assert response.status_code == 401, (response.status_code, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
    case.validate_response(response, checks=CHECKS)


PROTECTED_BODIES = [
    (method, path)
    for method, path in _operations()
    if _protected(method, path) and "requestBody" in _document()["paths"][path][method.lower()]
]


@pytest.mark.parametrize(("method", "path"), PROTECTED_BODIES)
@pytest.mark.parametrize("body", [b"{bad", b"\xff\xfe", b"[1,", b"{" * 5000])
async def test_the_token_is_checked_before_the_body_is_read(
    hub: Hub, method: str, path: str, body: bytes
) -> None:
    """401, 403, then 400: one order, whether the body is JSON or not (CONTRACT.md 5)."""
    json_type = {"Content-Type": "application/json"}
    anonymous = await hub.http.request(method, path, content=body, headers=json_type)
    other_scope = "audit:read" if path != "/v1/audit/events" else "exchange"
    unscoped = await hub.http.request(
        method, path, content=body, headers={**json_type, **hub.auth(PARTNER, other_scope)}
    )
    allowed = await hub.http.request(
        method, path, content=body, headers={**json_type, **hub.auth(PARTNER)}
    )

    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["reason"] == "invalid-token"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert unscoped.status_code == 403, unscoped.text
    assert unscoped.json()["reason"] == "insufficient-scope"
    assert allowed.status_code == 400, allowed.text
    assert allowed.json()["reason"] == "invalid-json"
    for answer in (anonymous, unscoped, allowed):
        _assert_error_shape(answer, path)


@pytest.mark.parametrize("path", list(_document()["paths"]))
async def test_an_undeclared_method_is_405_naming_the_allowed_ones(hub: Hub, path: str) -> None:
    """RFC 9110 15.5.6. HEAD too: the API is not a general-purpose server (9.1), and a HEAD
    of an audit or consent list would do the query, count against the rate limit and
    answer nothing; the document lists no HEAD, so the answer is 405 naming GET.
    """
    declared = {m.upper() for m in _document()["paths"][path]}
    concrete = path.replace("{consent_id}", "c-1")
    for method in sorted(set(HTTP_METHODS) - declared):
        answer = await hub.http.request(method, concrete, headers=hub.auth(PARTNER))

        assert answer.status_code == 405, (method, answer.status_code, answer.text)
        assert set(answer.headers["allow"].split(", ")) == declared, method
        assert answer.headers["content-type"] == PROBLEM_JSON
        if method != "HEAD":  # HEAD: the same answer, without a body (RFC 9110 9.3.2)
            _assert_error_shape(answer, "")
            assert answer.json()["reason"] == "method-not-allowed"


@pytest.mark.parametrize(
    "consent_id",
    ["%2F", "..", "%2E%2E", "a%00b", "%E9", "%C3%A9", "%F0%9F%92%A5", "x" * 65, "%20", "a;b", "*"],
)
async def test_an_odd_path_parameter_is_a_problem_not_a_crash(hub: Hub, consent_id: str) -> None:
    answer = await hub.http.post(f"/v1/consents/{consent_id}/revoke", headers=hub.auth(PARTNER))

    assert answer.status_code in {404, 422}, answer.text
    _assert_error_shape(answer, "")


@pytest.mark.parametrize("settings", ["1/minute"], indirect=True)
async def test_a_throttled_answer_is_as_documented(hub: Hub) -> None:
    """429 of the API (problem+json) and of the token endpoint (RFC 6749 ``slow_down``)."""
    statuses = [
        openapi_checks.status_code_conformance,
        openapi_checks.content_type_conformance,
        openapi_checks.response_schema_conformance,
    ]
    catalogue = _schema()["/v1/catalogue"]["GET"].Case(query={})
    made = await hub.container.clients.create(PartnerId(PARTNER), frozenset(ALL))
    form = {"grant_type": "client_credentials", "client_id": made.client_id, "client_secret": "x"}
    token = _schema()[TOKEN_PATH]["POST"].Case(
        body=form, media_type="application/x-www-form-urlencoded"
    )
    for case, authorization in ((catalogue, _authorization(hub, "partner")), (token, None)):
        answers = [await _send(hub, case, authorization) for _ in range(2)]

        assert answers[-1].status_code == 429, answers[-1].text
        assert int(answers[-1].headers["retry-after"]) >= 1
        _assert_error_shape(answers[-1], case.path)
        case.validate_response(answers[-1], checks=statuses)


@pytest.mark.parametrize(("method", "path"), PROTECTED_BODIES)
@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_body_that_is_not_json_is_415_after_the_token(
    hub: Hub, method: str, path: str, content_type: str | None
) -> None:
    """RFC 9110 15.5.16, and documented so; without a token the answer is still 401."""
    body = b'{"participant": "85073003328"}'
    headers = {} if content_type is None else {"Content-Type": content_type}
    anonymous = await hub.http.request(method, path, content=body, headers=headers)
    allowed = await hub.http.request(
        method, path, content=body, headers={**headers, **hub.auth(PARTNER)}
    )

    assert anonymous.status_code == 401, anonymous.text
    assert allowed.status_code == 415, allowed.text
    assert allowed.json()["reason"] == "unsupported-media-type"
    _assert_error_shape(allowed, path)
    assert "415" in _document()["paths"][path][method.lower()]["responses"]
