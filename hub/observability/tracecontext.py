"""W3C Trace Context (Level 1, https://www.w3.org/TR/trace-context/): the ``traceparent``
header, and the trace the current request belongs to.

A request's trace id is its correlation id: taken from a valid ``traceparent`` (section
3.2), or made (16 random bytes). An invalid header is ignored, never an error (section
3.2.2.x: "the vendor MUST ignore the traceparent"). The REST adapter sends a source a
``traceparent`` with the same trace id and a new parent id (section 3.2.2.4: a new
``parent-id`` per outgoing request), so that the partner can correlate its logs with
ours. ``tracestate`` is not passed on: it is free text chosen by the caller, and a
source is another organisation.

A trace id that holds an INSZ shape (11 digits in a row, hex allows it) is not used:
the correlation id is in every log line, and a caller could otherwise put a national
number there (the log redaction would also mangle it). The hub makes none such.

Standard library only: the adapters use it too.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

_FIELDS: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_VERSION_00_LENGTH: Final = 55
_INVALID_VERSION: Final = "ff"
_ZERO_TRACE: Final = "0" * 32
_ZERO_PARENT: Final = "0" * 16
_SAMPLED: Final = 0x01
_DIGIT_RUN: Final = re.compile(r"[0-9]{11}")
"""In hex there are no separators: an INSZ shape is 11 digits in a row (or more, which
is refused too: cheaper than the general pattern, and no loss)."""


@dataclass(frozen=True, slots=True)
class Trace:
    """The trace a request belongs to; ``sampled`` is the caller's ``sampled`` flag."""

    trace_id: str
    sampled: bool = False

    def traceparent(self, parent_id: str | None = None) -> str:
        """A version-00 ``traceparent`` for an outgoing call: this trace, a new parent id.

        Only the ``sampled`` flag is passed on: the other bits are unknown to version 00
        and MUST be zero there (section 3.2.2.5).
        """
        span = parent_id if parent_id is not None else new_parent_id()
        return f"00-{self.trace_id}-{span}-{'01' if self.sampled else '00'}"


CURRENT: ContextVar[Trace | None] = ContextVar("ketenhub_trace", default=None)
"""The trace of the request being served (set by ``hub.api.middleware``)."""


def parse_traceparent(value: str) -> Trace | None:
    """The trace a ``traceparent`` header names, or None for anything invalid.

    Section 3.2.2: lowercase hex only; version ``ff`` is invalid; a version-00 header is
    exactly 55 characters; a later version may carry more after a ``-`` (section 4.3);
    an all-zero trace id or parent id is invalid.
    """
    length = len(value)
    if length < _VERSION_00_LENGTH:
        return None
    found = _FIELDS.match(value)
    if found is None:
        return None
    version, trace_id, parent_id, flags = found.groups()
    if version == _INVALID_VERSION or trace_id == _ZERO_TRACE or parent_id == _ZERO_PARENT:
        return None
    if _DIGIT_RUN.search(trace_id) is not None:
        return None
    if length > _VERSION_00_LENGTH and (version == "00" or value[_VERSION_00_LENGTH] != "-"):
        return None
    return Trace(trace_id, sampled=bool(int(flags, 16) & _SAMPLED))


def new_trace_id() -> str:
    """16 random bytes, hex (section 3.2.2.3); never all zeros, never an INSZ shape."""
    while (made := secrets.token_hex(16)) == _ZERO_TRACE or _DIGIT_RUN.search(made):
        pass
    return made


def new_parent_id() -> str:
    """8 random bytes, hex (section 3.2.2.4); never all zeros."""
    while (made := secrets.token_hex(8)) == _ZERO_PARENT:  # pragma: no cover - 2**-64
        pass
    return made


def add_correlation_id(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current request's trace id as ``correlation_id`` on every
    line logged while serving it (read from ``CURRENT``: nothing to bind per request)."""
    trace = CURRENT.get()
    if trace is not None:
        event_dict.setdefault("correlation_id", trace.trace_id)
    return event_dict


def current_traceparent() -> str | None:
    """A ``traceparent`` for a call made while serving a request; None outside one."""
    trace = CURRENT.get()
    return None if trace is None else trace.traceparent()
