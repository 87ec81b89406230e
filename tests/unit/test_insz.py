"""INSZ parsing: the national register's rules, ASCII only, never shown."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.be import bis, nn

from hub.domain.errors import InvalidInputError
from hub.domain.ids import Insz


def build(born: date, serial: int, *, bis_offset: int = 0) -> str:
    body = f"{born.year % 100:02d}{born.month + bis_offset:02d}{born.day:02d}{serial:03d}"
    prefix = "2" if born.year >= 2000 else ""
    return f"{body}{97 - int(prefix + body) % 97:02d}"


BIRTHS = st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31))
"""stdnum refuses births in the future; the tests stay clear of the wall clock."""
SERIALS = st.integers(min_value=1, max_value=998)


@given(born=BIRTHS, serial=SERIALS)
def test_every_valid_national_number_is_accepted_in_both_centuries(born: date, serial: int) -> None:
    number = build(born, serial)
    assert Insz.parse(number).digits == number
    assert nn.is_valid(number)


@given(born=BIRTHS, serial=SERIALS, offset=st.sampled_from([20, 40]))
def test_every_valid_bis_number_is_accepted(born: date, serial: int, offset: int) -> None:
    number = build(born, serial, bis_offset=offset)
    parsed = Insz.parse(number)
    assert parsed.is_bis
    assert bis.is_valid(number)


@given(born=BIRTHS, serial=SERIALS, wrong=st.integers(min_value=1, max_value=96))
def test_a_wrong_check_number_is_refused(born: date, serial: int, wrong: int) -> None:
    number = build(born, serial)
    check = (int(number[9:]) + wrong - 1) % 97 + 1
    tampered = number[:9] + f"{check:02d}"
    other_century_check = 97 - int(("" if born.year >= 2000 else "2") + number[:9]) % 97
    if check == other_century_check:
        return  # valid in the other century, if that date exists
    with pytest.raises(InvalidInputError) as caught:
        Insz.parse(tampered)
    assert caught.value.reason == "invalid-insz"


@given(st.text(max_size=20))
def test_anything_the_register_rejects_is_refused(value: str) -> None:
    ascii_digits = len(value) == 11 and all(c in "0123456789" for c in value)
    try:
        Insz.parse(value)
    except InvalidInputError:
        return
    assert ascii_digits
    assert nn.is_valid(value) or bis.is_valid(value)


@pytest.mark.parametrize(
    "value",
    [
        "８５０７３００３３２８",  # fullwidth digits
        "٨٥٠٧٣٠٠٣٣٢٨",  # Arabic-Indic digits
        "85.07.30-033.28",  # formatted: the API takes the 11 digits only
        " 85073003328",
        "8507300332",
        "850730033280",
        "85023003328",  # 30 February
        "85133003328",  # month 13
    ],
)
def test_look_alikes_and_formats_are_refused(value: str) -> None:
    with pytest.raises(InvalidInputError):
        Insz.parse(value)


def test_the_number_never_shows_in_repr_or_str() -> None:
    parsed = Insz.parse("85073003328")
    assert "85073003328" not in repr(parsed)
    assert "85073003328" not in str(parsed)
    assert "85073003328" not in repr([parsed])


def test_unknown_birth_dates_are_accepted_as_the_register_issues_them() -> None:
    rng = random.Random(7)
    for _ in range(50):
        body = f"{rng.randint(30, 99):02d}0000{rng.randint(1, 997):03d}"
        number = body + f"{97 - int(body) % 97:02d}"
        assert Insz.parse(number).digits == number


def test_born_on_the_first_day_of_2000() -> None:
    assert Insz.parse(build(date(2000, 1, 1), 1)).digits.startswith("000101")
    assert Insz.parse(build(date(1999, 12, 31), 1)).digits.startswith("991231")
    assert date(2000, 1, 1) - timedelta(days=1) == date(1999, 12, 31)
