"""A deterministic synthetic population for the demo network (DOMAIN.md, "The data").

Every value is drawn from one ``random.Random(seed)``, so a seed names a world: the
demo, the tests and a visitor's screenshots all show the same people. The shape
follows the sources rather than a textbook: VDAB knows every participant, the other
partners a subset that makes sense for them (OCMW Gent and In-Gent prefer people
living in Ghent, Levanto people with an internship, BIS numbers belong to
newcomers known to In-Gent), and values agree across partners where a real dossier
would (a newcomer's ICF score for Dutch, the hours Levanto reports). No real person
is in it: names are drawn from common Flemish names, INSZ numbers are generated and
valid only by their check digits.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING

from hub.demo import vocabulary as voc
from hub.domain.ids import Insz

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

SOURCE_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "vdab": (
            "trajectory.status",
            "trajectory.start_date",
            "trajectory.plan",
            "trajectory.evaluations",
            "trajectory.end_report",
            "trajectory.end_advice",
            "internship.hours",
            "icf.assessment",
            "work_limitation.recognised",
        ),
        "ocmw-gent": (
            "social_assistance.leefloon",
            "barriers.housing",
            "barriers.psychosocial",
        ),
        "in-gent": (
            "integration.perspective_label",
            "integration.mo_status",
            "integration.nt2_level",
            "integration.certificate",
            "residence.status",
        ),
        "cgg-vagga": ("care.goals", "care.progress"),
        "levanto": ("internship.functioning_report",),
    }
)
"""The fields each demo source holds: DOMAIN.md's demo table, names exactly as there."""

COVERAGE: Mapping[str, float] = MappingProxyType(
    {"vdab": 1.0, "ocmw-gent": 0.6, "in-gent": 0.4, "cgg-vagga": 0.5, "levanto": 0.45}
)
"""Share of the population each source knows; at the default size each knows >= 200."""

END_ADVICE_MIX: Mapping[str, float] = MappingProxyType(
    {"NC": 0.426, "NT": 0.353, "BC": 0.100, "AZ": 0.082, "AD": 0.018, "LD": 0.015, "AB": 0.006}
)
"""End advice of 329 closed trajectories (DOMAIN.md, "The data")."""

TRAJECTORY_STATUSES = ("initiated", "accepted", "running", "ended", "stopped-early")
ICF_LEVELS = ("strength", "no-problem", "mild", "serious")
DEMO_AS_OF = date(2026, 3, 2)
"""The demo's "today": dates are drawn relative to it, never to the wall clock."""
DEFAULT_SIZE = 500
"""Large enough that the smallest source (In-Gent, 40%) knows 200 participants."""

_STATUS_WEIGHTS = (7, 8, 35, 40, 10)
_REGION_WEIGHTS = {"gent": 70, "antwerpen": 18, "waasland": 12}
_YOUNG_SHARE = 0.3  # aged 18 to 25: born from 2000, so the post-2000 check digits
_BIS_SHARE = 0.05
_EXTENDED_SHARE = 0.074  # DOMAIN.md, "The lifecycle"
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Person:
    """One synthetic participant and what each source knows about them.

    ``records`` maps a source to its values for every one of its fields (``None``
    where the source has no value yet). Read values through ``Population.values``,
    which hands out copies. The ``repr`` redacts the INSZ, as every holder of one
    must (STYLE.md habit 6), so that a failing test or a log line cannot leak it.
    """

    insz: Insz
    given_name: str
    family_name: str
    birth_date: date
    gender: str
    postcode: str
    municipality: str
    records: Mapping[str, Mapping[str, object]] = field(compare=False, hash=False)

    def __repr__(self) -> str:
        return (
            f"Person(insz=<redacted>, given_name={self.given_name!r}, "
            f"family_name={self.family_name!r}, postcode={self.postcode!r}, "
            f"sources={sorted(self.records)!r})"
        )

    @property
    def sources(self) -> frozenset[str]:
        return frozenset(self.records)


class Population:
    """The people of one seed, indexed by INSZ digits and by source."""

    __slots__ = ("_by_insz", "as_of", "persons", "seed")

    def __init__(self, persons: Sequence[Person], *, seed: int, as_of: date) -> None:
        self.persons: tuple[Person, ...] = tuple(persons)
        self.seed = seed
        self.as_of = as_of
        self._by_insz = {person.insz.digits: person for person in self.persons}

    def __repr__(self) -> str:
        return f"Population(seed={self.seed}, size={len(self.persons)})"

    def __len__(self) -> int:
        return len(self.persons)

    def by_insz(self, digits: str) -> Person | None:
        return self._by_insz.get(digits)

    def known_to(self, source: str) -> list[Person]:
        _require_source(source)
        return [person for person in self.persons if source in person.records]

    def values(self, source: str, insz_digits: str) -> dict[str, object] | None:
        """Every field of ``source`` for one participant, ``None`` values included.

        Returns ``None`` when the source does not know the participant. The values
        are deep copies: a simulator or test may change them without changing the
        population that other sources and later requests see.
        """
        _require_source(source)
        person = self._by_insz.get(insz_digits)
        if person is None or source not in person.records:
            return None
        return copy.deepcopy(dict(person.records[source]))


def _require_source(source: str) -> None:
    if source not in SOURCE_FIELDS:
        raise KeyError(f"{source!r} is not a demo source")


@dataclass(slots=True)
class _Draft:
    """A person while being drawn; the order of draws is what makes a seed stable."""

    given_name: str
    family_name: str
    gender: str
    birth_date: date
    region: str
    postcode: str
    municipality: str
    status: str
    start: date | None
    end: date | None
    hours: int | None = None
    bis_offset: int = 0
    sources: set[str] = field(default_factory=set)


def make_population(
    seed: int = 2026, size: int = DEFAULT_SIZE, *, as_of: date = DEMO_AS_OF
) -> Population:
    """Draw ``size`` participants from ``seed``; the same arguments give the same world."""
    if size < 1:
        raise ValueError("a population needs at least one person")
    rng = random.Random(seed)
    drafts = [_draw_person(rng, as_of) for _ in range(size)]
    _draw_memberships(rng, drafts)
    advice = iter(_allocate_end_advice(rng, sum(d.status == "ended" for d in drafts)))
    taken: set[str] = set()
    persons = []
    for draft in drafts:
        insz = _draw_insz(rng, draft, taken)
        records = _draw_records(
            rng, draft, as_of, next(advice) if draft.status == "ended" else None
        )
        persons.append(
            Person(
                insz=insz,
                given_name=draft.given_name,
                family_name=draft.family_name,
                birth_date=draft.birth_date,
                gender=draft.gender,
                postcode=draft.postcode,
                municipality=draft.municipality,
                records=MappingProxyType(records),
            )
        )
    return Population(persons, seed=seed, as_of=as_of)


def _draw_person(rng: random.Random, as_of: date) -> _Draft:
    gender = rng.choice(("female", "male"))
    given = rng.choice(voc.GIVEN_NAMES_FEMALE if gender == "female" else voc.GIVEN_NAMES_MALE)
    region = rng.choices(list(_REGION_WEIGHTS), weights=list(_REGION_WEIGHTS.values()))[0]
    postcode, municipality = rng.choice(voc.POSTCODES[region])
    if rng.random() < _YOUNG_SHARE:
        age_days = rng.randint(18 * 366, 26 * 365 - 10)
    else:
        age_days = rng.randint(27 * 366, 63 * 365)
    birth = as_of - age_days * _DAY
    status, start, end = _draw_trajectory(rng, as_of)
    draft = _Draft(
        given_name=given,
        family_name=rng.choice(voc.FAMILY_NAMES),
        gender=gender,
        birth_date=birth,
        region=region,
        postcode=postcode,
        municipality=municipality,
        status=status,
        start=start,
        end=end,
        sources={"vdab"},
    )
    # An internship starts once the plan is written (4 to 6 weeks in, DOMAIN.md).
    if start is not None and ((end or as_of) - start).days >= 42:  # noqa: PLR2004
        draft.hours = rng.choice(voc.INTERNSHIP_HOURS)
    return draft


def _draw_trajectory(rng: random.Random, as_of: date) -> tuple[str, date | None, date | None]:
    """A status with dates that fit it: at most 18 months, 387 days on average."""
    status = rng.choices(TRAJECTORY_STATUSES, weights=_STATUS_WEIGHTS)[0]
    if status == "initiated":
        return status, None, None
    if status == "accepted":
        return status, as_of + rng.randint(3, 30) * _DAY, None
    if status == "running":
        return status, as_of - rng.randint(7, 540) * _DAY, None
    if status == "ended":
        if rng.random() < _EXTENDED_SHARE:
            duration = rng.randint(560, 700)
        else:
            duration = min(max(round(rng.gauss(387, 60)), 200), 548)
        end = as_of - rng.randint(7, 420) * _DAY
        return status, end - duration * _DAY, end
    end = as_of - rng.randint(3, 300) * _DAY
    return status, end - rng.randint(30, 330) * _DAY, end


def _draw_memberships(rng: random.Random, drafts: list[_Draft]) -> None:
    """Which partner knows whom, with each source's coverage as an exact count.

    Exact counts, not a coin per person, so that every source reaches its share at
    every seed; the preferred pools keep the world coherent.
    """
    everyone = list(range(len(drafts)))
    in_ghent = [i for i in everyone if drafts[i].region == "gent"]
    interned = [i for i in everyone if drafts[i].hours is not None]
    preferred = {
        "ocmw-gent": in_ghent,
        "in-gent": in_ghent,
        "cgg-vagga": everyone,
        "levanto": interned,
    }
    for source, pool in preferred.items():
        for i in _pick(rng, len(drafts), round(COVERAGE[source] * len(drafts)), pool):
            drafts[i].sources.add(source)
    # BIS numbers go to people outside the national register: newcomers, known to In-Gent.
    newcomers = [i for i in everyone if "in-gent" in drafts[i].sources] or everyone
    for i in rng.sample(newcomers, min(len(newcomers), max(1, round(_BIS_SHARE * len(drafts))))):
        drafts[i].bis_offset = 40 if rng.random() < 0.8 else 20  # noqa: PLR2004


def _pick(rng: random.Random, size: int, count: int, preferred: list[int]) -> list[int]:
    chosen = rng.sample(preferred, min(count, len(preferred)))
    if len(chosen) < count:
        taken = set(chosen)
        rest = [i for i in range(size) if i not in taken]
        chosen += rng.sample(rest, count - len(chosen))
    return chosen


def _allocate_end_advice(rng: random.Random, count: int) -> list[str]:
    """END_ADVICE_MIX as exact quotas (largest remainder), shuffled.

    Quotas rather than independent draws so that the demo's aggregate figures show
    the evaluation's mix, and the rare codes (AB at 0.6%) still occur.
    """
    quotas = {code: int(share * count) for code, share in END_ADVICE_MIX.items()}
    missing = count - sum(quotas.values())
    by_remainder = sorted(
        END_ADVICE_MIX, key=lambda code: END_ADVICE_MIX[code] * count - quotas[code], reverse=True
    )
    for code in by_remainder[:missing]:
        quotas[code] += 1
    advice = [code for code, quota in quotas.items() for _ in range(quota)]
    rng.shuffle(advice)
    return advice


def _draw_insz(rng: random.Random, draft: _Draft, taken: set[str]) -> Insz:
    """A number the register's rules accept: yymmdd, a sequence, mod-97 check digits.

    The sequence is odd for men and even for women; from 2000 on the check digits
    are computed over "2" followed by the first nine digits; a BIS number adds 20 or
    40 to the month. Parsing the result proves it against the hub's own rules.
    """
    birth = draft.birth_date
    while True:
        sequence = 2 * rng.randrange(499) + (1 if draft.gender == "male" else 2)
        body = f"{birth.year % 100:02d}{birth.month + draft.bis_offset:02d}{birth.day:02d}"
        body += f"{sequence:03d}"
        base = int(("2" if birth.year >= 2000 else "") + body)  # noqa: PLR2004
        digits = f"{body}{97 - base % 97:02d}"
        if digits not in taken:
            taken.add(digits)
            return Insz.parse(digits)


def _draw_records(
    rng: random.Random, draft: _Draft, as_of: date, end_advice: str | None
) -> dict[str, Mapping[str, object]]:
    records: dict[str, Mapping[str, object]] = {}
    emphasis: list[str] = []
    if "ocmw-gent" in draft.sources:
        records["ocmw-gent"] = record = _ocmw_record(rng)
        if record["barriers.housing"] != "stable":
            emphasis.append("housing")
    if "in-gent" in draft.sources:
        records["in-gent"] = _in_gent_record(rng, draft)
        emphasis.append("dutch")
    if "cgg-vagga" in draft.sources:
        records["cgg-vagga"] = _cgg_record(rng, draft, as_of)
        emphasis += ["psychological_stability", "stress_handling"]
    if "levanto" in draft.sources:
        records["levanto"] = _levanto_record(rng, draft, as_of)
    records["vdab"] = _vdab_record(rng, draft, as_of, end_advice, emphasis)
    return {
        source: MappingProxyType(records[source]) for source in SOURCE_FIELDS if source in records
    }


def _vdab_record(
    rng: random.Random, draft: _Draft, as_of: date, end_advice: str | None, emphasis: list[str]
) -> dict[str, object]:
    # Initiated and accepted trajectories have no plan yet and nothing to evaluate.
    started = draft.start if draft.status in {"running", "ended", "stopped-early"} else None
    last = min(draft.end or as_of, as_of)
    return {
        "trajectory.status": draft.status,
        "trajectory.start_date": draft.start.isoformat() if draft.start else None,
        "trajectory.plan": _plan(rng, draft) if started else None,
        "trajectory.evaluations": _evaluations(rng, started, last) if started else None,
        "trajectory.end_report": _end_report(rng, draft, end_advice),
        "trajectory.end_advice": end_advice,
        "internship.hours": draft.hours,
        "icf.assessment": _icf_assessment(rng, emphasis),
        "work_limitation.recognised": rng.random() < 0.35,  # noqa: PLR2004
    }


def _plan(rng: random.Random, draft: _Draft) -> dict[str, object]:
    """Goals, actions with their provider, and the providers chosen (DOMAIN.md)."""
    picked = rng.sample(voc.PLAN_ACTIONS, rng.randint(2, 4))
    if draft.hours is not None and not any("internship" in action for action, _ in picked):
        picked.insert(0, ("activation internship", "levanto"))
    states = {"running": ("done", "running", "planned"), "ended": ("done",)}
    actions = [
        {
            "action": action,
            "provider": provider,
            "status": rng.choice(states.get(draft.status, ("done", "stopped"))),
        }
        for action, provider in picked
    ]
    return {
        "goals": rng.sample(voc.PLAN_GOALS, rng.randint(2, 3)),
        "actions": actions,
        "providers": sorted({provider for _, provider in picked}),
    }


def _dated_notes(
    rng: random.Random, first: date, last: date, notes: Sequence[str], gap: tuple[int, int]
) -> list[tuple[date, str]]:
    entries: list[tuple[date, str]] = []
    day = first + rng.randint(*gap) * _DAY
    while day <= last:
        # Never the same note twice in a row: a dossier that repeats itself looks fake.
        previous = entries[-1][1] if entries else None
        entries.append((day, rng.choice([note for note in notes if note != previous])))
        day += rng.randint(*gap) * _DAY
    return entries


def _evaluations(rng: random.Random, start: date, last: date) -> list[dict[str, object]]:
    return [
        {"date": day.isoformat(), "author_role": rng.choice(voc.EVALUATORS), "note": note}
        for day, note in _dated_notes(rng, start, last, voc.EVALUATION_NOTES, (60, 110))
    ]


def _end_report(rng: random.Random, draft: _Draft, end_advice: str | None) -> str | None:
    if draft.start is None or draft.end is None:
        return None
    months = max(1, round((draft.end - draft.start).days / 30.4))
    if draft.status == "stopped-early":
        return f"Trajectory stopped early after {months} months: {rng.choice(voc.STOP_REASONS)}."
    barriers = " and ".join(rng.sample(voc.REMAINING_BARRIERS, 2))
    advice = voc.END_ADVICE_LABELS[end_advice or "NT"]
    return (
        f"Trajectory closed after {months} months. {rng.choice(voc.END_ACHIEVEMENTS)} "
        f"Remaining barriers: {barriers}. Advice: {advice}."
    )


def _icf_assessment(rng: random.Random, emphasis: list[str]) -> dict[str, str]:
    """All 43 ICF factors, about 7 serious per participant (DOMAIN.md).

    Factors a partner's own record points at (a newcomer's Dutch, a housing
    barrier) are at least mild, so the sources do not contradict each other.
    """
    serious = set(rng.sample(voc.ICF_FACTORS, min(max(round(rng.gauss(6.5, 2.5)), 1), 20)))
    assessment = {}
    for factor in voc.ICF_FACTORS:
        if factor in serious:
            assessment[factor] = "serious"
        elif factor in emphasis:
            assessment[factor] = rng.choice(("mild", "serious"))
        else:
            assessment[factor] = rng.choices(ICF_LEVELS[:3], weights=(20, 50, 30))[0]
    return assessment


def _ocmw_record(rng: random.Random) -> dict[str, object]:
    housing = rng.choices(list(voc.HOUSING), weights=list(voc.HOUSING.values()))[0]
    if rng.random() < 0.15:  # noqa: PLR2004
        psychosocial = "No notable psychosocial barriers."
    else:
        psychosocial = "; ".join(rng.sample(voc.PSYCHOSOCIAL, rng.randint(1, 2))).capitalize()
        psychosocial += "."
    return {
        "social_assistance.leefloon": rng.random() < 0.65,  # noqa: PLR2004
        "barriers.housing": housing,
        "barriers.psychosocial": psychosocial,
    }


def _in_gent_record(rng: random.Random, draft: _Draft) -> dict[str, object]:
    mo_status = rng.choices(voc.MO_STATUSES, weights=(10, 25, 55, 10))[0]
    nt2: str | None = rng.choices(voc.NT2_LEVELS, weights=(25, 35, 28, 12))[0]
    if rng.random() < 0.08:  # noqa: PLR2004
        nt2 = None  # NT2 not started yet
    if draft.bis_offset:
        residence = rng.choice(voc.RESIDENCE_WITHOUT_REGISTER)
    else:
        residence = rng.choice(voc.RESIDENCE_IN_REGISTER)
    return {
        "integration.perspective_label": rng.choices(voc.PERSPECTIVES, weights=(50, 20, 30))[0],
        "integration.mo_status": mo_status,
        "integration.nt2_level": nt2,
        "integration.certificate": mo_status == "completed" and rng.random() < 0.75,  # noqa: PLR2004
        "residence.status": residence,
    }


def _cgg_record(rng: random.Random, draft: _Draft, as_of: date) -> dict[str, object]:
    care_start = (draft.start or as_of) - rng.randint(0, 120) * _DAY
    last = min(draft.end or as_of, as_of)
    entries = _dated_notes(rng, care_start, last, voc.CARE_NOTES, (14, 45))
    if not entries:  # a first intake is always on file
        entries = [(min(care_start, as_of), "Intake interview; care goals agreed.")]
    return {
        "care.goals": rng.sample(voc.CARE_GOALS, rng.randint(1, 3)),
        "care.progress": [{"date": day.isoformat(), "note": note} for day, note in entries],
    }


def _levanto_record(rng: random.Random, draft: _Draft, as_of: date) -> dict[str, object]:
    if draft.hours is None or draft.start is None:
        return {"internship.functioning_report": None}  # known, no internship yet
    reported = min(draft.end or as_of, as_of) - rng.randint(0, 20) * _DAY
    scores = {
        aspect: rng.choices(voc.FUNCTIONING_SCORES, weights=(45, 40, 15))[0]
        for aspect in voc.FUNCTIONING_ASPECTS
    }
    return {
        "internship.functioning_report": {
            "reported_on": max(reported, draft.start + 42 * _DAY).isoformat(),
            "employer": rng.choice(voc.EMPLOYERS),
            "internship_type": rng.choice(voc.INTERNSHIP_TYPES),
            "hours_per_week": draft.hours,
            "attendance": rng.choices(("good", "irregular", "poor"), weights=(65, 27, 8))[0],
            "scores": scores,
            "summary": rng.choice(voc.FUNCTIONING_SUMMARIES),
        }
    }
