"""The answer's one encoding: the bytes ``json.dumps`` wrote with the same options."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.services.exchange import encode

VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=5), VALUES, max_size=4))
def test_the_bytes_are_json_dumps_own(document: dict[str, Any]) -> None:
    expected = json.dumps(document, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    try:
        assert encode(document) == expected.encode()
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            expected.encode()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_value_json_cannot_carry_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        encode({"data": {"x.y": [value]}})
