"""W3C Trace Context (Level 1) ``traceparent``: what is taken as a correlation id.

A valid header's trace id is the correlation id; anything invalid is ignored (never an
error) and the hub makes one. Cases follow section 3.2 of the recommendation.
"""

from __future__ import annotations

import re

import pytest

from hub.domain.ids import has_insz_shape
from hub.observability.tracecontext import Trace, new_trace_id, parse_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


def test_a_valid_version_00_header_gives_its_trace_id_and_sampled_flag() -> None:
    assert parse_traceparent(VALID) == Trace(TRACE, sampled=True)
    assert parse_traceparent(f"00-{TRACE}-{PARENT}-00") == Trace(TRACE, sampled=False)


@pytest.mark.parametrize(
    "header",
    [
        "",
        VALID.upper(),  # 3.2.2: lowercase hex only
        f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 is exactly 55 characters
        f"00-{TRACE[:-1]}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-1",
        f"00_{TRACE}_{PARENT}_01",
        f" {VALID}",
        f"00-{TRACE}-{PARENT}-0g",
        f"01-{TRACE}-{PARENT}-01x",  # a later version continues only after a dash
        # A trace id with an INSZ shape would put a national number in every log line.
        "00-abcdef85073003328abcdef012345678-00f067aa0ba902b7-01",
    ],
)
def test_an_invalid_header_is_ignored(header: str) -> None:
    assert parse_traceparent(header) is None


def test_a_later_version_is_read_for_the_fields_it_shares_with_00() -> None:
    """Section 4.3: a version above 00 may carry more fields after a dash."""
    assert parse_traceparent(f"01-{TRACE}-{PARENT}-03-more") == Trace(TRACE, sampled=True)


def test_the_traceparent_sent_on_keeps_the_trace_and_makes_a_new_parent() -> None:
    """3.2.2.4: a new parent id per outgoing call; 3.2.2.5: only known flags."""
    trace = parse_traceparent(f"00-{TRACE}-{PARENT}-ff")
    assert trace is not None
    first, second = trace.traceparent(), trace.traceparent()
    assert first != second
    for sent in (first, second):
        assert re.fullmatch(rf"00-{TRACE}-[0-9a-f]{{16}}-01", sent)
        assert PARENT not in sent
        assert parse_traceparent(sent) == trace


def test_made_trace_ids_are_16_random_bytes_without_an_insz_shape() -> None:
    made = {new_trace_id() for _ in range(2000)}
    assert len(made) == 2000  # random: no two alike
    for trace_id in made:
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
        assert not has_insz_shape(trace_id)
        assert parse_traceparent(f"00-{trace_id}-{PARENT}-00") == Trace(trace_id)
