"""structlog set-up: JSON (or console) events, and a processor that removes personal data.

Log calls name events and counts, never values (STYLE.md habit 9); the redaction
processor is the safety net under that habit. It runs before the renderer, on every
line, the hub's own and those of libraries (uvicorn, aiohttp, SQLAlchemy: the standard
``logging`` records go through the same chain; only the level and the time, which
structlog sets itself, are stamped after it on the hub's own lines), and rewrites:

- any INSZ shape (11 digits, plain or formatted as 85.07.30-033.28), also inside
  longer text, in keys as well as values, in nested dicts, lists, sets and tuples, in
  bytes, in exceptions and their tracebacks, and an integer that has 11 digits;
- anything that looks like a JWT (three base64url parts, the first ``eyJ``);
- the credentials after ``Bearer``/``Basic`` and the value of a ``client_secret``,
  ``client_assertion``, ``access_token``, ``password`` or ``secret`` parameter.

Objects that are not plain data (an exception, a dataclass) are logged as their
redacted ``repr``: a renderer would otherwise ``repr`` them after this processor ran.

It is on the path of every exchange (issue #4): it skips the substitutions a text
cannot need and remembers the keys and short names it found clean, with the same output
as running every pattern on every key and value (tests/unit/test_redaction_fast_path.py);
``python -m bench.loglines`` measures a line.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from json import JSONEncoder
from typing import Any, Final, TextIO

import structlog

from hub.observability.tracecontext import add_correlation_id

REDACTED_INSZ: Final = "<redacted-insz>"
REDACTED_TOKEN: Final = "<redacted-token>"  # noqa: S105 - a placeholder, not a password
INSZ_IN_TEXT = re.compile(
    r"(?<![0-9])[0-9]{2}[ ./-]?[0-9]{2}[ ./-]?[0-9]{2}[ ./-]?[0-9]{3}[ ./-]?[0-9]{2}(?![0-9])"
)
"""Any way of writing a national number: 85073003328, 85.07.30-033.28, 850730-033-28,
85 07 30 033 28. Wider than ``hub.domain.ids.INSZ_SHAPE``: a log line costs nothing to
over-redact."""
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_CREDENTIALS = re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[A-Za-z0-9._~+/=%-]+")
_SECRET_PARAMETER = re.compile(
    r"(?i)\b((?:client_)?secret|client_assertion|access_token|password)"
    r"([\"']?\s*[:=]\s*[\"']?)[^\s&\"',;}]+"
)
_SECRET_KEY = re.compile(
    r"(?i)secret|passw|authorization|assertion|access_token|refresh_token|^token$|cookie"
)
REDACTED: Final = "<redacted>"
_HASH_KEYS: Final = frozenset({"head", "hash", "prev_hash"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_NINE_DIGITS: Final = 10**8
_ELEVEN_DIGITS: Final = 10**10
_TWELVE_DIGITS: Final = 10**11


_MAY_HOLD_A_CREDENTIAL = re.compile(r"eyj|bearer|basic|secret|assertion|access_token|password")
"""Run on ASCII text made lowercase: a word that each of ``_JWT_SHAPE``, ``_CREDENTIALS``
and ``_SECRET_PARAMETER`` needs to match (``eyJ`` lowercased; ``assertion`` for
``client_assertion``). Where none is, those three substitutions change nothing."""
_DIGIT_PAIR = re.compile(r"[0-9]{2}")
"""What ``INSZ_IN_TEXT`` needs to match: two ASCII digits in a row."""


def redact_text(text: str) -> str:
    """``text`` with every INSZ shape, token and credential replaced.

    Exactly ``redact_text_in_full(text)`` (a property test holds it to that), faster on
    the text of a log line, mostly short names ("vdab", "disclosed"): the four
    substitutions cost about 3-5 us a string, the checks below about 0.5 us, a name
    seen before (``_CLEAN_TEXTS``) 0.05 us. They only skip a substitution that would
    change nothing: each pattern needs a word (or two digits) the text lacks. ASCII
    only: under ``re.IGNORECASE`` a pattern's ``s`` also matches the long s, ``ſ``, and
    its ``k`` the Kelvin sign, which ``str.lower`` keeps apart. A subclass of ``str``
    could answer ``lower`` as it likes, and should come out as a plain ``str``: it goes
    the full way too.
    """
    if type(text) is not str:
        return redact_text_in_full(text)
    if text in _CLEAN_TEXTS:
        return text
    if text.isascii() and _MAY_HOLD_A_CREDENTIAL.search(text.lower()) is None:
        # Nothing for the first three patterns: the result is the last one's.
        if _DIGIT_PAIR.search(text) is not None:
            return INSZ_IN_TEXT.sub(REDACTED_INSZ, text)
        if len(text) <= _CLEAN_TEXT_LENGTH and len(_CLEAN_TEXTS) < _CLEAN_TEXTS_KEPT:
            _CLEAN_TEXTS.add(text)
        return text
    return redact_text_in_full(text)


_CLEAN_TEXTS: set[str] = set()
"""Short texts found to hold nothing to redact, not even two digits in a row: the
names a log line repeats ("vdab", "disclosed", "info"). Nothing in it can be a national
number, a token or a secret; timestamps and ids (digits) never enter. At
``_CLEAN_TEXTS_KEPT`` it stops growing; a lost race adds a text twice, harmlessly."""
_CLEAN_TEXT_LENGTH: Final = 64
_CLEAN_TEXTS_KEPT: Final = 1024


def redact_text_in_full(text: str) -> str:
    """``text`` with every INSZ shape, token and credential replaced: each pattern run."""
    text = _JWT_SHAPE.sub(REDACTED_TOKEN, text)
    text = _CREDENTIALS.sub(r"\1 <redacted>", text)
    text = _SECRET_PARAMETER.sub(r"\1\2<redacted>", text)
    return INSZ_IN_TEXT.sub(REDACTED_INSZ, text)


def redact(value: Any) -> Any:
    """``value`` with personal data and secrets removed, as plain JSON-able data."""
    if type(value) is str:  # the common case first; a subclass of str goes below
        return redact_text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int):
        return REDACTED_INSZ if _could_be_insz(value) else value
    if isinstance(value, float):
        return REDACTED_INSZ if value.is_integer() and _could_be_insz(int(value)) else value
    if isinstance(value, bytes | bytearray | memoryview):
        return redact_text(bytes(value).decode("utf-8", "backslashreplace"))
    if isinstance(value, Mapping):
        return _redact_members(value.items(), top_level=False)
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    return redact_text(repr(value))


def _could_be_insz(number: int) -> bool:
    """An INSZ passed as a number: any 11 digits (as for text), or 9 or 10 when the
    leading zeros a number drops (births from 2000 on) give one with valid check digits."""
    number = abs(number)
    if _ELEVEN_DIGITS <= number < _TWELVE_DIGITS:
        return True
    if not _NINE_DIGITS <= number < _ELEVEN_DIGITS:
        return False
    body, check = divmod(number, 100)
    return check == 97 - (2_000_000_000 + body) % 97  # the 2000s' check digits


def _redact_members(members: Iterable[tuple[Any, Any]], *, top_level: bool) -> dict[str, Any]:
    """Each key redacted; at the event's top level, an audit hash the hub computed kept
    as it is (``_is_hub_hash``); a member named like a credential (``client_secret``,
    ``password``, ``token``...) dropped whatever its value; any other redacted as a value."""
    cleaned: dict[str, Any] = {}
    for key, value in members:
        known = _CLEAN_KEYS.get(key) if type(key) is str else None
        name, names_a_credential = (key, known) if known is not None else _screen_key(key)
        if top_level and key in _HASH_KEYS and _is_hub_hash(value):
            cleaned[name] = value
        elif names_a_credential and value is not None:
            cleaned[name] = REDACTED
        else:
            cleaned[name] = redact(value)
    return cleaned


_CLEAN_KEYS: dict[str, bool] = {}
"""Keys that redaction leaves as they are, each with whether it names a credential.

The keys of log lines are a small set, repeated on every line: this saves screening
each again (about 4 us a line). Only keys with nothing to redact are kept, so it holds
no personal data; at ``_CLEAN_KEYS_KEPT`` it stops growing (a flood of distinct keys
is screened each time, as without it). A plain dict: a lost race writes a key twice."""
_CLEAN_KEYS_KEPT: Final = 1024


def _screen_key(key: Any) -> tuple[str, bool]:
    """The key as logged (redacted; ``repr`` of any other than a string), and whether it
    names a credential."""
    name = redact_key(key)
    names_a_credential = isinstance(key, str) and _SECRET_KEY.search(key) is not None
    if type(key) is str and name == key and len(_CLEAN_KEYS) < _CLEAN_KEYS_KEPT:
        _CLEAN_KEYS[key] = names_a_credential
    return name, names_a_credential


def _is_hub_hash(value: Any) -> bool:
    """Under a key of ``_HASH_KEYS``: an audit hash the hub computed (SHA-256, hex), logged
    as an anchor outside the database (``audit_checkpoint``), so it must stay exact; 11
    of its hex digits in a row are no national number."""
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


def redact_key(key: Any) -> str:
    return redact_text(key if isinstance(key, str) else repr(key))


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The structlog processor: every key and value of the event, redacted."""
    return _redact_members(event_dict.items(), top_level=True)


def _context() -> list[Any]:
    return [structlog.contextvars.merge_contextvars, add_correlation_id]


def _stamps() -> list[Any]:
    """The level and the time, set from the method called and the clock, whatever a
    caller passed under those keys: nothing a caller gave survives them."""
    return [structlog.processors.add_log_level, UtcTimestamp()]


class UtcTimestamp:
    """structlog processor: the line's ``timestamp``, exactly as structlog's
    ``TimeStamper(fmt="iso", utc=True)`` writes it (``2026-06-15T10:00:00.123456Z``; no
    fraction at a whole second, as ``datetime.isoformat``), the date and time of day
    formatted once a second: about 1.2 us a line instead of 2.7 (8 us in the hub, caches
    cold, issue #4).

    ``now_ns``: nanoseconds since the epoch (UTC). The time a line was written is no
    decision of the hub's: it is read here, as structlog's own stamper would.
    """

    def __init__(self, now_ns: Callable[[], int] = time.time_ns) -> None:
        self._now_ns = now_ns
        self._second: tuple[int, str] = (-1, "")
        """The second last formatted and its text, in one tuple: threads read it whole."""

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        second, micros = divmod(self._now_ns() // 1000, 1_000_000)  # floored, as datetime
        known, text = self._second
        if second != known:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        event_dict["timestamp"] = f"{text}.{micros:06d}Z" if micros else f"{text}Z"
        return event_dict


def _redaction() -> list[Any]:
    """Exceptions and stacks made text, then every key and value redacted."""
    return [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_personal_data,
    ]


def _renderer(*, json: bool) -> Any:
    if json:
        return _json_line
    return structlog.dev.ConsoleRenderer(
        colors=False,
        # The traceback was made text (and redacted) before: print it as it is.
        exception_formatter=structlog.dev.plain_traceback,
    )


_JSON: Final = JSONEncoder(default=repr)
"""``json.dumps``'s own settings (ASCII, ``", "`` and ``": "``), made once: ``json.dumps``
with a ``default`` builds an encoder on every call (structlog's ``JSONRenderer`` passes
one), 4 us a line in the running hub. ``default`` is never needed: the redaction left
plain data only."""


def _json_line(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """structlog renderer: the event as one line of JSON, the text ``JSONRenderer`` wrote."""
    return _JSON.encode(event_dict)


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is at each line (a test runner swaps it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        """``StreamHandler.__init__`` sets it; the property ignores that."""


def configure_logging(
    level: str = "info", *, json: bool = True, stream: TextIO | None = None
) -> None:
    """Every log line, structlog's and the standard library's, to ``stream`` (stderr)
    through one chain that ends with ``redact_personal_data`` and the renderer."""
    threshold = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    output = stream or sys.stderr
    structlog.configure(
        # The hub's own lines are stamped after the redaction: the stamps can hold nothing
        # to redact, and screening the timestamp cost 1-2 us a line. Their keys come last
        # either way (a line with an exception has it before them now).
        processors=[*_context(), *_redaction(), *_stamps(), _renderer(json=json)],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=output),
        # Cached loggers keep the stream they were first used with: only for stderr, the
        # one stream of a serving process (tests configure several in one process).
        cache_logger_on_first_use=stream is None,
    )
    handler = logging.StreamHandler(output) if stream is not None else _StandardError()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_context(), *_stamps(), structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *_redaction(),
                _renderer(json=json),
            ],
        )
    )
    handler.set_name("ketenhub")
    root = logging.getLogger()
    for existing in [h for h in root.handlers if h.get_name() == "ketenhub"]:
        root.removeHandler(existing)
    root.addHandler(handler)
    # Libraries (alembic, uvicorn, httpx) say what they do at info: their warnings only,
    # unless the hub logs at debug.
    root.setLevel(threshold if threshold <= logging.DEBUG else max(threshold, logging.WARNING))
