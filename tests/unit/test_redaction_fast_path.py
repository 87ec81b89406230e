"""The redaction's fast paths (issue #4) change no output: the processor is held to the
one it replaced, for any text and any event.

``redact_text`` skips a substitution when the text lacks what its pattern needs, and the
processor keeps the keys it found clean. Neither may let through anything the four
substitutions on every key and value would have caught: an INSZ in any spelling, a JWT,
credentials, a secret parameter, also with the Unicode letters that ``re.IGNORECASE``
matches to ASCII ones (``ſ`` for ``s``, the Kelvin sign for ``k``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

import hub.logging as hub_logging
from hub.logging import (
    REDACTED,
    REDACTED_INSZ,
    configure_logging,
    redact,
    redact_personal_data,
    redact_text,
    redact_text_in_full,
)
from tests.unit.test_logging_redaction import (
    JWT,
    NUMBERS,
    SECRET,
    written_forms,
)

# -- the processor as it was before the fast paths: the oracle -----------------------


def reference_processor(event: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        reference_key(k): v if reference_is_hub_hash(k, v) else reference_member(k, v)
        for k, v in event.items()
    }


def reference_value(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return redact_text_in_full(value)
    if isinstance(value, int):
        return REDACTED_INSZ if hub_logging._could_be_insz(value) else value
    if isinstance(value, float):
        insz = value.is_integer() and hub_logging._could_be_insz(int(value))
        return REDACTED_INSZ if insz else value
    if isinstance(value, bytes | bytearray | memoryview):
        return redact_text_in_full(bytes(value).decode("utf-8", "backslashreplace"))
    if isinstance(value, Mapping):
        return {reference_key(k): reference_member(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [reference_value(v) for v in value]
    return redact_text_in_full(repr(value))


def reference_member(key: Any, value: Any) -> Any:
    if (
        isinstance(key, str)
        and hub_logging._SECRET_KEY.search(key) is not None
        and value is not None
    ):
        return REDACTED
    return reference_value(value)


def reference_is_hub_hash(key: Any, value: Any) -> bool:
    return (
        key in {"head", "hash", "prev_hash"}
        and isinstance(value, str)
        and hub_logging._SHA256_HEX.fullmatch(value) is not None
    )


def reference_key(key: Any) -> str:
    return redact_text_in_full(key if isinstance(key, str) else repr(key))


# -- what may be in a line ----------------------------------------------------------

LOOK_ALIKES = ["ſ", "K", "İ", "ı", "Ｂ", "ｅｙＪ"]
"""Letters ``re.IGNORECASE`` matches to ASCII ones (long s, Kelvin sign), and others."""
FRAGMENTS = st.one_of(
    NUMBERS.flatmap(lambda digits: st.sampled_from(written_forms(digits))),
    st.sampled_from([JWT, JWT.split(".")[0], "eyJ", "eyJhbGciOi.eyJzdWIiOi.", "EYJ"]),
    st.sampled_from(["Bearer ", "bearer%20", "Basic+", "BASIC ", "Authorization: bearer "]),
    st.sampled_from(
        [
            "client_secret=",
            "password: '",
            "secret=",
            "access_token=",
            "client_assertion=",
            '"password": "',
            "Secret",
            SECRET,
        ]
    ),
    st.sampled_from(["baſic ", "ſecret=", "access_toKen=", "paſſword=", *LOOK_ALIKES]),
    st.text(alphabet="0123456789 ./-", max_size=16),
    st.text(alphabet="abcdeJsyrtx_=: %+0123456789", max_size=12),
    st.text(max_size=12),
)
TEXTS = st.lists(FRAGMENTS, max_size=8).map("".join)
KEYS = st.one_of(
    TEXTS,
    st.sampled_from(["event", "level", "client_secret", "token", "head", "hash", "Password"]),
    st.integers(),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    TEXTS,
    st.integers(),
    NUMBERS.map(int),
    st.floats(allow_nan=False),
    st.binary(max_size=16),
    TEXTS.map(str.encode),
    st.sampled_from(["ab" + "12345678901" + "c" * 51, "0" * 64]),  # hub hashes
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(KEYS, inner, max_size=4),
    ),
    max_leaves=12,
)
EVENTS = st.dictionaries(KEYS, VALUES, max_size=8)


@settings(max_examples=1500)
@given(text=TEXTS)
def test_the_fast_path_gives_what_every_substitution_gives(text: str) -> None:
    assert redact_text(text) == redact_text_in_full(text)


@settings(max_examples=500)
@given(text=st.text())
def test_the_fast_path_gives_the_same_for_any_text(text: str) -> None:
    assert redact_text(text) == redact_text_in_full(text)


@settings(max_examples=500)
@given(event=EVENTS)
def test_the_processor_gives_what_it_gave_before_its_fast_paths(event: dict[Any, Any]) -> None:
    expected = reference_processor(event)
    assert redact_personal_data(None, "info", dict(event)) == expected
    # Again, now with the keys it found clean remembered.
    assert redact_personal_data(None, "info", dict(event)) == expected
    assert redact(event) == reference_value(event)


def test_letters_that_ignorecase_matches_to_ascii_take_the_full_path() -> None:
    """``str.lower`` keeps ``ſ`` apart from ``s``; ``re.IGNORECASE`` does not."""
    for text in ["Authorization: baſic abcdef", "ſecret=abc", "access_toKen=x", "paſſword=x"]:
        assert redact_text(text) == redact_text_in_full(text) != text


def test_only_clean_keys_are_remembered_and_their_number_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub_logging, "_CLEAN_KEYS", {})  # as in a fresh process
    digits = "85073003328"
    insz_key = f"participant {digits}"
    cleaned = redact_personal_data(None, "info", {insz_key: 1, "client_secret": "x", "n": 2})
    assert cleaned == {f"participant {REDACTED_INSZ}": 1, "client_secret": REDACTED, "n": 2}
    assert insz_key not in hub_logging._CLEAN_KEYS
    assert not any(digits in key for key in hub_logging._CLEAN_KEYS)
    assert hub_logging._CLEAN_KEYS["client_secret"] is True
    assert hub_logging._CLEAN_KEYS["n"] is False

    many = {f"key_{i}": i for i in range(2 * hub_logging._CLEAN_KEYS_KEPT)}
    assert redact_personal_data(None, "info", dict(many)) == many
    assert len(hub_logging._CLEAN_KEYS) <= hub_logging._CLEAN_KEYS_KEPT
    # Past the bound, a key is still screened: redacted, and still named a credential.
    late = redact_personal_data(None, "info", {f"{digits} late": 1, "late_password": "x"})
    assert late == {f"{REDACTED_INSZ} late": 1, "late_password": REDACTED}


def test_a_str_subclass_comes_out_as_plain_text() -> None:
    class Name(str):
        __slots__ = ()

    class Sneaky(str):
        """Answers the fast path's checks so as to look clean."""

        __slots__ = ()

        def lower(self) -> str:
            return ""

        def isascii(self) -> bool:
            return True

    out = redact_personal_data(None, "info", {Name("event"): Name("vdab")})
    assert out == {"event": "vdab"}
    assert all(type(x) is str for x in [*out, *out.values()])
    assert redact_text(Sneaky("client_secret=abc 85073003328")) == (
        f"client_secret={REDACTED} {REDACTED_INSZ}"
    )


@pytest.mark.parametrize("json", [True, False], ids=["json", "console"])
def test_what_a_caller_passes_as_level_or_timestamp_never_reaches_the_line(
    json: bool,
) -> None:
    """The hub's lines are stamped after the redaction: the stamps must overwrite."""
    digits = "85073003328"
    buffer = io.StringIO()
    configure_logging("debug", json=json, stream=buffer)
    try:
        structlog.get_logger("hub.test").info(
            "stamped", timestamp=digits, level=f"Bearer {JWT}", note=f"participant {digits}"
        )
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h.get_name() == "ketenhub"]:
            root.removeHandler(handler)
    line = buffer.getvalue()
    assert digits not in line
    assert JWT not in line
    assert "stamped" in line
    assert REDACTED_INSZ in line  # the note, redacted


@settings(max_examples=300)
@given(event=EVENTS)
def test_a_json_line_is_the_text_structlog_json_renderer_wrote(event: dict[Any, Any]) -> None:
    """The renderer that replaced ``JSONRenderer()`` (encoder made once) writes its text."""
    cleaned = redact_personal_data(None, "info", dict(event))
    expected = structlog.processors.JSONRenderer()(None, "info", dict(cleaned))
    assert hub_logging._json_line(None, "info", cleaned) == expected
