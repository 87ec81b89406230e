"""The demo population: deterministic, valid INSZ numbers, and shaped like DOMAIN.md."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from functools import cache

import pytest

from hub.demo.population import (
    COVERAGE,
    END_ADVICE_MIX,
    ICF_LEVELS,
    SOURCE_FIELDS,
    TRAJECTORY_STATUSES,
    Person,
    Population,
    make_population,
)
from hub.demo.vocabulary import ICF_FACTORS
from hub.domain.ids import Insz

DOMAIN_DEMO_FIELDS = {
    "vdab": {
        "trajectory.status",
        "trajectory.start_date",
        "trajectory.plan",
        "trajectory.evaluations",
        "trajectory.end_report",
        "trajectory.end_advice",
        "internship.hours",
        "icf.assessment",
        "work_limitation.recognised",
    },
    "ocmw-gent": {"social_assistance.leefloon", "barriers.housing", "barriers.psychosocial"},
    "in-gent": {
        "integration.perspective_label",
        "integration.mo_status",
        "integration.nt2_level",
        "integration.certificate",
        "residence.status",
    },
    "cgg-vagga": {"care.goals", "care.progress"},
    "levanto": {"internship.functioning_report"},
}


@cache
def population() -> Population:
    """The default world, drawn once: every test here only reads it."""
    return make_population()


def values_of(source: str, field: str) -> list[object]:
    pop = population()
    return [
        value
        for person in pop.known_to(source)
        if (value := (pop.values(source, person.insz.digits) or {})[field]) is not None
    ]


def is_iso_date(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_dated_note(entry: object) -> bool:
    return isinstance(entry, dict) and is_iso_date(entry["date"]) and bool(entry["note"])


def test_the_same_seed_draws_the_same_world() -> None:
    first, second = make_population(seed=7, size=120), make_population(seed=7, size=120)
    assert [p.insz.digits for p in first.persons] == [p.insz.digits for p in second.persons]
    for a, b in zip(first.persons, second.persons, strict=True):
        assert a == b
        for source in SOURCE_FIELDS:
            assert first.values(source, a.insz.digits) == second.values(source, b.insz.digits)


def test_another_seed_draws_another_world() -> None:
    first, second = make_population(seed=1, size=50), make_population(seed=2, size=50)
    assert {p.insz.digits for p in first.persons} != {p.insz.digits for p in second.persons}


def test_the_draw_uses_no_global_randomness() -> None:
    import random  # noqa: PLC0415 - only this test touches the global generator

    random.seed(1)
    first = make_population(seed=3, size=30)
    random.seed(2)
    second = make_population(seed=3, size=30)
    assert [p.insz.digits for p in first.persons] == [p.insz.digits for p in second.persons]


def test_every_insz_is_valid_and_unique() -> None:
    digits = [person.insz.digits for person in population().persons]
    assert len(set(digits)) == len(digits) == 500
    for number in digits:
        assert Insz.parse(number).digits == number


def test_insz_encodes_the_birth_date_and_sex() -> None:
    for person in population().persons:
        digits = person.insz.digits
        month = int(digits[2:4])
        assert digits[:2] == f"{person.birth_date.year % 100:02d}"
        assert month % 20 == person.birth_date.month
        assert digits[4:6] == f"{person.birth_date.day:02d}"
        if month <= 12 or month > 40:  # a BIS number with +20 leaves the sex unknown
            assert int(digits[6:9]) % 2 == (1 if person.gender == "male" else 0)


def test_both_check_digit_forms_and_bis_numbers_occur() -> None:
    persons = population().persons
    post_2000 = [p for p in persons if p.birth_date.year >= 2000]
    pre_2000 = [p for p in persons if p.birth_date.year < 2000]
    assert len(post_2000) > 50
    assert len(pre_2000) > 200
    for person in post_2000:
        digits = person.insz.digits
        assert int(digits[9:]) == 97 - int("2" + digits[:9]) % 97
    bis = [p for p in persons if p.insz.is_bis]
    assert 0.03 <= len(bis) / len(persons) <= 0.07
    assert {int(p.insz.digits[2:4]) // 20 for p in bis} == {1, 2}  # +20 and +40 both


def test_bis_numbers_belong_to_newcomers_known_to_in_gent() -> None:
    for person in population().persons:
        if person.insz.is_bis:
            assert "in-gent" in person.sources


def test_every_source_knows_at_least_200_participants() -> None:
    pop = population()
    assert len(pop.known_to("vdab")) == len(pop) == 500
    for source, share in COVERAGE.items():
        known = pop.known_to(source)
        assert len(known) >= 200
        assert len(known) == round(share * len(pop))


def test_source_fields_are_exactly_domain_md_s_demo_table() -> None:
    assert {source: set(fields) for source, fields in SOURCE_FIELDS.items()} == DOMAIN_DEMO_FIELDS


def test_a_known_participant_has_every_field_of_the_source() -> None:
    pop = population()
    for source, fields in SOURCE_FIELDS.items():
        for person in pop.known_to(source):
            values = pop.values(source, person.insz.digits)
            assert values is not None
            assert set(values) == set(fields)


def test_an_unknown_participant_has_no_values() -> None:
    pop = population()
    stranger = next(p for p in pop.persons if "in-gent" not in p.sources)
    assert pop.values("in-gent", stranger.insz.digits) is None
    assert pop.values("vdab", "00000000000") is None
    assert pop.by_insz("00000000000") is None
    assert pop.by_insz(stranger.insz.digits) is stranger


def test_a_partner_that_is_no_source_is_refused() -> None:
    with pytest.raises(KeyError):
        population().known_to("gtb")
    with pytest.raises(KeyError):
        population().values("penhouder-antwerpen", "85073003328")


def test_values_are_copies() -> None:
    pop = population()
    person = pop.known_to("cgg-vagga")[0]
    values = pop.values("cgg-vagga", person.insz.digits)
    assert values is not None
    goals = values["care.goals"]
    assert isinstance(goals, list)
    goals.append("changed by a caller")
    assert pop.values("cgg-vagga", person.insz.digits) == person.records["cgg-vagga"]


def test_every_value_is_json() -> None:
    pop = population()
    for person in pop.persons[:100]:
        for source in person.sources:
            json.dumps(pop.values(source, person.insz.digits))


def test_repr_hides_the_insz() -> None:
    pop = population()
    for person in pop.persons[:50]:
        for text in (repr(person), str(person), repr([person]), repr(pop)):
            assert person.insz.digits not in text
        assert "<redacted>" in repr(person)


def test_end_advice_follows_the_evaluation_mix() -> None:
    pop = population()
    advice = Counter(values_of("vdab", "trajectory.end_advice"))
    ended = sum(1 for s in values_of("vdab", "trajectory.status") if s == "ended")
    assert sum(advice.values()) == ended > 100
    assert set(advice) == set(END_ADVICE_MIX)
    for code, share in END_ADVICE_MIX.items():
        assert abs(advice[code] / ended - share) < 0.01
    for person in pop.persons:
        values = pop.values("vdab", person.insz.digits)
        assert values is not None
        has_advice = values["trajectory.end_advice"] is not None
        assert has_advice == (values["trajectory.status"] == "ended")


def test_statuses_and_dates_fit_together() -> None:
    pop = population()
    statuses = Counter(values_of("vdab", "trajectory.status"))
    assert set(statuses) == set(TRAJECTORY_STATUSES)
    for person in pop.persons:
        values = pop.values("vdab", person.insz.digits)
        assert values is not None
        status, start = values["trajectory.status"], values["trajectory.start_date"]
        assert (start is None) == (status == "initiated")
        if status in {"initiated", "accepted"}:
            assert values["trajectory.plan"] is None
            assert values["internship.hours"] is None
        if status == "running" or status in {"initiated", "accepted"}:
            assert values["trajectory.end_report"] is None
        if status == "ended":
            assert values["trajectory.end_report"]


def test_icf_assessment_scores_43_factors_about_7_serious() -> None:
    assessments = values_of("vdab", "icf.assessment")
    assert len(assessments) == 500
    serious = []
    for assessment in assessments:
        assert isinstance(assessment, dict)
        assert list(assessment) == list(ICF_FACTORS)
        assert set(assessment.values()) <= set(ICF_LEVELS)
        serious.append(sum(1 for level in assessment.values() if level == "serious"))
    assert len(ICF_FACTORS) == 43
    assert 6.0 <= sum(serious) / len(serious) <= 8.0


def test_sources_agree_where_a_real_dossier_would() -> None:
    pop = population()
    for person in pop.known_to("in-gent"):
        icf = (pop.values("vdab", person.insz.digits) or {})["icf.assessment"]
        assert isinstance(icf, dict)
        assert icf["dutch"] in {"mild", "serious"}
    for person in pop.known_to("levanto"):
        report = (pop.values("levanto", person.insz.digits) or {})["internship.functioning_report"]
        hours = (pop.values("vdab", person.insz.digits) or {})["internship.hours"]
        assert report is None or (isinstance(report, dict) and report["hours_per_week"] == hours)


def test_postcodes_are_in_the_demo_regions() -> None:
    for person in population().persons:
        assert person.postcode[:2] in {"90", "91", "20", "21", "26"}
        assert person.municipality


PLAUSIBLE = {
    "trajectory.status": lambda v: v in TRAJECTORY_STATUSES,
    "trajectory.start_date": is_iso_date,
    "trajectory.plan": lambda v: (
        isinstance(v, dict)
        and v["goals"]
        and all(a["action"] and a["provider"] in v["providers"] for a in v["actions"])
    ),
    "trajectory.evaluations": lambda v: (
        isinstance(v, list) and len(v) > 0 and all(is_dated_note(e) for e in v)
    ),
    "trajectory.end_report": lambda v: isinstance(v, str) and len(v) > 20,
    "trajectory.end_advice": lambda v: v in END_ADVICE_MIX,
    "internship.hours": lambda v: isinstance(v, int) and 4 <= v <= 38,
    "icf.assessment": lambda v: isinstance(v, dict) and len(v) == 43,
    "work_limitation.recognised": lambda v: v is True,
    "social_assistance.leefloon": lambda v: v is True,
    "barriers.housing": lambda v: v == "homeless",
    "barriers.psychosocial": lambda v: isinstance(v, str) and v.endswith("."),
    "integration.perspective_label": lambda v: v in {"professional", "educational", "social"},
    "integration.mo_status": lambda v: v == "completed",
    "integration.nt2_level": lambda v: v in {"A1", "A2", "B1", "B2"},
    "integration.certificate": lambda v: v is True,
    "residence.status": lambda v: isinstance(v, str) and bool(v),
    "care.goals": lambda v: isinstance(v, list) and all(isinstance(g, str) for g in v),
    "care.progress": lambda v: isinstance(v, list) and all(is_dated_note(e) for e in v),
    "internship.functioning_report": lambda v: (
        isinstance(v, dict) and is_iso_date(v["reported_on"]) and v["employer"]
    ),
}


@pytest.mark.parametrize(
    ("source", "field"),
    [(source, field) for source, fields in SOURCE_FIELDS.items() for field in fields],
)
def test_every_field_has_a_plausible_value_for_someone(source: str, field: str) -> None:
    assert any(PLAUSIBLE[field](value) for value in values_of(source, field))


@pytest.mark.parametrize(
    ("source", "field", "allowed"),
    [
        ("vdab", "trajectory.status", set(TRAJECTORY_STATUSES)),
        ("vdab", "work_limitation.recognised", {True, False}),
        ("ocmw-gent", "social_assistance.leefloon", {True, False}),
        ("in-gent", "integration.nt2_level", {"A1", "A2", "B1", "B2"}),
        ("in-gent", "integration.perspective_label", {"professional", "educational", "social"}),
    ],
)
def test_enumerated_fields_stay_in_their_range(
    source: str, field: str, allowed: set[object]
) -> None:
    assert set(values_of(source, field)) == allowed


def test_a_small_population_still_covers_every_source() -> None:
    pop = make_population(seed=5, size=10)
    assert len(pop) == 10
    for source in SOURCE_FIELDS:
        assert pop.known_to(source)


def test_a_population_needs_people() -> None:
    with pytest.raises(ValueError, match="at least one"):
        make_population(size=0)


def test_person_is_frozen() -> None:
    person = population().persons[0]
    assert isinstance(person, Person)
    with pytest.raises(AttributeError):
        person.postcode = "1000"  # type: ignore[misc]
