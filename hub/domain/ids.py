"""Identifiers the hub parses once at its edge and then trusts.

A participant is identified by an INSZ: a Belgian national register number or a
BIS number (CONTRACT.md section 3). It is personal data of high risk, so the type
that holds it never shows the number in a ``repr`` or a log line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NewType

from stdnum.be import bis, nn
from stdnum.exceptions import InvalidChecksum, ValidationError

from hub.domain.errors import InvalidInputError

PartnerId = NewType("PartnerId", str)
FieldName = NewType("FieldName", str)
Purpose = NewType("Purpose", str)
Role = NewType("Role", str)

SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
"""Partner ids, purposes, roles and agreement ids: ``[a-z0-9-]{2,40}`` (CONTRACT.md 1)."""
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
_ELEVEN_ASCII_DIGITS = re.compile(r"[0-9]{11}")
INSZ_SHAPE = re.compile(
    r"(?<![0-9])[0-9]{2}[.]?[0-9]{2}[.]?[0-9]{2}[-.]?[0-9]{3}[.]?[0-9]{2}(?![0-9])"
)
"""Anything that could be a national number, written plain or formatted (85.07.30-033.28)."""


def has_insz_shape(text: str) -> bool:
    """True when ``text`` holds what could be a national number; such text is never kept."""
    return INSZ_SHAPE.search(text) is not None


def is_slug(value: str) -> bool:
    return 2 <= len(value) <= 40 and SLUG.fullmatch(value) is not None  # noqa: PLR2004


def is_field_name(value: str) -> bool:
    return len(value) <= 80 and FIELD_NAME.fullmatch(value) is not None  # noqa: PLR2004


_MAX_MONTH = 12


@dataclass(frozen=True, slots=True)
class Insz:
    """A validated INSZ (national register or BIS number), 11 ASCII digits.

    The register's rules, through python-stdnum's ``be.nn`` and ``be.bis``: two check
    digits ``97 - (n mod 97)`` over the first nine digits, or over ``2`` followed by
    them for births from 2000 on; a BIS number adds 20 or 40 to the month; the birth
    date must exist (``00`` meaning unknown) and not lie in the future.
    """

    digits: str

    @classmethod
    def parse(cls, value: str) -> Insz:
        # stdnum would accept "85.07.30-033.28" and Unicode digits; the API takes 11
        # ASCII digits and nothing else.
        if not isinstance(value, str) or _ELEVEN_ASCII_DIGITS.fullmatch(value) is None:
            raise InvalidInputError("invalid-insz", "An INSZ is exactly 11 ASCII digits.")
        validate = bis.validate if int(value[2:4]) > _MAX_MONTH else nn.validate
        try:
            validate(value)
        except InvalidChecksum:
            raise InvalidInputError("invalid-insz", "The INSZ check digits do not match.") from None
        except ValidationError:
            raise InvalidInputError(
                "invalid-insz", "The INSZ does not encode a valid birth date."
            ) from None
        return cls(value)

    @property
    def is_bis(self) -> bool:
        return int(self.digits[2:4]) > _MAX_MONTH

    def __repr__(self) -> str:
        return "Insz(<redacted>)"

    def __str__(self) -> str:
        return "<redacted INSZ>"
