"""Opaque cursors for list answers (CONTRACT.md section 5)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from hub.domain.errors import InvalidInputError

MAX_LIMIT = 100
DEFAULT_LIMIT = 50


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(f"k1:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith("k1:") or len(raw) > 200:  # noqa: PLR2004
        raise InvalidInputError("invalid-cursor", "The cursor is not one this hub handed out.")
    return raw[3:]


_POSITION = re.compile(r"[0-9]{1,18}")


def decode_position(cursor: str | None) -> int | None:
    """A cursor that holds a position (an offset or an audit seq)."""
    position = decode_cursor(cursor)
    if position is None:
        return None
    if _POSITION.fullmatch(position) is None:
        raise InvalidInputError("invalid-cursor", "The cursor is not one this hub handed out.")
    return int(position)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError("invalid-limit", f"limit must be between 1 and {MAX_LIMIT}.")
    return limit
