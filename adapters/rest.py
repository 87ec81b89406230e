"""The ``rest`` adapter: CONTRACT.md section 2's wire protocol (``adapters.httpclient``).

``GET {base_url}/participants/{insz}?fields=a,b,c`` answers ``200 {"fields": {...}}``
or ``404``. Anything else (a timeout, a redirect, a 5xx, a body that is not that
shape, values for fields not asked for, an oversized body) is a failure of the
source. Transport exceptions never leave this module: they become the hub's
``SourceTimeoutError`` / ``SourceUnavailableError``, whose text names no
participant and no value.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from urllib.parse import quote

from yarl import URL

from adapters.httpclient import BodyTooLargeError, HttpClient, HttpError
from hub.domain.agreements import SourceConfig
from hub.domain.errors import (
    SourceTimeoutError,
    SourceUnavailableError,
    UnknownParticipantError,
)
from hub.domain.ids import FieldName, Insz
from hub.observability.tracecontext import current_traceparent

MAX_BODY_BYTES = 4 * 1024 * 1024
_OK = 200
_ACCEPT = {"Accept": "application/json"}
_NOT_FOUND = 404


class RestSourceAdapter:
    def __init__(self, base_url: str, timeout_s: float, client: HttpClient) -> None:
        # Normalised (percent-encoded) once: each call then builds its URL as text.
        self._base = str(URL(base_url.rstrip("/")))
        self._timeout_s = timeout_s
        self._client = client

    @classmethod
    def from_config(cls, config: SourceConfig, client: HttpClient) -> RestSourceAdapter:
        return cls(config.base_url, config.timeout_s, client)

    async def fetch(
        self, participant: Insz, fields: frozenset[FieldName]
    ) -> Mapping[FieldName, object]:
        url = self.url(participant, fields)
        # W3C Trace Context: the request's trace, a new parent id, so that the partner
        # can correlate its logs with the hub's (hub.observability.tracecontext).
        traceparent = current_traceparent()
        headers = _ACCEPT if traceparent is None else {**_ACCEPT, "traceparent": traceparent}
        try:
            # The whole call, from connecting to the body's last byte, within timeout_s.
            async with asyncio.timeout(self._timeout_s):
                answer = await self._client.get(url, headers)
        except TimeoutError as exc:
            raise SourceTimeoutError(
                "source-unavailable", "The source did not answer in time."
            ) from exc
        except BodyTooLargeError as exc:
            raise _failure("the source's answer is too large") from exc
        except HttpError as exc:
            raise _failure("the source could not be reached") from exc
        if answer.status == _NOT_FOUND:
            raise UnknownParticipantError(
                "unknown-participant", "The source does not know this participant."
            )
        if answer.status != _OK:
            raise _failure(f"the source answered HTTP {answer.status}")
        return _parse(answer.body, fields)

    def url(self, participant: Insz, fields: frozenset[FieldName]) -> str:
        """``{base_url}/participants/{insz}?fields=a,b,c``, the fields sorted, percent-encoded."""
        # An Insz is 11 ASCII digits, which need no quoting; nor do field names as the
        # catalogue has them (about 1 us less than quote() on both).
        listed = ",".join(sorted(fields))
        if _PLAIN_QUERY.fullmatch(listed) is None:
            listed = quote(listed, safe=",")
        return f"{self._base}/participants/{participant.digits}?fields={listed}"

    async def aclose(self) -> None:
        """The client is shared and owned by the composition root."""


def _no_constants(name: str) -> object:
    raise ValueError(name)


def _finite(number: str) -> float:
    """A JSON number with a fraction or exponent, refused when it overflows (``1e999``)."""
    value = float(number)
    if value in _INFINITIES:
        raise ValueError(number)
    return value


_INFINITIES = (math.inf, -math.inf)
_PLAIN_QUERY = re.compile(r"[a-z0-9_.,]*")
"""Field names as the catalogue allows them (and commas): nothing in them to quote."""
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
"""Where a ``\\uD800``-``\\uDFFF`` escape could be (or an escaped backslash before ``u``)."""
_STRICT = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite)
"""NaN, Infinity and overflowing numbers refused while parsing. Made once: ``json.loads``
with hooks builds a decoder per call (about 1.7 us)."""


def _strict_json(body: bytes) -> object:
    """The document in ``body`` when it is strict JSON the hub can pass on, else ValueError.

    Strict: no NaN or Infinity (RFC 8259 section 6), no number that overflows to them,
    no lone surrogate (escaped, or as raw bytes, which ``json.loads`` reads with
    ``surrogatepass``), so that whatever is accepted the hub can encode again as UTF-8.

    The proof of that was a ``json.dumps(...).encode()`` of the whole document, about
    4 us, and ``json.loads`` with hooks, about 1.7 us more than a decoder made once.
    Now the hooks refuse non-finite numbers while parsing, and a UTF-8 body decoded
    strictly (which refuses surrogate bytes) without a surrogate escape in it cannot
    hold a surrogate. Any other body (another encoding or a BOM, bytes that are not
    UTF-8, a possible surrogate escape) takes the full proof as before; the fast path
    is checked against it in tests/unit/test_rest_parse.py.
    """
    if json.detect_encoding(body) == "utf-8":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if _ESCAPED_SURROGATE.search(text) is None:
                return _STRICT.decode(text)
    document = json.loads(body, parse_constant=_no_constants)
    json.dumps(document, allow_nan=False, ensure_ascii=False).encode()
    return document


def _parse(body: bytes, fields: frozenset[FieldName]) -> Mapping[FieldName, object]:
    try:
        # A value the hub could not send on must fail here, before anything is decided on it.
        document = _strict_json(body)
    except (ValueError, UnicodeError) as exc:
        raise _failure("the source's answer is not strict JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("fields"), dict):
        raise _failure('the source\'s answer does not have the shape {"fields": {...}}')
    values: dict[FieldName, object] = document["fields"]
    if not fields.issuperset(values):
        # Never pass on, nor even keep, what the hub did not ask for.
        unasked = len(set(values) - fields)
        raise _failure(f"the source sent {unasked} field(s) it was not asked for")
    # A dict of its own, fresh from the parser: the field names are the ones asked for.
    return values


def _failure(why: str) -> SourceUnavailableError:
    return SourceUnavailableError("source-unavailable", f"The source failed: {why}.")
