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
_VALID_MONTHS = frozenset((*range(13), *range(20, 33), *range(40, 53)))
"""Months stdnum accepts: 0-12 for a national number, plus 20 or 40 for a BIS number."""


@dataclass(frozen=True, slots=True)
class Insz:
    """A validated INSZ (national register or BIS number), 11 ASCII digits.

    The register's rules, as python-stdnum's ``be.nn`` and ``be.bis`` apply them (that
    is the oracle, tests/unit/test_insz_fast_path.py): two check digits
    ``97 - (n mod 97)`` over the first nine digits, or over ``2`` followed by them for
    births from 2000 on, which stdnum allows only for a year not after today's; a BIS
    number adds 20 or 40 to the month; a month of ``00`` or a day outside the month
    means unknown.
    """

    digits: str

    @classmethod
    def parse(cls, value: str) -> Insz:
        # stdnum would accept "85.07.30-033.28" and Unicode digits; the API takes 11
        # ASCII digits and nothing else.
        if not isinstance(value, str) or _ELEVEN_ASCII_DIGITS.fullmatch(value) is None:
            raise InvalidInputError("invalid-insz", "An INSZ is exactly 11 ASCII digits.")
        month = int(value[2:4])
        # Fast path, about 5 us less than stdnum (whose clean() maps every character):
        # check digits over the nine digits alone mean a birth before 2000, which
        # stdnum accepts on the month alone, without looking at the clock. Any other
        # number (births from 2000, whose acceptance stdnum ties to date.today(), and
        # every refusal with its reason) goes to stdnum as before.
        if int(value[9:]) == 97 - int(value[:9]) % 97 and month in _VALID_MONTHS:
            return cls(value)
        validate = bis.validate if month > _MAX_MONTH else nn.validate
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
