"""Read and validate the policy directory (CONTRACT.md section 1).

``load_policy_dir`` turns ``partners.yaml``, ``catalogue.yaml`` and
``agreements/*.yaml`` into a frozen ``PolicySet``. The hub refuses to start on an
invalid directory and says which file, which line and what is wrong (CONTRACT.md 1);
``ketenhub policy check`` shows the same list (CONTRACT.md 6). Every problem is
reported, not only the first, so that an operator fixes a directory in one pass.
When a file cannot be read at all, the checks of other files against it are
skipped rather than buried under follow-on problems.

Pure apart from reading the files: no logging, no clock, no other I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Final, TypeVar

import yaml

from hub.domain.agreements import (
    HUB_PARTNER,
    Agreement,
    CatalogueField,
    Partner,
    PolicySet,
    SourceConfig,
)
from hub.domain.errors import PolicyError, PolicyProblem
from hub.domain.ids import FieldName, PartnerId, Purpose, Role
from hub.policy.schema import (
    FIELD_RULE,
    SLUG_RULE,
    Entry,
    LineMap,
    LineSeq,
    Reporter,
    as_count,
    as_day,
    as_field_name,
    as_flag,
    as_seconds,
    as_slug,
    as_text,
    describe,
    plain,
    url_problem,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["DEFAULT_ADAPTERS", "DEFAULT_TIMEOUT_S", "check_policy_dir", "load_policy_dir"]

PARTNERS_FILE: Final = "partners.yaml"
CATALOGUE_FILE: Final = "catalogue.yaml"
AGREEMENTS_DIR: Final = "agreements"
DEFAULT_ADAPTERS: Final = frozenset({"rest"})
"""The adapters every hub has: CONTRACT.md 1 requires ``rest``."""
DEFAULT_TIMEOUT_S: Final = 3.0
"""A source's ``timeout_s`` when ``partners.yaml`` leaves it out."""

_AGREEMENT_REQUIRED: Final = (
    "id",
    "version",
    "title",
    "provider",
    "recipients",
    "purpose",
    "legal_basis",
    "fields",
    "roles",
    "consent_required",
    "valid_from",
    "retention_days",
)
_AGREEMENT_OPTIONAL: Final = ("special_category_condition", "valid_until")
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"

T = TypeVar("T")
Period = tuple[date, date | None]


def load_policy_dir(path: Path, *, adapters: frozenset[str] = DEFAULT_ADAPTERS) -> PolicySet:
    """The policy directory at ``path`` as a ``PolicySet`` (CONTRACT.md 1).

    ``adapters`` names the source adapters this hub has; a source naming another is a
    problem. Raises ``PolicyError`` with every ``PolicyProblem`` found, each naming the
    file relative to ``path``, the 1-based line (``None``: the whole file) and what is
    wrong.
    """
    check = _DirectoryCheck(path, adapters)
    policy = check.run()
    if policy is None:
        raise PolicyError(check.sorted_problems())
    return policy


def check_policy_dir(
    path: Path, *, adapters: frozenset[str] = DEFAULT_ADAPTERS
) -> list[PolicyProblem]:
    """Every problem in the policy directory at ``path``; empty when it is valid."""
    check = _DirectoryCheck(path, adapters)
    check.run()
    return check.sorted_problems()


# --- YAML that remembers where things are -------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """PyYAML's safe loader, building ``LineMap`` and ``LineSeq`` and noting repeated keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeated_keys: list[tuple[int, object]] = []


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[LineMap]:
    data = LineMap(node.start_mark.line + 1)
    yield data
    own_keys = [key for key, _ in node.value if key.tag != _MERGE_TAG]
    data.update(loader.construct_mapping(node))  # flattens `<<` merges into node.value
    for key_node, _ in node.value:
        data.key_lines[loader.construct_object(key_node)] = key_node.start_mark.line + 1
    seen: set[object] = set()
    for key_node in own_keys:
        key, line = loader.construct_object(key_node), key_node.start_mark.line + 1
        if key in seen:
            loader.repeated_keys.append((line, key))
        seen.add(key)
        data.key_lines[key] = line


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> Iterator[LineSeq]:
    data = LineSeq(node.start_mark.line + 1)
    yield data
    data.extend(loader.construct_sequence(node))
    data.item_lines = [item.start_mark.line + 1 for item in node.value]


def _construct_timestamp(loader: _LineLoader, node: yaml.ScalarNode) -> object:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:  # looks like a date but is none (2026-02-30): reported later
        return loader.construct_scalar(node)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def _covers(higher: Period, lower: Period) -> bool:
    """True when ``higher`` is valid on every day ``lower`` is (``None``: open-ended)."""
    if higher[0] > lower[0]:
        return False
    return higher[1] is None or (lower[1] is not None and higher[1] >= lower[1])


# --- The directory -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    """What the checks across agreement files need of one of them."""

    file: str
    id: str
    version: int
    line: int
    period: Period | None  # None: its dates are wrong, reported already
    provider: str | None  # None: unknown or missing, reported already
    provider_line: int


@dataclass
class _DirectoryCheck:
    """One pass over a policy directory: each file read once, every problem kept.

    Files are read in the order CONTRACT.md 1 lists them, since the catalogue refers to
    partners and agreements to both. Nothing is built into a ``PolicySet`` unless the
    whole directory is free of problems.
    """

    root: Path
    adapters: frozenset[str]
    problems: list[PolicyProblem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # None while partners.yaml / catalogue.yaml is unusable: nothing is checked against it.
    partner_ids: dict[str, int] | None = None
    source_ids: set[str] = field(default_factory=set)
    offered: dict[str, set[str]] | None = None
    partners: dict[PartnerId, Partner] = field(default_factory=dict)
    catalogue: dict[PartnerId, dict[FieldName, CatalogueField]] = field(default_factory=dict)
    headers: list[_Header] = field(default_factory=list)
    agreements: list[Agreement] = field(default_factory=list)

    def run(self) -> PolicySet | None:
        if not self.root.is_dir():
            what = "is not a directory" if self.root.exists() else "does not exist"
            self.reporter(str(self.root))(None, f"the policy directory {what}")
            return None
        self.read_partners()
        self.read_catalogue()
        self.read_agreements()
        self.check_versions()
        if self.problems:
            return None
        agreements = tuple(sorted(self.agreements, key=lambda a: (a.id, a.version)))
        return PolicySet(partners=self.partners, catalogue=self.catalogue, agreements=agreements)

    def sorted_problems(self) -> list[PolicyProblem]:
        """Problems in the order the files were read, then by line."""
        rank = {name: index for index, name in enumerate(self.files)}
        return sorted(self.problems, key=lambda p: (rank[p.file], p.line or 0))

    def reporter(self, file: str) -> Reporter:
        if file not in self.files:
            self.files.append(file)
        return Reporter(file, self.problems)

    def read(self, report: Reporter) -> object | None:
        """The file's one YAML document, or ``None`` (reported) when there is none."""
        try:
            text = (self.root / report.file).read_text(encoding="utf-8")
        except FileNotFoundError:
            report(None, "the file is missing")
            return None
        except UnicodeDecodeError:
            report(None, "the file is not UTF-8 text")
            return None
        except OSError as error:
            report(None, f"the file cannot be read: {error.strerror}")
            return None
        try:
            loader = _LineLoader(text)  # the reader refuses control characters right here
            document: object = loader.get_single_data()
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            report(mark.line + 1 if mark else None, f"YAML syntax error: {error.problem or error}")
            return None
        except yaml.reader.ReaderError as error:  # a control character, which YAML forbids
            line = text.count("\n", 0, error.position) + 1
            report(line, f"YAML syntax error: {error.reason} (#x{error.character:04x})")
            return None
        loader.dispose()
        for line, key in loader.repeated_keys:
            report(line, f"key {describe(key)} appears twice in the same mapping")
        if document is None:
            report(None, "the file is empty")
        elif not isinstance(document, LineMap):
            line = document.line if isinstance(document, LineSeq) else 1
            report(
                line, f"the file must hold a mapping of keys to values, not {describe(document)}"
            )
            return None
        return document

    def top(self, file: str, key: str, kind: type[T], rule: str) -> tuple[Reporter, T] | None:
        """The value under the one top-level ``key`` of ``partners.yaml``/``catalogue.yaml``."""
        report = self.reporter(file)
        document = self.read(report)
        if not isinstance(document, LineMap):
            return None
        entry = Entry(report, document, file)
        entry.keys((key,))
        value = entry.get(key, lambda v: v if isinstance(v, kind) else None, rule)
        return None if value is None else (report, value)

    # partners.yaml

    def read_partners(self) -> None:
        found = self.top(PARTNERS_FILE, "partners", LineSeq, "a list of partners")
        if found is None:
            return
        report, entries = found
        self.partner_ids = {}
        for node, line in entries.with_lines():
            if isinstance(node, LineMap):
                self.read_partner(report, node)
            else:
                rule = "a mapping with id, name and kind"
                report(line, f"each partner must be {rule}, not {describe(node)}")

    def read_partner(self, report: Reporter, node: LineMap) -> None:
        label = f"partner '{node['id']}'" if isinstance(node.get("id"), str) else "a partner"
        entry = Entry(report, node, label)
        entry.keys(("id", "name", "kind"), ("source",))
        partner_id = entry.get("id", as_slug, SLUG_RULE)
        name, kind = entry.get("name", as_text, "text"), entry.get("kind", as_text, "text")
        if partner_id is not None and self.partner_ids is not None:
            if partner_id in self.partner_ids:
                first = self.partner_ids[partner_id]
                report(
                    entry.line("id"), f"partner id '{partner_id}' is already used on line {first}"
                )
            else:
                self.partner_ids[partner_id] = entry.line("id")
        source = None
        if entry.has("source"):
            if partner_id is not None:
                self.source_ids.add(partner_id)
            if partner_id == HUB_PARTNER:
                report(
                    entry.line("source"),
                    "partner 'hub' is the hub's operator and cannot be a source",
                )
            source = self.read_source(entry, label)
        if partner_id is not None and name is not None and kind is not None:
            pid = PartnerId(partner_id)
            self.partners.setdefault(pid, Partner(pid, name, kind, source))

    def read_source(self, partner: Entry, label: str) -> SourceConfig | None:
        node = partner.mapping("source", "a mapping with adapter and base_url")
        if node is None:
            return None
        entry = Entry(partner.report, node, f"the source of {label}")
        hint = "; adapter-specific settings go under 'options'"
        entry.keys(("adapter", "base_url"), ("timeout_s", "options"), hint)
        adapter = entry.get("adapter", as_text, "the name of an adapter")
        if adapter is not None and adapter not in self.adapters:
            known = ", ".join(sorted(self.adapters))
            entry.report(
                entry.line("adapter"), f"adapter '{adapter}' is not available (known: {known})"
            )
            adapter = None
        base_url = entry.get("base_url", as_text, "an http:// or https:// URL")
        if base_url is not None and (problem := url_problem(base_url)) is not None:
            entry.report(entry.line("base_url"), f"'base_url' {problem}, not {describe(base_url)}")
            base_url = None
        timeout_s = (
            entry.get("timeout_s", as_seconds, "a number of seconds above 0")
            if "timeout_s" in node
            else DEFAULT_TIMEOUT_S
        )
        options = entry.mapping("options", "a mapping of adapter settings")
        if options is not None and not all(isinstance(key, str) for key in options):
            entry.report(entry.line("options"), "the keys under 'options' must be text")
        if adapter is None or base_url is None or timeout_s is None:
            return None
        plain_options = {str(key): plain(value) for key, value in (options or {}).items()}
        return SourceConfig(adapter, base_url, timeout_s, plain_options)

    # catalogue.yaml

    def read_catalogue(self) -> None:
        rule = "a mapping of source partner ids to lists of fields"
        found = self.top(CATALOGUE_FILE, "fields", LineMap, rule)
        if found is None:
            return
        report, by_source = found
        self.offered = {}
        for source, entries in by_source.items():
            line = by_source.line_of(source)
            if not isinstance(source, str):
                report(line, f"{describe(source)} is not a partner id")
                continue
            if self.partner_ids is not None and source not in self.partner_ids:
                report(line, f"'{source}' is not a partner in partners.yaml")
            elif self.partner_ids is not None and source not in self.source_ids:
                report(
                    line,
                    f"partner '{source}' has no source in partners.yaml, so it offers no fields",
                )
            if not isinstance(entries, LineSeq):
                report(line, f"the fields of '{source}' must be a list, not {describe(entries)}")
                continue
            offered = self.offered.setdefault(source, set())
            first_line: dict[str, int] = {}
            for node, item_line in entries.with_lines():
                if not isinstance(node, LineMap):
                    rule = "a mapping with name, category and special"
                    report(
                        item_line, f"each field of '{source}' must be {rule}, not {describe(node)}"
                    )
                    continue
                name = self.read_catalogue_field(
                    Entry(report, node, f"a field of '{source}'"), source
                )
                if name is not None and name in first_line:
                    where = f"(first on line {first_line[name]})"
                    report(item_line, f"field '{name}' is listed twice for '{source}' {where}")
                elif name is not None:
                    first_line[name] = item_line
                    offered.add(name)

    def read_catalogue_field(self, entry: Entry, source: str) -> str | None:
        entry.keys(("name", "category", "special"))
        name = entry.get("name", as_field_name, FIELD_RULE)
        category = entry.get("category", as_text, "text")
        special = entry.get("special", as_flag, "true or false")
        if name is not None and category is not None and special is not None:
            pid, field_name = PartnerId(source), FieldName(name)
            fields = self.catalogue.setdefault(pid, {})
            fields.setdefault(field_name, CatalogueField(pid, field_name, category, special))
        return name

    def is_special(self, source: str, name: str) -> bool:
        found = self.catalogue.get(PartnerId(source), {}).get(FieldName(name))
        return found is not None and found.special

    # agreements/*.yaml

    def read_agreements(self) -> None:
        directory = self.root / AGREEMENTS_DIR
        if not directory.is_dir():
            self.reporter(AGREEMENTS_DIR)(None, "the agreements directory is missing")
            return
        for path in sorted(directory.iterdir()):
            file = f"{AGREEMENTS_DIR}/{path.name}"
            if path.suffix == ".yml":
                self.reporter(file)(None, "not read: agreement files must end in .yaml")
            elif path.suffix == ".yaml" and path.is_file():
                report = self.reporter(file)
                document = self.read(report)
                if isinstance(document, LineMap):
                    self.read_agreement(Entry(report, document, "the agreement"))

    def read_agreement(self, entry: Entry) -> None:
        entry.keys(_AGREEMENT_REQUIRED, _AGREEMENT_OPTIONAL)
        agreement_id = entry.get("id", as_slug, SLUG_RULE)
        version = entry.get("version", as_count, "a whole number of at least 1")
        title = entry.get("title", as_text, "text")
        provider = self.provider(entry)
        recipients = self.recipients(entry, provider)
        purpose = entry.get("purpose", as_slug, SLUG_RULE)
        legal_basis = entry.get("legal_basis", as_text, "text")
        condition = entry.get("special_category_condition", as_text, "text", nullable=True)
        fields = self.fields(entry, provider)
        roles = entry.items("roles", "role", as_slug, SLUG_RULE)
        consent_required = entry.get("consent_required", as_flag, "true or false")
        period = self.period(entry)
        retention_days = entry.get("retention_days", as_count, "a whole number of at least 1")
        if agreement_id is not None and version is not None:
            self.headers.append(
                _Header(
                    entry.report.file,
                    agreement_id,
                    version,
                    entry.line("version"),
                    period,
                    provider,
                    entry.line("provider"),
                )
            )
        if (
            agreement_id is None
            or version is None
            or title is None
            or provider is None
            or recipients is None
            or purpose is None
            or legal_basis is None
            or fields is None
            or roles is None
            or consent_required is None
            or period is None
            or retention_days is None
        ):
            return
        self.agreements.append(
            Agreement(
                id=agreement_id,
                version=version,
                title=title,
                provider=PartnerId(provider),
                recipients=frozenset(PartnerId(r) for r, _ in recipients),
                purpose=Purpose(purpose),
                legal_basis=legal_basis,
                special_category_condition=condition,
                fields=frozenset(FieldName(f) for f, _ in fields),
                roles=frozenset(Role(r) for r, _ in roles),
                consent_required=consent_required,
                valid_from=period[0],
                valid_until=period[1],
                retention_days=retention_days,
            )
        )

    def provider(self, entry: Entry) -> str | None:
        provider = entry.get("provider", as_slug, SLUG_RULE)
        if provider is None or self.partner_ids is None:
            return provider
        if provider not in self.partner_ids:
            entry.report(
                entry.line("provider"), f"provider '{provider}' is not a partner in partners.yaml"
            )
            return None
        if provider not in self.source_ids:
            message = f"provider '{provider}' is not a source: partners.yaml gives it no 'source'"
            entry.report(entry.line("provider"), message)
            return None
        return provider

    def recipients(self, entry: Entry, provider: str | None) -> list[tuple[str, int]] | None:
        recipients = entry.items("recipients", "recipient", as_slug, SLUG_RULE)
        for recipient, line in recipients or ():
            if self.partner_ids is not None and recipient not in self.partner_ids:
                entry.report(line, f"recipient '{recipient}' is not a partner in partners.yaml")
                recipients = None
            elif recipient == provider:
                entry.report(line, f"recipient '{recipient}' is the provider itself")
                recipients = None
        return recipients

    def fields(self, entry: Entry, provider: str | None) -> list[tuple[str, int]] | None:
        fields = entry.items("fields", "field", as_field_name, FIELD_RULE)
        if fields is None or provider is None or self.offered is None:
            return fields
        offered = self.offered.get(provider, set())
        for name, line in fields:
            if name not in offered:
                entry.report(
                    line,
                    f"field '{name}' is not in the catalogue of '{provider}' in catalogue.yaml",
                )
        special = [(name, line) for name, line in fields if self.is_special(provider, name)]
        if special and not entry.has("special_category_condition"):
            # GDPR Art. 9 data needs an Art. 9(2) condition besides the Art. 6 legal basis.
            names = ", ".join(name for name, _ in special)
            message = (
                f"special-category (GDPR Art. 9) data needs a 'special_category_condition': {names}"
            )
            entry.report(special[0][1], message)
        return fields

    @staticmethod
    def period(entry: Entry) -> Period | None:
        valid_from = entry.get("valid_from", as_day, "a date written YYYY-MM-DD")
        valid_until = entry.get("valid_until", as_day, "a date written YYYY-MM-DD", nullable=True)
        if valid_from is None or (valid_until is None and entry.has("valid_until")):
            return None
        if valid_until is not None and valid_until < valid_from:
            message = f"valid_until {valid_until} is before valid_from {valid_from}"
            entry.report(entry.line("valid_until"), message)
            return None
        return valid_from, valid_until

    # across agreement files

    def check_same_provider(self, ordered: list[_Header]) -> None:
        """Versions replace each other, so they must speak of the same source's data."""
        first = next((h for h in ordered if h.provider is not None), None)
        for header in ordered:
            if first is not None and header.provider not in {None, first.provider}:
                self.reporter(header.file)(
                    header.provider_line,
                    f"version {header.version} of agreement '{header.id}' has provider "
                    f"'{header.provider}', but version {first.version} ({first.file}) has "
                    f"'{first.provider}': every version of an agreement has the same provider",
                )

    def check_versions(self) -> None:
        """One file per (id, version), and no version hidden for good behind a higher one.

        The highest version valid on a day is in force (CONTRACT.md 3), so a lower version
        whose whole period a higher one covers can never apply: surely a mistake.
        """
        by_id: dict[str, dict[int, _Header]] = {}
        for header in self.headers:
            versions = by_id.setdefault(header.id, {})
            first = versions.setdefault(header.version, header)
            if first is not header:
                message = (
                    f"agreement '{header.id}' version {header.version} is already in {first.file}"
                )
                self.reporter(header.file)(header.line, message)
        for versions in by_id.values():
            ordered = [versions[number] for number in sorted(versions)]
            self.check_same_provider(ordered)
            for index, lower in enumerate(ordered):
                covering = next(
                    (
                        higher
                        for higher in ordered[index + 1 :]
                        if lower.period and higher.period and _covers(higher.period, lower.period)
                    ),
                    None,
                )
                if covering is not None:
                    self.reporter(lower.file)(
                        lower.line,
                        f"version {lower.version} of agreement '{lower.id}' can never be in force: "
                        f"version {covering.version} ({covering.file}) is valid on every day it is",
                    )
