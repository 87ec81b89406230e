"""``Insz.parse``'s written-out check against python-stdnum, the register's rules as
the hub applied them before: the same numbers accepted, the same refusals with the
same reason and message, over every kind of 11-digit string.

The oracle below is ``Insz.parse`` as it was (stdnum's ``be.nn`` / ``be.bis``
``validate`` on every number). stdnum reads ``date.today()`` for births from 2000 on;
the test calls it on the same clock, so both sides see the same day.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from stdnum.be import bis, nn
from stdnum.exceptions import InvalidChecksum, ValidationError

from hub.domain.errors import InvalidInputError
from hub.domain.ids import Insz

DIGITS = "0123456789"


def oracle(value: str) -> str | None:
    """None when stdnum accepts ``value`` (11 ASCII digits), else the hub's message."""
    validate = bis.validate if int(value[2:4]) > 12 else nn.validate
    try:
        validate(value)
    except InvalidChecksum:
        return "invalid-insz: The INSZ check digits do not match."
    except ValidationError:
        return "invalid-insz: The INSZ does not encode a valid birth date."
    return None


def parsed(value: str) -> str | None:
    try:
        insz = Insz.parse(value)
    except InvalidInputError as refused:
        return f"{refused.reason}: {refused.detail}"
    assert insz.digits == value
    return None


def with_check(nine: str, *, from_2000: bool) -> str:
    return nine + f"{97 - int(('2' if from_2000 else '') + nine) % 97:02d}"


NINE = st.text(alphabet=DIGITS, min_size=9, max_size=9)


@given(st.text(alphabet=DIGITS, min_size=11, max_size=11))
@example("00000000000")
@example("00000000097")
def test_any_eleven_digits_as_stdnum_decides(value: str) -> None:
    assert parsed(value) == oracle(value)


@given(nine=NINE, from_2000=st.booleans())
@example(nine="000001001", from_2000=False)  # birth date unknown, as stdnum knows it
@example(nine="002001001", from_2000=True)
@example(nine="004001001", from_2000=False)
@example(nine="850732033", from_2000=False)  # day past the month's end: day unknown
@example(nine="851330033", from_2000=False)  # month 13
@example(nine="853330033", from_2000=False)  # BIS month 33
@example(nine="855230033", from_2000=False)  # BIS month 52
@example(nine="856130033", from_2000=False)  # month 61: 1 mod 20, not a BIS month
def test_numbers_with_right_check_digits_in_either_century(nine: str, from_2000: bool) -> None:
    """Random months (00-99), days and years: the check is right, the rest decides."""
    value = with_check(nine, from_2000=from_2000)
    assert parsed(value) == oracle(value)


@given(
    yy=st.integers(min_value=0, max_value=99),
    month=st.sampled_from([*range(13), *range(20, 33), *range(40, 53)]),
    day=st.integers(min_value=0, max_value=31),
    serial=st.integers(min_value=0, max_value=999),
    from_2000=st.booleans(),
)
def test_births_before_and_from_2000_national_and_bis(
    yy: int, month: int, day: int, serial: int, from_2000: bool
) -> None:
    value = with_check(f"{yy:02d}{month:02d}{day:02d}{serial:03d}", from_2000=from_2000)
    assert parsed(value) == oracle(value)


def test_births_around_this_year_follow_stdnums_clock() -> None:
    """stdnum accepts the 2000 form for a year up to today's, not after: unchanged."""
    # stdnum's own clock (date.today(), local time), which the domain never reads.
    this_year = date.today().year % 100  # noqa: TID251, DTZ011
    for yy in {this_year - 1, this_year, (this_year + 1) % 100, (this_year + 2) % 100}:
        value = with_check(f"{yy:02d}0101001", from_2000=True)
        assert parsed(value) == oracle(value)
    next_year = with_check(f"{(this_year + 1) % 100:02d}0101001", from_2000=True)
    assert parsed(next_year) == "invalid-insz: The INSZ check digits do not match."


@pytest.mark.parametrize("value", ["85073003328", "01010100126", "85273003363"])
def test_known_numbers(value: str) -> None:
    assert parsed(value) == oracle(value)
