"""The words the synthetic population is drawn from.

Kept apart from ``population`` so that the drawing logic reads on its own and the
lists can grow without pushing it past a readable size. Names are common Flemish
given and family names, combined at random: no combination stands for a real
person. Providers and employers are the demo partners or invented organisations.
Long lists are written as one string and split, so the formatter keeps them short.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping


def _words(text: str) -> tuple[str, ...]:
    return tuple(word.strip() for word in text.split("|"))


GIVEN_NAMES_FEMALE = _words(
    "Emma|Louise|Marie|Elise|Lotte|Hanne|Lien|Sofie|An|Katrien|Griet|Els|Ilse|Veerle|"
    "Nathalie|Sarah|Lore|Fien|Jana|Nele|Inge|Kaat|Ine|Hilde|Ellen|Lisa|Marieke|Femke|Leen|Tine"
)
GIVEN_NAMES_MALE = _words(
    "Lucas|Arthur|Noah|Jules|Louis|Wout|Pieter|Jeroen|Tom|Bart|Koen|Dirk|Stijn|Jef|Wim|"
    "Geert|Jan|Joris|Maarten|Sander|Thomas|Sven|Kris|Filip|Bram|Toon|Robbe|Lars|Seppe|Warre"
)
FAMILY_NAMES = _words(
    "Peeters|Janssens|Maes|Jacobs|Mertens|Willems|Claes|Goossens|Wouters|De Smet|Vermeulen|"
    "Van Damme|De Clercq|Pauwels|Hermans|Aerts|Michiels|Verstraete|Lambrecht|De Vos|"
    "Van den Broeck|Claeys|Martens|Cools|Verhoeven|Vandenberghe|De Backer|Smets|Bogaert|"
    "Van de Velde|De Wilde|Geerts|Coppens|Stevens|Verbeke|Van Hecke|De Meyer|Lemmens|Dhondt|"
    "Vercauteren|Baert|Segers|Vanderstraeten|Sels|Heylen|Wuyts|Boeckx|Van Acker|De Cock|"
    "Mortier|Bracke|Buyse|Verschueren|Roels|Van Hoof|Schepens|De Paepe|Van Belle|Tack|Rombaut"
)


def _places(text: str) -> tuple[tuple[str, str], ...]:
    pairs = (entry.split(" ", 1) for entry in _words(text))
    return tuple((postcode, name) for postcode, name in pairs)


POSTCODES: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        "gent": _places(
            "9000 Gent|9030 Mariakerke|9031 Drongen|9032 Wondelgem|9040 Sint-Amandsberg|"
            "9041 Oostakker|9042 Mendonk|9050 Ledeberg|9051 Sint-Denijs-Westrem|9052 Zwijnaarde"
        ),
        "antwerpen": _places(
            "2000 Antwerpen|2018 Antwerpen|2020 Antwerpen|2030 Antwerpen|2060 Antwerpen|"
            "2100 Deurne|2140 Borgerhout|2170 Merksem|2600 Berchem|2610 Wilrijk|2660 Hoboken"
        ),
        "waasland": _places(
            "9100 Sint-Niklaas|9111 Belsele|9120 Beveren|9140 Temse|9150 Kruibeke|9160 Lokeren|"
            "9170 Sint-Gillis-Waas|9190 Stekene"
        ),
    }
)

ICF_FACTORS = _words(
    # personal functioning
    "psychological_stability|stress_handling|self_image|motivation|emotional_regulation|"
    "coping_with_change|insight_in_own_situation|"
    # cognition and basic skills
    "attention|memory|problem_solving|planning_and_organising|learning_ability|arithmetic|"
    "reading|writing|dutch|"
    # work attitude
    "work_pace|reliability|punctuality|perseverance|accuracy|independence|taking_initiative|"
    "following_instructions|handling_criticism|"
    # social functioning
    "communication|teamwork|social_contacts|conflict_handling|assertiveness|"
    # body
    "physical_endurance|fine_motor_skills|standing_and_walking|lifting_and_carrying|"
    "sleep_rhythm|daily_structure|"
    # environment
    "housing|finances|debt|family_situation|childcare|transport|social_network"
)

INTERNSHIP_HOURS = (8, 12, 16, 19, 20, 24, 28, 30, 32, 38)

PLAN_GOALS = _words(
    "find a sustainable job in the regular economy|build up working hours to 24 a week|"
    "stabilise mental health enough to work|test work capacity in a sheltered setting|"
    "reach Dutch level A2 for the workplace|restore a daily rhythm|"
    "find stable housing before starting work|clarify which work suits the physical limits|"
    "reduce debts to a manageable plan|gain work experience in logistics"
)
PLAN_ACTIONS = (
    ("activation internship", "levanto"),
    ("work-experience internship", "maatwerkbedrijf-scheldeland"),
    ("job coaching", "gtb"),
    ("competence screening", "gtb"),
    ("psychological counselling", "cgg-vagga"),
    ("addiction counselling", "cgg-vagga"),
    ("budget guidance", "ocmw-gent"),
    ("debt mediation", "caw-oost-vlaanderen"),
    ("housing search support", "caw-oost-vlaanderen"),
    ("NT2 course", "huis-van-het-nederlands"),
    ("assertiveness group training", "levanto"),
    ("physical reconditioning", "revalidatiecentrum-ter-leie"),
)
EVALUATORS = ("casemanager-work", "casemanager-care")
EVALUATION_NOTES = _words(
    "Internship going well; hours can be raised next month.|"
    "Attendance irregular after a difficult period at home; plan kept.|"
    "Participant reports less stress; care sessions continue every two weeks.|"
    "Plan changed: second internship in a sheltered setting instead of the regular economy.|"
    "Good progress on punctuality; work pace still below the job's demands.|"
    "Housing problem solved; participant can focus on the internship again.|"
    "Motivation high; next step is a job-oriented internship.|"
    "Dutch improves; instructions now understood without an interpreter."
)
STOP_REASONS = _words(
    "obligations not met after repeated warnings|goal found unreachable within the trajectory|"
    "participant started working|force majeure"
)
END_ACHIEVEMENTS = _words(
    "Two internships completed with positive functioning reports.|"
    "The participant built up to a stable part-time rhythm.|"
    "Care goals largely reached; work capacity remains limited.|"
    "Internship completed; the employer is willing to offer a contract."
)
REMAINING_BARRIERS = _words(
    "limited stress tolerance|work pace|physical endurance|mobility|Dutch at work|"
    "dependence on structure|irregular sleep|debts"
)
END_ADVICE_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "AB": "job mediation",
        "AD": "sheltered work with through-flow",
        "AZ": "sheltered work (arbeidszorg)",
        "BC": "sheltered economy",
        "LD": "local service economy",
        "NC": "regular economy",
        "NT": "not referable, welfare advice",
    }
)

HOUSING: Mapping[str, int] = MappingProxyType(
    {
        "stable": 40,
        "precarious": 25,
        "waiting-list-social-housing": 15,
        "temporary-shelter": 12,
        "homeless": 8,
    }
)
PSYCHOSOCIAL = _words(
    "social isolation|grief after the loss of a partner|stress from debts|anxiety complaints|"
    "difficult family situation|addiction history, in recovery|low self-esteem|"
    "conflict with family, staying with friends"
)

PERSPECTIVES = ("professional", "educational", "social")
MO_STATUSES = ("not-started", "in-progress", "completed", "exempt")
NT2_LEVELS = ("A1", "A2", "B1", "B2")
RESIDENCE_IN_REGISTER = _words(
    "recognised-refugee|subsidiary-protection|family-reunification|eu-citizen|"
    "unlimited-residence|belgian-nationality"
)
RESIDENCE_WITHOUT_REGISTER = ("applicant-international-protection", "temporary-residence")

CARE_GOALS = _words(
    "reduce anxiety in social situations|stabilise sleep rhythm|build stress-management skills|"
    "process traumatic experiences|stabilise mood|reduce alcohol use|rebuild a daily structure|"
    "strengthen self-esteem"
)
CARE_NOTES = _words(
    "Session held; fewer panic moments reported.|Missed appointment, rescheduled.|"
    "Worked on a weekly structure; first steps taken.|Mood lower after news from family.|"
    "Relapse prevention plan discussed.|Participant applies breathing exercises at the internship.|"
    "Medication review with the psychiatrist; stable.|Progress on goals evaluated with casemanager."
)

EMPLOYERS = _words(
    "Maatwerkbedrijf Scheldeland|Kringwinkel Leiestreek|Groendienst Waasland vzw|"
    "Logistiek Gent-Zeehaven|Sociaal Restaurant De Pollepel|Fietsatelier Rabot|"
    "Woonzorgcentrum Ter Linde|Schoonmaakbedrijf Proper"
)
INTERNSHIP_TYPES = ("activation internship", "work-experience internship", "orientation internship")
FUNCTIONING_SCORES = ("good", "adequate", "needs-support")
FUNCTIONING_ASPECTS = _words(
    "punctuality|work_pace|teamwork|following_instructions|quality_of_work|independence"
)
FUNCTIONING_SUMMARIES = _words(
    "Works carefully and is liked by colleagues; needs clear instructions.|"
    "Good start; energy drops after lunch, so hours stay as they are for now.|"
    "Functioning improves steadily; ready for more responsibility.|"
    "Struggles with the pace; a calmer workplace is advised.|"
    "Reliable and motivated; could move on to a job-oriented internship."
)
