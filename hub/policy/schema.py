"""Typed reading of the policy directory's YAML, key by key (CONTRACT.md section 1).

``hub.policy.loader`` parses each file into ``LineMap``/``LineSeq`` (a mapping or list
that knows the line of every key and item), then reads values through an ``Entry``,
which reports what is wrong on the line where it is written. Nothing here imports
YAML: the parser stays in the loader, the one module allowed to import it.
"""

from __future__ import annotations

import difflib
import math
import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import urlsplit

from hub.domain.errors import PolicyProblem
from hub.domain.ids import is_field_name, is_slug

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

SLUG_RULE: Final = "an id of 2 to 40 lowercase letters, digits and '-' (not first or last)"
FIELD_RULE: Final = "a field name of lowercase words joined by dots, like trajectory.status"
_ISO_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

T = TypeVar("T")


class LineMap(dict[object, object]):
    """A YAML mapping with the line it starts on and the line of each key."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[object, int] = {}

    def line_of(self, key: object) -> int:
        return self.key_lines.get(key, self.line)


class LineSeq(list[object]):
    """A YAML sequence with the line it starts on and the line of each item."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []

    def with_lines(self) -> Iterator[tuple[object, int]]:
        return zip(self, self.item_lines, strict=True)


# --- Values ------------------------------------------------------------------------------


def describe(value: object) -> str:
    """A value as a message shows it: ``'text'``, ``0``, ``a list``."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        if not value.strip():
            return "empty text"
        return f"'{value}'" if len(value) <= 60 else f"'{value[:57]}...'"  # noqa: PLR2004
    if isinstance(value, date):
        kind = "date-time" if isinstance(value, datetime) else "date"
        return f"the {kind} {value.isoformat()}"
    if isinstance(value, LineMap | LineSeq):
        return "a mapping" if isinstance(value, LineMap) else "a list"
    return f"a {type(value).__name__}"


def as_text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def as_slug(value: object) -> str | None:
    return value if isinstance(value, str) and is_slug(value) else None


def as_field_name(value: object) -> str | None:
    return value if isinstance(value, str) and is_field_name(value) else None


def as_count(value: object) -> int | None:
    """A whole number of at least 1 (``true`` is an int to Python, not to us)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value >= 1 else None


def as_flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def as_seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def as_day(value: object) -> date | None:
    """A YAML date, or an ISO ``YYYY-MM-DD`` string; never a date-time."""
    if isinstance(value, date):
        return None if isinstance(value, datetime) else value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def url_problem(url: str) -> str | None:
    """What is wrong with a source's ``base_url``, if anything."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return "is not a valid URL"
    if any(char.isspace() for char in url):
        return "must not contain spaces"
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials (put them under 'options')"
    if parts.query or parts.fragment:
        return "must not have a query (?...) or fragment (#...)"
    return None


def plain(value: object) -> object:
    """Adapter ``options`` as ordinary dicts and lists, free of line bookkeeping."""
    if isinstance(value, LineMap):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, LineSeq):
        return [plain(item) for item in value]
    return value


class Reporter:
    """Adds problems found in one file (named relative to the policy directory)."""

    def __init__(self, file: str, problems: list[PolicyProblem]) -> None:
        self.file = file
        self.problems = problems

    def __call__(self, line: int | None, message: str) -> None:
        self.problems.append(PolicyProblem(self.file, line, message))


class Entry:
    """A mapping from a policy file, read key by key.

    The readers return ``None`` for an absent key (reported once by ``keys``) and for a
    bad value (reported on the key's line); nothing is built from an entry with problems.
    """

    def __init__(self, report: Reporter, node: LineMap, what: str) -> None:
        self.report = report
        self.node = node
        self.what = what

    def line(self, key: str) -> int:
        return self.node.line_of(key)

    def has(self, key: str) -> bool:
        return self.node.get(key) is not None

    def keys(
        self, required: tuple[str, ...], optional: tuple[str, ...] = (), hint: str = ""
    ) -> None:
        """Unknown keys are typos until proven otherwise; required keys must be there."""
        allowed = (*required, *optional)
        for key in self.node:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1) if isinstance(key, str) else []
                advice = (
                    f" (did you mean '{close[0]}'?)"
                    if close
                    else f"; allowed: {', '.join(allowed)}"
                )
                self.report(
                    self.node.line_of(key),
                    f"unknown key {describe(key)} in {self.what}{advice}{hint}",
                )
        for key in required:
            if key not in self.node:
                self.report(self.node.line, f"{self.what} is missing the required key '{key}'")

    def get(
        self, key: str, parse: Callable[[object], T | None], rule: str, *, nullable: bool = False
    ) -> T | None:
        if key not in self.node or (nullable and self.node[key] is None):
            return None
        value = parse(self.node[key])
        if value is None:
            self.report(self.line(key), f"'{key}' must be {rule}, not {describe(self.node[key])}")
        return value

    def mapping(self, key: str, rule: str) -> LineMap | None:
        value = self.node.get(key)
        if isinstance(value, LineMap):
            return value
        if key in self.node:
            self.report(self.line(key), f"'{key}' must be {rule}, not {describe(value)}")
        return None

    def items(
        self, key: str, what: str, parse: Callable[[object], T | None], rule: str
    ) -> list[tuple[T, int]] | None:
        """A non-empty list without repeats, each item parsed and kept with its line."""
        if key not in self.node:
            return None
        value = self.node[key]
        if not isinstance(value, LineSeq) or not value:
            shown = "an empty list" if isinstance(value, LineSeq) else describe(value)
            self.report(
                self.line(key), f"'{key}' must be a non-empty list, like [a, b], not {shown}"
            )
            return None
        found: list[tuple[T, int]] = []
        first_line: dict[T, int] = {}
        for raw, line in value.with_lines():
            parsed = parse(raw)
            if parsed is None:
                self.report(line, f"{what} {describe(raw)} is not valid: it must be {rule}")
            elif parsed in first_line:
                self.report(
                    line, f"{what} '{parsed}' is listed twice (first on line {first_line[parsed]})"
                )
            else:
                first_line[parsed] = line
                found.append((parsed, line))
        return found
