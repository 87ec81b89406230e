"""The policy directory loader (CONTRACT.md section 1).

Each rule is shown by one small change to a valid directory, and the test names the
file, the line and a piece of the message the operator reads. Most tests expect
exactly one problem: a mistake must not drown in follow-on complaints.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from hub.domain.agreements import SourceConfig
from hub.domain.errors import PolicyError, PolicyProblem
from hub.policy.loader import check_policy_dir, load_policy_dir

DEMO_POLICIES = Path(__file__).resolve().parents[2] / "policies"

# Line numbers are part of what is tested: they are written beside each template.
PARTNERS = """\
partners:
  - id: vdab
    name: VDAB
    kind: public employment service
    source:
      adapter: rest
      base_url: http://127.0.0.1:8101
      timeout_s: 3
  - id: cgg-vagga
    name: CGG VAGGA
    kind: mental-health care
    source:
      adapter: rest
      base_url: http://127.0.0.1:8104
  - id: gtb
    name: GTB
    kind: casemanager work
  - id: hub
    name: Ketenhub operator
    kind: hub operator
"""
#  2 id: vdab (5 source, 6 adapter, 7 base_url, 8 timeout_s)
#  9 id: cgg-vagga (12 source, 13 adapter, 14 base_url)  15 id: gtb (17 kind)  18 id: hub

CATALOGUE = """\
fields:
  vdab:
    - {name: trajectory.status, category: trajectory, special: false}
    - {name: trajectory.plan, category: trajectory, special: false}
    - {name: icf.assessment, category: health, special: true}
  cgg-vagga:
    - {name: care.goals, category: care, special: true}
"""

AGREEMENT = """\
id: vdab-open
version: 1
title: Open part of the trajectory
provider: vdab
recipients: [gtb, cgg-vagga]
purpose: trajectory-coordination
legal_basis: "GDPR 6(1)(e); decreet werk- en zorgtrajecten art. 39-40"
fields: [trajectory.status, trajectory.plan]
roles: [casemanager-work, casemanager-care]
consent_required: false
valid_from: 2026-01-01
valid_until: 2027-12-31
retention_days: 30
"""
#  1 id  2 version  3 title  4 provider  5 recipients  6 purpose  7 legal_basis
#  8 fields  9 roles  10 consent_required  11 valid_from  12 valid_until  13 retention_days

AGREEMENT_FILE = "agreements/vdab-open.yaml"


def a_policy_dir(
    root: Path,
    *,
    partners: str | None = PARTNERS,
    catalogue: str | None = CATALOGUE,
    agreements: dict[str, str] | None = None,
) -> Path:
    """A policy directory under ``root``; ``None`` leaves that file out."""
    root.mkdir(parents=True, exist_ok=True)
    if partners is not None:
        (root / "partners.yaml").write_text(partners, encoding="utf-8")
    if catalogue is not None:
        (root / "catalogue.yaml").write_text(catalogue, encoding="utf-8")
    (root / "agreements").mkdir(exist_ok=True)
    for name, text in ({"vdab-open.yaml": AGREEMENT} if agreements is None else agreements).items():
        (root / "agreements" / name).write_text(text, encoding="utf-8")
    return root


def with_line(text: str, number: int, new: str | None) -> str:
    """``text`` with line ``number`` replaced by ``new`` (which may span lines and say
    ``<line>`` for the old line); ``None`` removes the line."""
    lines = text.splitlines()
    if new is None:
        del lines[number - 1]
    else:
        lines[number - 1] = new.replace("<line>", lines[number - 1])
    return "\n".join(lines) + "\n"


def with_key(text: str, key: str, value: str | None) -> str:
    """``text`` with ``key: value`` in place of the top-level key's line (appended when
    absent); ``None`` removes the line."""
    lines = text.splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith(f"{key}:")]
    if found:
        return with_line(text, found[0] + 1, None if value is None else f"{key}: {value}")
    return f"{text}{key}: {value}\n"


def assert_only(problems: list[PolicyProblem], file: str, line: int | None, fragment: str) -> None:
    """Exactly one problem, in ``file`` on ``line``, whose message holds ``fragment``."""
    assert len(problems) == 1, [str(p) for p in problems]
    (problem,) = problems
    assert (problem.file, problem.line) == (file, line), str(problem)
    assert fragment in problem.message, str(problem)


def agreement_problems(tmp_path: Path, text: str) -> list[PolicyProblem]:
    return check_policy_dir(a_policy_dir(tmp_path, agreements={"vdab-open.yaml": text}))


def partner_problems(tmp_path: Path, text: str) -> list[PolicyProblem]:
    return check_policy_dir(a_policy_dir(tmp_path, partners=text, agreements={}))


def catalogue_problems(tmp_path: Path, text: str) -> list[PolicyProblem]:
    return check_policy_dir(a_policy_dir(tmp_path, catalogue=text, agreements={}))


# --- A valid directory -------------------------------------------------------------------


def test_a_valid_directory_builds_frozen_policy_objects(tmp_path: Path) -> None:
    policy = load_policy_dir(a_policy_dir(tmp_path))

    assert check_policy_dir(tmp_path) == []
    assert list(policy.partners) == ["vdab", "cgg-vagga", "gtb", "hub"]
    vdab, cgg = policy.partners["vdab"].source, policy.partners["cgg-vagga"].source
    assert vdab == SourceConfig("rest", "http://127.0.0.1:8101", 3.0, {})
    assert cgg == SourceConfig("rest", "http://127.0.0.1:8104", 3.0, {})  # timeout_s: the default
    assert policy.partners["gtb"].source is None
    assert policy.fields_of("vdab")["icf.assessment"].special is True
    assert policy.fields_of("vdab")["trajectory.status"].category == "trajectory"
    (agreement,) = policy.agreements
    assert agreement.ref == "vdab-open@1"
    assert agreement.recipients == frozenset({"gtb", "cgg-vagga"})
    assert agreement.fields == frozenset({"trajectory.status", "trajectory.plan"})
    assert agreement.roles == frozenset({"casemanager-work", "casemanager-care"})
    assert (agreement.valid_from, agreement.valid_until) == (date(2026, 1, 1), date(2027, 12, 31))
    assert (agreement.special_category_condition, agreement.consent_required) == (None, False)
    assert agreement.retention_days == 30
    assert agreement.legal_basis == "GDPR 6(1)(e); decreet werk- en zorgtrajecten art. 39-40"


def test_adapter_specific_settings_live_under_options(tmp_path: Path) -> None:
    line = "      options: {headers: {x-api: demo}, retries: [1, 2]}"
    partners = with_line(PARTNERS, 8, f"      timeout_s: 2.5\n{line}")
    source = load_policy_dir(a_policy_dir(tmp_path, partners=partners)).partners["vdab"].source
    options = {"headers": {"x-api": "demo"}, "retries": [1, 2]}
    assert source == SourceConfig("rest", "http://127.0.0.1:8101", 2.5, options)
    assert type(source.options["headers"]) is dict


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("valid_from", "'2026-01-01'", date(2026, 1, 1)),  # an ISO string is a date too
        ("valid_until", None, None),  # open-ended
        ("valid_until", "null", None),
        ("special_category_condition", '"GDPR 9(2)(a)"', "GDPR 9(2)(a)"),
    ],
)
def test_optional_forms(tmp_path: Path, key: str, value: str | None, expected: object) -> None:
    text = with_key(AGREEMENT, key, value)
    (agreement,) = load_policy_dir(a_policy_dir(tmp_path, agreements={"a.yaml": text})).agreements
    assert getattr(agreement, key) == expected


def test_special_fields_load_with_a_special_category_condition(tmp_path: Path) -> None:
    text = with_key(AGREEMENT, "fields", "[icf.assessment]")
    text = with_key(text, "special_category_condition", "GDPR 9(2)(a)")
    assert agreement_problems(tmp_path, text) == []


def test_yaml_anchors_and_merge_keys_are_not_mistaken_for_repeated_keys(tmp_path: Path) -> None:
    partners = with_line(PARTNERS, 5, "    source: &rest")
    partners = with_line(partners, 13, "      <<: *rest")
    source = load_policy_dir(a_policy_dir(tmp_path, partners=partners)).partners["cgg-vagga"].source
    assert source == SourceConfig("rest", "http://127.0.0.1:8104", 3.0, {})


def test_the_other_adapters_of_this_hub_are_accepted(tmp_path: Path) -> None:
    root = a_policy_dir(tmp_path, partners=with_line(PARTNERS, 6, "      adapter: soap"))
    assert check_policy_dir(root, adapters=frozenset({"rest", "soap"})) == []


# --- The directory and its files ---------------------------------------------------------


@pytest.mark.parametrize(
    ("is_file", "what"), [(False, "does not exist"), (True, "is not a directory")]
)
def test_the_directory_itself(tmp_path: Path, is_file: bool, what: str) -> None:
    path = tmp_path / "policies"
    if is_file:
        path.write_text("partners: []\n", encoding="utf-8")
    assert_only(check_policy_dir(path), str(path), None, f"the policy directory {what}")


def test_a_missing_agreements_directory(tmp_path: Path) -> None:
    root = a_policy_dir(tmp_path, agreements={})
    (root / "agreements").rmdir()
    assert_only(check_policy_dir(root), "agreements", None, "the agreements directory is missing")


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    root = a_policy_dir(tmp_path, agreements={})
    (root / "agreements" / "latin1.yaml").write_bytes("title: Coördinatie\n".encode("latin-1"))
    (root / "partners.yaml").unlink()
    (root / "partners.yaml").mkdir()
    assert [str(p) for p in check_policy_dir(root)] == [
        "partners.yaml: the file cannot be read: Is a directory",
        "agreements/latin1.yaml: the file is not UTF-8 text",
    ]


# (test id, file, its text or None to remove it, line reported, fragment of the message)
# fmt: off
FILE_CASES = [
    ("no-partners", "partners.yaml", None, None, "the file is missing"),
    ("no-catalogue", "catalogue.yaml", None, None, "the file is missing"),
    ("yml", "agreements/vdab-open.yml", AGREEMENT, None, "not read: agreement files must end in"),
    ("empty", AGREEMENT_FILE, "# nothing yet\n", None, "the file is empty"),
    ("syntax", AGREEMENT_FILE, "id: x\nversion: [1\ntitle: t\n", 3, "YAML syntax error: "),
    ("colon", AGREEMENT_FILE, with_key(AGREEMENT, "purpose", "a: b"), 6, "YAML syntax error: "),
    ("twice", AGREEMENT_FILE, AGREEMENT + "version: 2\n", 14, "key 'version' appears twice"),
    ("list", AGREEMENT_FILE, "- id: x\n- version: 1\n", 1, "mapping of keys to values, not a list"),
    ("text", AGREEMENT_FILE, "just text\n", 1, "mapping of keys to values, not 'just text'"),
    ("control", AGREEMENT_FILE, "id: x\ntitle: \x07\n", 2, "characters are not allowed (#x0007)"),
    ("no-top-key", "catalogue.yaml", "{}\n", 1, "catalogue.yaml is missing the required key 'fie"),
    ("top-key", "partners.yaml", PARTNERS + "contacts: []\n", 21, "key 'contacts' in partners.y"),
    ("top-type", "partners.yaml", "partners:\n  vdab: {}\n", 1, "'partners' must be a list of"),
]
# fmt: on


@pytest.mark.parametrize(
    ("file", "text", "line", "fragment"),
    [case[1:] for case in FILE_CASES],
    ids=[case[0] for case in FILE_CASES],
)
def test_what_is_wrong_with_a_whole_file(
    tmp_path: Path, file: str, text: str | None, line: int | None, fragment: str
) -> None:
    root = a_policy_dir(tmp_path)
    if text is None:
        (root / file).unlink()
    else:
        (root / file).write_text(text, encoding="utf-8")
    assert_only(check_policy_dir(root), file, line, fragment)


# --- partners.yaml and catalogue.yaml ----------------------------------------------------


# (test id, line to change, its new text, line reported, fragment of the message)
# fmt: off
PARTNER_CASES = [
    ("id-upper", 15, "  - id: GTB", 15, "'id' must be an id of 2 to 40 lowercase letters"),
    ("id-short", 15, "  - id: g", 15, "'id' must be an id of 2 to 40 lowercase letters"),
    ("id-underscore", 15, "  - id: gtb_x", 15, "'id' must be an id of 2 to 40"),
    ("id-hyphen-first", 15, "  - id: -gtb", 15, "'id' must be an id of 2 to 40"),
    ("id-long", 15, f"  - id: {'x' * 41}", 15, "'id' must be an id of 2 to 40"),
    ("id-number", 15, "  - id: 123", 15, "must be an id of 2 to 40 lowercase letters, dig"),
    ("id-twice", 20, "<line>\n  - id: gtb\n    name: G\n    kind: k", 21, "used on line 15"),
    ("not-a-mapping", 20, "<line>\n  - levanto", 21, "each partner must be a mapping"),
    ("unknown-key", 17, "<line>\n    web: x", 18, "unknown key 'web' in partner 'gtb'; allowed"),
    ("missing-key", 16, None, 15, "partner 'gtb' is missing the required key 'name'"),
    ("name-list", 16, "    name: [G, T, B]", 16, "'name' must be text, not a list"),
    ("source-scalar", 17, "<line>\n    source: rest", 18, "'source' must be a mapping"),
    ("source-key", 8, "      timeout: 3", 8, "partner 'vdab' (did you mean 'timeout_s'?)"),
    ("source-missing", 14, None, 13, "'cgg-vagga' is missing the required key 'base_url'"),
    ("adapter", 6, "      adapter: soap", 6, "adapter 'soap' is not available (known: rest)"),
    ("url-ftp", 7, "      base_url: ftp://127.0.0.1", 7, "must be an http:// or https:// URL"),
    ("url-no-scheme", 7, "      base_url: 127.0.0.1:8101", 7, "must be an http:// or https://"),
    ("url-no-host", 7, "      base_url: http://", 7, "must be an http:// or https:// URL with a"),
    ("url-port", 7, "      base_url: http://127.0.0.1:99999", 7, "is not a valid URL"),
    ("url-user", 7, "      base_url: http://u:p@127.0.0.1", 7, "must not contain credentials"),
    ("url-query", 7, "      base_url: http://127.0.0.1/?k=1", 7, "must not have a query"),
    ("url-space", 7, "      base_url: 'http://127.0.0.1 :81'", 7, "must not contain spaces"),
    ("url-number", 7, "      base_url: 8101", 7, "'base_url' must be an http:// or https:// URL"),
    ("timeout-0", 8, "      timeout_s: 0", 8, "'timeout_s' must be a number of seconds above 0"),
    ("timeout-neg", 8, "      timeout_s: -1", 8, "must be a number of seconds above 0, not -1"),
    ("timeout-text", 8, "      timeout_s: fast", 8, "must be a number of seconds above 0, not 'f"),
    ("timeout-bool", 8, "      timeout_s: true", 8, "must be a number of seconds above 0, not tr"),
    ("timeout-inf", 8, "      timeout_s: .inf", 8, "must be a number of seconds above 0, not inf"),
    ("options-list", 8, "<line>\n      options: [a, b]", 9, "'options' must be a mapping"),
    ("options-keys", 8, "<line>\n      options: {1: a}", 9, "the keys under 'options' must be t"),
    ("hub-source", 20, "<line>\n    source: {adapter: rest, base_url: http://h}", 21,
     "partner 'hub' is the hub's operator and cannot be a source"),
]
# fmt: on


@pytest.mark.parametrize(
    ("number", "new", "line", "fragment"),
    [case[1:] for case in PARTNER_CASES],
    ids=[case[0] for case in PARTNER_CASES],
)
def test_partner_rules(
    tmp_path: Path, number: int, new: str | None, line: int, fragment: str
) -> None:
    problems = partner_problems(tmp_path, with_line(PARTNERS, number, new))
    assert_only(problems, "partners.yaml", line, fragment)


def test_https_base_urls_with_a_path_are_fine(tmp_path: Path) -> None:
    text = with_line(PARTNERS, 7, "      base_url: https://api.vdab.example/ketenhub/v1")
    assert partner_problems(tmp_path, text) == []


# fmt: off
CATALOGUE_CASES = [
    ("twice", 7, "<line>\n<line>", 8, "'care.goals' is listed twice for 'cgg-vagga' (first on l"),
    ("unknown-partner", 7, "<line>\n  levanto: []", 8, "'levanto' is not a partner in partners"),
    ("no-source", 7, "<line>\n  gtb: []", 8, "partner 'gtb' has no source in partners.yaml"),
    ("name-upper", 7, "    - {name: Care.Goals, category: c, special: true}", 7, "a field name"),
    ("name-no-dot", 7, "    - {name: goals, category: c, special: true}", 7, "a field name"),
    ("name-dots", 7, "    - {name: care..goals, category: c, special: true}", 7, "a field name"),
    ("special-missing", 7, "    - {name: care.goals, category: c}", 7, "required key 'special'"),
    ("special-text", 7, "    - {name: care.goals, category: c, special: maybe}", 7, "true or"),
    ("category-empty", 7, "    - {name: care.goals, category: '', special: true}", 7, "'categ"),
    ("unknown-key", 7, "    - {name: care.goals, kategory: c, category: c, special: no}", 7, "'k"),
    ("entry-scalar", 7, "    - care.goals", 7, "each field of 'cgg-vagga' must be a mapping with"),
    ("list-scalar", 7, None, 6, "the fields of 'cgg-vagga' must be a list, not null"),
    ("key-number", 7, "<line>\n  1: []", 8, "1 is not a partner id"),
]
# fmt: on


@pytest.mark.parametrize(
    ("number", "new", "line", "fragment"),
    [case[1:] for case in CATALOGUE_CASES],
    ids=[case[0] for case in CATALOGUE_CASES],
)
def test_catalogue_rules(
    tmp_path: Path, number: int, new: str | None, line: int, fragment: str
) -> None:
    problems = catalogue_problems(tmp_path, with_line(CATALOGUE, number, new))
    assert_only(problems, "catalogue.yaml", line, fragment)


def test_the_same_field_name_at_two_sources_is_fine(tmp_path: Path) -> None:
    text = with_line(
        CATALOGUE, 7, "<line>\n    - {name: trajectory.status, category: t, special: false}"
    )
    assert catalogue_problems(tmp_path, text) == []


# --- agreements/*.yaml -------------------------------------------------------------------


# (key, new value or None to remove it, line reported, fragment of the message)
# fmt: off
AGREEMENT_CASES = [
    ("version", "0", 2, "'version' must be a whole number of at least 1, not 0"),
    ("version", "two", 2, "'version' must be a whole number of at least 1, not 'two'"),
    ("version", "1.5", 2, "must be a whole number of at least 1, not 1.5"),
    ("version", "true", 2, "must be a whole number of at least 1, not true"),
    ("retention_days", "0", 13, "'retention_days' must be a whole number of at least 1"),
    ("retention_days", "30 days", 13, "must be a whole number of at least 1, not '30 days'"),
    ("consent_required", "sometimes", 10, "'consent_required' must be true or false"),
    ("id", "VDAB_open", 1, "'id' must be an id of 2 to 40 lowercase letters"),
    ("id", "v", 1, "'id' must be an id of 2 to 40 lowercase letters"),
    ("purpose", "Trajectory coordination", 6, "'purpose' must be an id of 2 to 40"),
    ("roles", "[casemanager-work, Case Manager]", 9, "role 'Case Manager' is not valid"),
    ("fields", "[trajectory.status, Plan]", 8, "field 'Plan' is not valid: it must be a field"),
    ("legal_basis", '""', 7, "'legal_basis' must be text, not empty text"),
    ("title", "42", 3, "'title' must be text, not 42"),
    ("recipients", "gtb", 5, "'recipients' must be a non-empty list, like [a, b], not 'gtb'"),
    ("recipients", "[]", 5, "'recipients' must be a non-empty list, like [a, b], not an empty"),
    ("fields", "[]", 8, "'fields' must be a non-empty list"),
    ("roles", "[]", 9, "'roles' must be a non-empty list"),
    ("recipients", "[gtb, cgg-vagga, gtb]", 5, "recipient 'gtb' is listed twice (first on line 5)"),
    ("fields", "[trajectory.plan, trajectory.plan]", 8, "field 'trajectory.plan' is listed twice"),
    ("roles", "[casemanager-work, casemanager-work]", 9, "role 'casemanager-work' is listed twice"),
    ("recipients", "[gtb, ocmw-gent]", 5, "recipient 'ocmw-gent' is not a partner in partners"),
    ("recipients", "[gtb, vdab]", 5, "recipient 'vdab' is the provider itself"),
    ("provider", "vdb", 4, "provider 'vdb' is not a partner in partners.yaml"),
    ("provider", "hub", 4, "provider 'hub' is not a source: partners.yaml gives it no 'source'"),
    ("fields", "[care.goals]", 8, "field 'care.goals' is not in the catalogue of 'vdab'"),
    ("fields", "[trajectory.plan, icf.assessment]", 8, "(GDPR Art. 9) data needs a 'special_cat"),
    ("valid_until", "2025-12-31", 12, "valid_until 2025-12-31 is before valid_from 2026-01-01"),
    ("valid_from", "01/01/2026", 11, "'valid_from' must be a date written YYYY-MM-DD"),
    ("valid_from", "2026-02-30", 11, "must be a date written YYYY-MM-DD, not '2026-02-30'"),
    ("valid_from", "'2026-1-1'", 11, "must be a date written YYYY-MM-DD, not '2026-1-1'"),
    ("valid_from", "2026-01-01 08:00:00", 11, "not the date-time 2026-01-01T08:00:00"),
    ("valid_until", "soon", 12, "'valid_until' must be a date written YYYY-MM-DD, not 'soon'"),
    ("special_category_condition", "[9(2)(a)]", 14, "'special_category_condition' must be text"),
    ("title", None, 1, "the agreement is missing the required key 'title'"),
    ("roles", None, 1, "the agreement is missing the required key 'roles'"),
    ("valid_form", "2026-01-01", 14, "unknown key 'valid_form' in the agreement (did you mean"),
]
# fmt: on


@pytest.mark.parametrize(
    ("key", "value", "line", "fragment"),
    AGREEMENT_CASES,
    ids=[f"{key}={value}" for key, value, _, _ in AGREEMENT_CASES],
)
def test_agreement_rules(
    tmp_path: Path, key: str, value: str | None, line: int, fragment: str
) -> None:
    problems = agreement_problems(tmp_path, with_key(AGREEMENT, key, value))
    assert_only(problems, AGREEMENT_FILE, line, fragment)


def test_a_misspelt_key_is_both_unknown_and_missing(tmp_path: Path) -> None:
    text = with_line(AGREEMENT, 10, "consent_requird: false")
    problems = agreement_problems(tmp_path, text)
    assert [str(p) for p in problems] == [
        "agreements/vdab-open.yaml:1: the agreement is missing the required key 'consent_required'",
        (
            "agreements/vdab-open.yaml:10: unknown key 'consent_requird' in the agreement "
            "(did you mean 'consent_required'?)"
        ),
    ]


# --- Across agreement files --------------------------------------------------------------


def versions(v1_period: str, v2_period: str) -> dict[str, str]:
    """Two versions of ``vdab-open``; a period is ``"from..until"``, until may be empty."""

    def version(number: int, period: str) -> str:
        valid_from, valid_until = period.split("..")
        text = with_key(AGREEMENT, "version", str(number))
        text = with_key(text, "valid_from", valid_from)
        return with_key(text, "valid_until", valid_until or "null")

    return {"vdab-open-v1.yaml": version(1, v1_period), "vdab-open-v2.yaml": version(2, v2_period)}


def test_the_same_id_and_version_in_two_files(tmp_path: Path) -> None:
    problems = check_policy_dir(
        a_policy_dir(tmp_path, agreements={"a.yaml": AGREEMENT, "b.yaml": AGREEMENT})
    )
    assert_only(
        problems,
        "agreements/b.yaml",
        2,
        "agreement 'vdab-open' version 1 is already in agreements/a.yaml",
    )


@pytest.mark.parametrize(
    ("v1", "v2"),
    [
        pytest.param("2026-01-01..2027-12-31", "2026-01-01..2027-12-31", id="same-period"),
        pytest.param("2026-03-01..2026-06-30", "2026-01-01..2027-12-31", id="inside"),
        pytest.param("2026-01-01..2027-12-31", "2025-01-01..", id="open-ended-higher"),
        pytest.param("2026-01-01..", "2026-01-01..", id="both-open-ended"),
    ],
)
def test_a_lower_version_that_can_never_be_in_force(tmp_path: Path, v1: str, v2: str) -> None:
    problems = check_policy_dir(a_policy_dir(tmp_path, agreements=versions(v1, v2)))
    message = (
        "version 1 of agreement 'vdab-open' can never be in force: "
        "version 2 (agreements/vdab-open-v2.yaml) is valid on every day it is"
    )
    assert_only(problems, "agreements/vdab-open-v1.yaml", 2, message)


@pytest.mark.parametrize(
    ("v1", "v2"),
    [
        pytest.param("2026-01-01..2027-12-31", "2026-04-01..2027-12-31", id="higher-starts-later"),
        pytest.param("2026-01-01..", "2026-01-01..2027-12-31", id="lower-outlives-higher"),
        pytest.param("2026-01-01..2026-03-31", "2026-04-01..", id="consecutive"),
    ],
)
def test_versions_that_each_have_their_days(tmp_path: Path, v1: str, v2: str) -> None:
    policy = load_policy_dir(a_policy_dir(tmp_path, agreements=versions(v1, v2)))
    assert [a.ref for a in policy.agreements] == ["vdab-open@1", "vdab-open@2"]


def test_every_version_of_an_agreement_has_the_same_provider(tmp_path: Path) -> None:
    v2 = with_key(AGREEMENT, "version", "2")
    v2 = with_key(v2, "valid_from", "2026-04-01")
    v2 = with_key(v2, "provider", "cgg-vagga")
    v2 = with_key(v2, "recipients", "[gtb]")
    v2 = with_key(v2, "fields", "[care.goals]")
    v2 = with_key(v2, "special_category_condition", '"GDPR 9(2)(a)"')
    problems = check_policy_dir(
        a_policy_dir(tmp_path, agreements={"v1.yaml": AGREEMENT, "v2.yaml": v2})
    )
    assert_only(
        problems,
        "agreements/v2.yaml",
        4,
        "version 2 of agreement 'vdab-open' has provider 'cgg-vagga', but version 1 "
        "(agreements/v1.yaml) has 'vdab'",
    )


# --- Every problem at once ---------------------------------------------------------------


def test_every_problem_is_reported_in_file_and_line_order(tmp_path: Path) -> None:
    broken = with_key(AGREEMENT, "version", "0")
    broken = with_key(broken, "recipients", "[gtb, foo]")
    broken = with_key(broken, "retention_days", "forever")
    fine = with_key(AGREEMENT, "id", "vdab-other")
    agreements = {"a-broken.yaml": broken, "b-syntax.yaml": "id: [\n", "c-fine.yaml": fine}
    root = a_policy_dir(
        tmp_path,
        partners=with_line(PARTNERS, 8, "      timeout_s: 0"),
        catalogue=with_line(CATALOGUE, 7, "<line>\n<line>"),
        agreements=agreements,
    )

    with pytest.raises(PolicyError) as raised:
        load_policy_dir(root)

    *problems, syntax = [str(p) for p in raised.value.problems]
    assert problems == [
        "partners.yaml:8: 'timeout_s' must be a number of seconds above 0, not 0",
        "catalogue.yaml:8: field 'care.goals' is listed twice for 'cgg-vagga' (first on line 7)",
        "agreements/a-broken.yaml:2: 'version' must be a whole number of at least 1, not 0",
        "agreements/a-broken.yaml:5: recipient 'foo' is not a partner in partners.yaml",
        (
            "agreements/a-broken.yaml:13: "
            "'retention_days' must be a whole number of at least 1, not 'forever'"
        ),
    ]
    assert syntax.startswith("agreements/b-syntax.yaml:2: YAML syntax error: ")
    assert check_policy_dir(root) == raised.value.problems


# --- The demo network --------------------------------------------------------------------

# The table of DOMAIN.md, "The demo network".
# fmt: off
DEMO_FIELDS = {
    "vdab": {
        "trajectory.status", "trajectory.start_date", "trajectory.plan", "trajectory.evaluations",
        "trajectory.end_report", "trajectory.end_advice", "internship.hours", "icf.assessment",
        "work_limitation.recognised",
    },
    "ocmw-gent": {"social_assistance.leefloon", "barriers.housing", "barriers.psychosocial"},
    "in-gent": {
        "integration.perspective_label", "integration.mo_status", "integration.nt2_level",
        "integration.certificate", "residence.status",
    },
    "cgg-vagga": {"care.goals", "care.progress"},
    "levanto": {"internship.functioning_report"},
}
DEMO_SPECIAL = {
    "icf.assessment", "work_limitation.recognised", "barriers.psychosocial", "care.goals",
    "care.progress",
}
DEMO_ROLES = {
    "vdab-mediator", "casemanager-work", "casemanager-care", "service-provider", "social-worker",
    "integration-counsellor", "penhouder",
}
DEMO_PORTS = {"vdab": 8101, "ocmw-gent": 8102, "in-gent": 8103, "cgg-vagga": 8104, "levanto": 8105}
DEMO_PARTNERS = {*DEMO_PORTS, "gtb", "penhouder-antwerpen", "hub"}
# fmt: on


def test_the_demo_network_loads() -> None:
    assert check_policy_dir(DEMO_POLICIES) == []
    policy = load_policy_dir(DEMO_POLICIES)

    assert set(policy.partners) == DEMO_PARTNERS
    sources = {pid: p.source for pid, p in policy.partners.items() if p.source is not None}
    assert sources == {
        pid: SourceConfig("rest", f"http://127.0.0.1:{port}", 3, {})
        for pid, port in DEMO_PORTS.items()
    }
    assert {source: set(fields) for source, fields in policy.catalogue.items()} == DEMO_FIELDS
    special = {f.name for fields in policy.catalogue.values() for f in fields.values() if f.special}
    assert special == DEMO_SPECIAL
    assert len(policy.agreements) == 9
    assert {role for a in policy.agreements for role in a.roles} == DEMO_ROLES


def test_the_demo_agreements_follow_the_domain_rules() -> None:
    policy = load_policy_dir(DEMO_POLICIES)
    today = date(2026, 11, 23)
    in_force = {a.id: a for a in policy.all_in_force(today)}

    open_part = in_force["vdab-trajectory-open"]
    assert open_part.version == 2
    assert open_part.recipients == set(policy.partners) - {"vdab", "hub"}
    assert not open_part.consent_required
    before_levanto = policy.in_force("vdab-trajectory-open", date(2026, 2, 1))
    assert before_levanto is not None
    assert before_levanto.version == 1
    assert "levanto" not in before_levanto.recipients
    for agreement in policy.agreements:
        fields = policy.fields_of(agreement.provider)
        if any(fields[name].special for name in agreement.fields):
            assert agreement.consent_required, agreement.ref
            assert agreement.special_category_condition, agreement.ref
    assert in_force["in-gent-integration-status"].purpose == "integration-coordination"
    assert in_force["ocmw-gent-leefloon"].recipients == {"gtb", "vdab"}
    assert not any("residence.status" in a.fields for a in policy.agreements)
