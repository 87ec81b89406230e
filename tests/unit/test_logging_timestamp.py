"""A log line's ``timestamp`` (``hub.logging.UtcTimestamp``) is what structlog's
``TimeStamper(fmt="iso", utc=True)`` wrote before it (issue #4): ISO 8601 in UTC with
``Z``, microseconds floored, no fraction at a whole second, whatever the order of the
instants it is asked for (it keeps the text of the last second)."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta

import structlog
from hypothesis import given
from hypothesis import strategies as st

from hub.clock import SystemClock
from hub.logging import UtcTimestamp, configure_logging

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INSTANTS = st.one_of(
    st.integers(min_value=0, max_value=(9999 - 1970) * 365 * 86_400 * 10**9),
    st.integers(min_value=0, max_value=5000).map(lambda s: (1_780_000_000 + s) * 10**9),
    st.integers(min_value=1_780_000_000 * 10**9, max_value=1_780_000_010 * 10**9),
)


def as_structlog_writes_it(nanoseconds: int) -> str:
    """``TimeStamper(fmt="iso", utc=True)``: ``datetime.now(UTC).isoformat()``, ``Z``."""
    moment = EPOCH + timedelta(microseconds=nanoseconds // 1000)
    return moment.isoformat().replace("+00:00", "Z")


@given(instants=st.lists(INSTANTS, min_size=1, max_size=20))
def test_the_timestamp_is_the_one_structlog_wrote(instants: list[int]) -> None:
    clock = iter(instants)
    stamp = UtcTimestamp(now_ns=lambda: next(clock))
    for instant in instants:
        assert stamp(None, "info", {})["timestamp"] == as_structlog_writes_it(instant)


def test_a_whole_second_has_no_fraction_and_a_microsecond_has_six_digits() -> None:
    second = 1_780_000_000 * 10**9
    clock = iter([second, second + 1_000, second + 999, second + 10**9 - 1])
    stamp = UtcTimestamp(now_ns=lambda: next(clock))
    assert [stamp(None, "info", {})["timestamp"] for _ in range(4)] == [
        "2026-05-28T20:26:40Z",
        "2026-05-28T20:26:40.000001Z",
        "2026-05-28T20:26:40Z",  # 999 ns floor to a whole second, as datetime does
        "2026-05-28T20:26:40.999999Z",
    ]


def test_a_line_carries_the_time_it_was_written() -> None:
    buffer = io.StringIO()
    configure_logging("info", json=True, stream=buffer)
    try:
        before = SystemClock().now().replace(microsecond=0)
        structlog.get_logger("hub.test").info("stamped")
        after = SystemClock().now()
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h.get_name() == "ketenhub"]:
            root.removeHandler(handler)
    written = json.loads(buffer.getvalue())["timestamp"]
    assert written.endswith("Z")
    assert before <= datetime.fromisoformat(written) <= after
