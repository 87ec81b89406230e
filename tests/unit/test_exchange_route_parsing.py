"""The lean exchange route's own parsing takes only what FastAPI's would, with its values.

``hub.api.routes.exchange`` serves a request itself only when ``is_json`` accepts its
media type and ``parse_body`` its body; FastAPI reads a body as JSON by its media type
(``email.message``) and then parses it with ``json.loads`` and validates the result.
Wherever the lean test accepts, FastAPI's must accept too, with the same values; where
it refuses, the framework answers, so a lean test stricter than FastAPI's costs only speed.
"""

from __future__ import annotations

import email.message
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hub.api.routes.exchange import is_json, parse_body
from hub.api.schemas import ExchangeBody

VALID = {
    "participant": "85073003328",
    "source": "vdab",
    "purpose": "trajectory-coordination",
    "fields": ["trajectory.status", "icf.assessment"],
    "actor": {"role": "casemanager-care", "id": "u-123"},
}


def framework_reads_json(media: str) -> bool:
    """FastAPI 0.165 ``get_request_handler``: which media types it parses as JSON."""
    message = email.message.Message()
    message["content-type"] = media
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def framework_parses(raw: bytes) -> ExchangeBody | None:
    try:
        return ExchangeBody.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        return None


@given(
    st.one_of(
        st.text(alphabet=st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=40),
        st.sampled_from(["application/json", " Application/JSON ;charset=utf-8", "text/json"]),
        st.builds(
            "{}{}{}".format,
            st.sampled_from(["", " ", "\t"]),
            st.sampled_from(["application/json", "APPLICATION/JSON", "application/jsonx"]),
            st.text(alphabet=";= \tabc\x85\xa0", max_size=8),
        ),
    )
)
def test_a_media_type_the_lean_route_takes_is_one_fastapi_reads_as_json(media: str) -> None:
    if is_json(media):
        assert framework_reads_json(media)


FIELD = r"[a-z][a-z0-9_]{0,5}(\.[a-z][a-z0-9_]{0,5}){1,2}"
ACTOR_ID = r"[A-Za-z0-9._:@-]{1,12}"
member = st.text(max_size=12) | st.sampled_from(["trajectory.status", "u-1", "vdab"])
value: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | member,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(member, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """Bodies near the valid one: values the schema takes (any text as the participant,
    which only its length bounds), members changed, added or dropped, encoded variously,
    some bytes then changed (JSON's edges: escapes, surrogates, whitespace, encodings)."""
    body: dict[str, Any] = json.loads(json.dumps(VALID))
    body["participant"] = draw(st.text(max_size=33) | st.just(VALID["participant"]))
    body["fields"] = draw(st.lists(st.from_regex(FIELD, fullmatch=True), min_size=1, max_size=3))
    body["actor"]["id"] = draw(st.from_regex(ACTOR_ID, fullmatch=True))
    if draw(st.integers(0, 3)) == 0:
        for name in draw(st.lists(st.sampled_from([*VALID, "extra"]), min_size=1, max_size=2)):
            body[name] = draw(value | member)
    text = json.dumps(
        body,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 0, 2])),
        allow_nan=True,
    )
    raw = text.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "utf-8-sig"])))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        at = draw(st.integers(0, len(raw)))
        insert = draw(st.sampled_from([b"", b" ", b"\\", b"\\ud800", b"\x00", b"\xff", b"}", b","]))
        raw = raw[:at] + insert + raw[at + draw(st.integers(0, 1)) :]
    return raw


@settings(max_examples=400)
@given(documents())
def test_a_body_the_lean_route_takes_fastapi_takes_with_the_same_values(raw: bytes) -> None:
    lean = parse_body(raw)
    if lean is not None:
        assert framework_parses(raw) == lean


def test_the_valid_body_is_taken_as_fastapi_takes_it() -> None:
    raw = json.dumps(VALID).encode()
    assert parse_body(raw) == framework_parses(raw) == ExchangeBody.model_validate(VALID)


def test_what_pydantic_refuses_and_python_reads_goes_to_the_framework() -> None:
    raw = json.dumps(VALID).encode()
    assert parse_body(b"\xef\xbb\xbf" + raw) is None  # a byte order mark
    assert parse_body(raw.decode().encode("utf-16")) is None
    assert framework_parses(raw.decode().encode("utf-16")) is not None
    assert parse_body(None) is None
    assert parse_body(b"") is None
