"""The ``rest`` adapter's reading of a source's answer, against the full proof it replaced.

``adapters.rest._parse`` takes a fast path for the usual answer (UTF-8, no surrogate
escape). ``oracle`` below is the reading as it was: ``json.loads`` of the bytes with
NaN and Infinity refused, then a ``json.dumps(...).encode()`` of the whole document
to prove that the hub can send every value on. For any body, both must accept the
same values or refuse with the same message (CONTRACT.md 2: a body that is not the
shape, values not asked for, or JSON the hub could not pass on are a failure).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from yarl import URL

from adapters.rest import RestSourceAdapter, _parse
from hub.domain.errors import SourceUnavailableError
from hub.domain.ids import FieldName, Insz

ASKED = frozenset({FieldName("x.y"), FieldName("a.b")})


def _no_constants(name: str) -> object:
    raise ValueError(name)


def oracle(body: bytes, fields: frozenset[FieldName]) -> Mapping[FieldName, object]:
    """``_parse`` as it was before the fast path."""
    try:
        document = json.loads(body, parse_constant=_no_constants)
        json.dumps(document, allow_nan=False, ensure_ascii=False).encode()
    except (ValueError, UnicodeError) as exc:
        raise _failure("the source's answer is not strict JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("fields"), dict):
        raise _failure('the source\'s answer does not have the shape {"fields": {...}}')
    values: dict[str, object] = document["fields"]
    unasked = set(values) - fields
    if unasked:
        raise _failure(f"the source sent {len(unasked)} field(s) it was not asked for")
    return {FieldName(name): value for name, value in values.items()}


def _failure(why: str) -> SourceUnavailableError:
    return SourceUnavailableError("source-unavailable", f"The source failed: {why}.")


def outcome(read: object, body: bytes, fields: frozenset[FieldName] = ASKED) -> tuple[str, object]:
    assert callable(read)
    try:
        values = read(body, fields)
    except SourceUnavailableError as failed:
        return "failed", (failed.reason, failed.detail)
    except RecursionError:
        return "recursion", None
    # repr tells 1 from 1.0 and True, and -0.0 from 0.0, where == would not.
    return "ok", repr(values)


def same(body: bytes, fields: frozenset[FieldName] = ASKED) -> None:
    assert outcome(_parse, body, fields) == outcome(oracle, body, fields)


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
TEXT = st.text(st.one_of(st.characters(), SURROGATES), max_size=8)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and the infinities included
    TEXT,
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)
FIELD_NAMES = st.sampled_from(["x.y", "a.b", "c.d", "\ud800"])


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    """A source's answer: mostly the contract's shape, in the ways JSON can be written."""
    document = draw(
        st.one_of(
            st.fixed_dictionaries({"fields": st.dictionaries(FIELD_NAMES, VALUES, max_size=3)}),
            VALUES,
        )
    )
    ensure_ascii = draw(st.booleans())
    text = json.dumps(document, ensure_ascii=ensure_ascii)  # writes NaN, Infinity as such
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"]))
    return text.encode(encoding, "surrogatepass")


@given(answers())
@example(b'{"fields": {"x.y": 1e999}}')
@example(b'{"fields": {"x.y": -1e999}}')
@example(b'{"fields": {"x.y": 1' + b"0" * 400 + b".5}}")
@example(b'{"fields": {"x.y": 1e-999}}')
@example(b'{"fields": {"x.y": NaN}}')
@example(b'{"fields": {"x.y": -Infinity}}')
@example(b'{"fields": {"x.y": "\\ud800"}}')
@example(b'{"fields": {"x.y": "\\uDFFF"}}')
@example(b'{"fields": {"x.y": "\\ud83d\\ude00"}}')  # a pair: one character
@example(b'{"fields": {"x.y": "\\\\ud800"}}')  # an escaped backslash, then text
@example(b'{"fields": {"x.y": "\xed\xa0\x80"}}')  # a surrogate as raw bytes
@example(b'{"fields": {"x.y": "\xed\xa0\xbd\xed\xb8\x80"}}')  # a pair as raw bytes (CESU-8)
@example(b'{"fields": {"x.y": "\xff"}}')
@example(b'\xef\xbb\xbf{"fields": {"x.y": 1}}')
@example(b'{"fields": {"x.y": 1, "x.y": 2}}')
@example(b'{"fields": {"x.y": 1, "z.z": 2}}')
@example(b'{"fields": []}')
@example(b"[]")
@example(b"")
@example(b'{"fields": {"x.y": 1}} trailing')
def test_every_answer_is_read_as_the_full_proof_read_it(body: bytes) -> None:
    same(body)


@given(st.binary(max_size=64))
def test_any_bytes_are_read_as_the_full_proof_read_them(body: bytes) -> None:
    same(body)


@given(answers(), st.data())
def test_bytes_changed_in_one_place(body: bytes, data: st.DataObject) -> None:
    if not body:
        return
    at = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    byte = data.draw(st.integers(min_value=0, max_value=255))
    same(body[:at] + bytes([byte]) + body[at + 1 :])


@pytest.mark.parametrize("depth", [10, 900, 990, 1000, 5000])
def test_deep_nesting_is_refused_or_read_as_before(depth: int) -> None:
    same(b'{"fields": {"x.y": ' + b"[" * depth + b"]" * depth + b"}}")


def test_the_answer_is_the_fields_asked_for() -> None:
    values = _parse(b'{"fields": {"x.y": {"n": 1.5, "s": "caf\\u00e9"}}}', ASKED)
    assert values == {"x.y": {"n": 1.5, "s": "café"}}


@pytest.mark.parametrize(
    "body",
    [
        b'{"fields": {"x.y": NaN}}',
        b'{"fields": {"x.y": [1e999]}}',
        b'{"fields": {"x.y": {"k": "\\udc00"}}}',
        b'{"fields": {"\\ud800": 1}}',
        b'{"fields": {"x.y": "\xed\xb0\x80"}}',
    ],
)
def test_what_the_hub_could_not_pass_on_is_a_failure(body: bytes) -> None:
    with pytest.raises(SourceUnavailableError, match="not strict JSON"):
        _parse(body, ASKED)


@given(
    digits=st.sampled_from(["85073003328", "01010100126"]),
    fields=st.frozensets(st.text(max_size=12), min_size=1, max_size=4),
    base=st.sampled_from(["http://127.0.0.1:8101", "http://src.example/api/", "http://h/a b"]),
)
@example(digits="85073003328", fields=frozenset({"trajectory.status", "icf.assessment"}), base="x")
def test_the_url_is_encoded_as_quote_encoded_it(
    digits: str, fields: frozenset[str], base: str
) -> None:
    """Every field name, plain or not, reaches the source as ``quote`` wrote it."""
    adapter = RestSourceAdapter(base, 1, client=None)  # type: ignore[arg-type]
    expected = URL(
        f"{adapter._base}/participants/{quote(digits, safe='')}"
        f"?fields={quote(','.join(sorted(fields)), safe=',')}",
        encoded=True,
    )
    fields_asked = frozenset(FieldName(f) for f in fields)
    assert str(adapter.url(Insz.parse(digits), fields_asked)) == str(expected)
