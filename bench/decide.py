"""Decision speed (issue #4): ``hub.policy.decide.decide`` against OPA and pycasbin.

The demo network's policy directory is loaded as the hub loads it
(``hub.bootstrap.load_policies``), and THE SAME RULES are expressed twice more:

- in Rego (``rules/decide.rego``), evaluated in-process by OPA through the
  ``opa-golib-python-bindings`` package (OPA's Go library behind ctypes). The rule
  logic is a fixed file; the PolicySet is turned into OPA data at run time, and each
  request with the participant's consents is OPA input (``opa_``; ``opa_store_`` holds
  every consent in OPA data instead). It gives the contract's reason strings, so it is
  compared with ``decide`` reason for reason.
- as pycasbin models (``rules/casbin_agreements.conf``, ``rules/casbin_consents.conf``)
  whose policy lines are generated at run time from the PolicySet and from the consent
  store. casbin answers allow or deny, so it is compared field by field on that.

One fixed-seed workload of exchange requests over the demo network feeds all three.
Before any timing, every engine's verdict on every field of every request must equal
``decide``'s; a difference is an error, not a figure. Then each engine runs whole
passes over its pre-built inputs, interleaved round by round, and only the decision
call is inside the timed loop.
"""

from __future__ import annotations

import functools
import gc
import importlib.metadata
import json
import os
import random
import re
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Figures, percentile, rounded, stopwatch
from consent.model import Consent
from hub.bootstrap import load_policies
from hub.domain.agreements import Agreement, PolicySet
from hub.domain.exchange import Actor, ExchangeRequest, Reason
from hub.domain.ids import FieldName, Insz, PartnerId, Purpose, Role
from hub.policy.decide import brussels_day, decide
from hub.settings import Settings

RULES = Path(__file__).with_name("rules")
REPO = Path(__file__).resolve().parent.parent
SEED = 4
"""Issue #4: the workload is the same on every run and every machine."""
WORKLOAD = 400
"""Distinct requests: every recipient in every role of every agreement, then a random mix."""
PARTICIPANTS = 40
REGO_QUERY = "ketenhub.decide.verdicts"

Verdicts = tuple[str | None, ...]
"""Per requested field: the reason it is withheld, or None when it may be disclosed."""

# The moments requests are decided at, with their weight in the mix. Two sit on a
# Brussels midnight that is not the UTC one (a new agreement version starts, every
# agreement ends), two fall outside every agreement's validity.
MOMENTS: tuple[tuple[datetime, int], ...] = (
    (datetime(2026, 6, 15, 8, 0, tzinfo=UTC), 8),
    (datetime(2026, 11, 20, 14, 45, tzinfo=UTC), 5),
    (datetime(2026, 2, 16, 9, 30, tzinfo=UTC), 3),
    (datetime(2026, 3, 31, 22, 30, tzinfo=UTC), 1),  # 1 April in Brussels
    (datetime(2027, 12, 31, 23, 30, tzinfo=UTC), 1),  # 1 January 2028 in Brussels
    (datetime(2025, 12, 31, 22, 30, tzinfo=UTC), 1),
)
NO_SUCH_FIELD = FieldName("made.up_field")
NO_SUCH_ROLE = Role("intern")
NO_SUCH_PURPOSE = Purpose("research")


@dataclass(frozen=True, slots=True)
class Case:
    """One request of the workload, as the exchange service would hand it to ``decide``."""

    request: ExchangeRequest
    pseudonym: str
    consents: tuple[Consent, ...]
    """The participant's consents, all of them: ``decide`` selects what counts."""
    now: datetime


@dataclass(frozen=True, slots=True)
class Network:
    policies: PolicySet
    partners: tuple[PartnerId, ...]
    sources: tuple[PartnerId, ...]
    roles: tuple[Role, ...]
    purposes: tuple[Purpose, ...]


# -- the workload -------------------------------------------------------------------


def load_network() -> Network:
    """The policy directory as the hub loads it (``KETENHUB_POLICY_DIR``, else ./policies)."""
    policy_dir = os.environ.get("KETENHUB_POLICY_DIR") or str(REPO / "policies")
    policies = load_policies(Settings.from_env({"KETENHUB_POLICY_DIR": policy_dir}, cwd=REPO))
    partners = tuple(sorted(policies.partners))
    return Network(
        policies=policies,
        partners=partners,
        sources=tuple(p for p in partners if policies.is_source(p)),
        roles=tuple(sorted({r for a in policies.agreements for r in a.roles})),
        purposes=tuple(sorted({a.purpose for a in policies.agreements})),
    )


def _insz(rng: random.Random) -> Insz:
    """A national register number of someone born 1960-1999 (the pre-2000 check)."""
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(40 * 365))
    body = f"{born:%y%m%d}{rng.randrange(1, 998):03d}"
    return Insz.parse(f"{body}{97 - int(body) % 97:02d}")


class _Workload:
    """The fixed-seed draw behind ``build_workload``: participants, consents, requests."""

    def __init__(self, network: Network, seed: int) -> None:
        self.network = network
        self.rng = random.Random(seed)
        self.ids = iter(range(1_000_000))
        self.catalogue = {s: sorted(network.policies.fields_of(s)) for s in network.sources}
        self.everywhere = sorted({f for fields in self.catalogue.values() for f in fields})
        self.people = [
            (_insz(self.rng), f"pseudonym-{n:03d}", self.consents(f"pseudonym-{n:03d}"))
            for n in range(PARTICIPANTS)
        ]
        self.cases: dict[tuple[object, ...], Case] = {}

    # consents

    def consents(self, pseudonym: str) -> tuple[Consent, ...]:
        """Some for each consent-bound agreement's recipients: active, lapsed, revoked."""
        rng = self.rng
        found: list[Consent] = []
        for agreement in self.network.policies.agreements:
            if not agreement.consent_required:
                continue
            for recipient in sorted(agreement.recipients):
                if rng.random() > 0.6:
                    continue
                granted = datetime(2025, 11, 1, tzinfo=UTC) + timedelta(
                    days=rng.randrange(90), seconds=rng.randrange(86_400)
                )
                # Sometimes a history: an older word on the same fields, then a newer one.
                for _ in range(2 if rng.random() < 0.25 else 1):
                    found.append(self.consent(pseudonym, recipient, agreement, granted))
                    granted += timedelta(days=rng.randrange(1, 20))
                if rng.random() < 0.1:  # given for another purpose: never counts here
                    other = next(
                        p
                        for p in (*self.network.purposes, NO_SUCH_PURPOSE)
                        if p != agreement.purpose
                    )
                    wrong = self.consent(pseudonym, recipient, agreement, granted)
                    found.append(replace(wrong, purpose=other, revoked_at=None))
        return tuple(found)

    def consent(
        self, pseudonym: str, recipient: PartnerId, agreement: Agreement, granted: datetime
    ) -> Consent:
        fields = sorted(agreement.fields)
        kind = self.rng.choices(("open", "long", "short", "revoked"), weights=(3, 3, 2, 2))[0]
        valid_until = {
            "open": None,
            "long": datetime(2027, 6, 30, 22, 0, tzinfo=UTC),
            "short": datetime(2026, 4, 30, 22, 0, tzinfo=UTC),  # lapses between the moments
            "revoked": datetime(2027, 6, 30, 22, 0, tzinfo=UTC),
        }[kind]
        return Consent(
            id=f"c-{next(self.ids):05d}",
            participant=pseudonym,
            recipient=recipient,
            purpose=agreement.purpose,
            fields=frozenset(self.rng.sample(fields, self.rng.randint(1, len(fields)))),
            granted_at=granted,
            valid_until=valid_until,
            revoked_at=granted + timedelta(days=3) if kind == "revoked" else None,
            recorded_by=recipient,
        )

    # requests

    def fields_for(self, source: PartnerId, listed: Sequence[FieldName]) -> tuple[FieldName, ...]:
        rng = self.rng
        chosen = set(rng.sample(listed, rng.randint(1, len(listed)))) if listed else set()
        outside = [f for f in self.catalogue[source] if f not in listed]
        if outside and (not chosen or rng.random() < 0.3):
            chosen.add(rng.choice(outside))  # in the catalogue, not in the agreement
        if rng.random() < 0.05:
            chosen.add(rng.choice(self.everywhere))  # another source's field: unknown here
        if rng.random() < 0.03:
            chosen.add(NO_SUCH_FIELD)
        ordered = sorted(chosen)
        rng.shuffle(ordered)
        return tuple(ordered)

    def add(
        self,
        requester: PartnerId,
        source: PartnerId,
        purpose: Purpose,
        role: Role,
        fields: tuple[FieldName, ...],
    ) -> None:
        insz, pseudonym, consents = self.rng.choice(self.people)
        moments, weights = zip(*MOMENTS, strict=True)
        now = self.rng.choices(moments, weights)[0]
        request = ExchangeRequest(
            requester=requester,
            participant=insz,
            source=source,
            purpose=purpose,
            fields=fields,
            actor=Actor(role=role, id=f"u-{self.rng.randrange(1000):03d}"),
        )
        key = (requester, source, purpose, role, fields, pseudonym, now)
        self.cases.setdefault(key, Case(request, pseudonym, consents, now))

    def every_recipient_and_role(self) -> None:
        """All of an agreement's fields and one it does not list, for each version."""
        for a in sorted(self.network.policies.agreements, key=lambda a: (a.id, a.version)):
            outside = [f for f in self.catalogue[a.provider] if f not in a.fields]
            fields = (*sorted(a.fields), *outside[:1])
            for requester in sorted(a.recipients):
                for role in sorted(a.roles):
                    self.add(requester, a.provider, a.purpose, role, fields)

    def one_of_the_mix(self) -> None:
        """Mostly what an agreement allows; else a wrong role, purpose, requester or all."""
        rng, network = self.rng, self.network
        a = rng.choice(sorted(network.policies.agreements, key=lambda a: (a.id, a.version)))
        requester = rng.choice(sorted(a.recipients))
        source, purpose, role = a.provider, a.purpose, rng.choice(sorted(a.roles))
        kinds = ("legit", "role", "purpose", "requester", "anything")
        kind = rng.choices(kinds, weights=(6, 1, 1, 1, 1))[0]
        if kind == "role":
            role = rng.choice([r for r in (*network.roles, NO_SUCH_ROLE) if r not in a.roles])
        elif kind == "purpose":
            purpose = rng.choice([p for p in (*network.purposes, NO_SUCH_PURPOSE) if p != purpose])
        elif kind == "requester":
            requester, source = rng.choice(network.partners), rng.choice(network.sources)
        elif kind == "anything":
            requester, source = rng.choice(network.partners), rng.choice(network.sources)
            purpose = rng.choice((*network.purposes, NO_SUCH_PURPOSE))
            role = rng.choice((*network.roles, NO_SUCH_ROLE))
        listed = sorted(a.fields) if source == a.provider else []
        self.add(requester, source, purpose, role, self.fields_for(source, listed))


def build_workload(network: Network, size: int = WORKLOAD, seed: int = SEED) -> list[Case]:
    """``size`` distinct requests: every recipient in every role of every agreement version,
    then a fixed-seed mix of allowed requests and ones with a wrong role, purpose, source or
    field, for participants with and without matching, lapsed or revoked consents."""
    draw = _Workload(network, seed)
    draw.every_recipient_and_role()
    while len(draw.cases) < size:
        draw.one_of_the_mix()
    return list(draw.cases.values())


# -- our engine ---------------------------------------------------------------------

OurInput = tuple[ExchangeRequest, tuple[Consent, ...], datetime]


def our_inputs(cases: Sequence[Case]) -> list[OurInput]:
    return [(c.request, c.consents, c.now) for c in cases]


def our_verdicts(policies: PolicySet, item: OurInput) -> Verdicts:
    request, consents, now = item
    decision = decide(request, policies, consents, now)
    return tuple(None if v.reason is None else v.reason.value for v in decision.verdicts)


def our_pass(policies: PolicySet, inputs: Sequence[OurInput]) -> Callable[[], None]:
    def run() -> None:
        for request, consents, now in inputs:
            decide(request, policies, consents, now)

    return run


# -- OPA ----------------------------------------------------------------------------


def _nanoseconds(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def _day_number(day: date | None) -> int | None:
    return None if day is None else day.year * 10000 + day.month * 100 + day.day


def _members(names: Iterable[str]) -> dict[str, bool]:
    """A frozenset as OPA data: an object, so that membership is a lookup."""
    return dict.fromkeys(sorted(names), True)


def opa_data(policies: PolicySet) -> dict[str, Any]:
    """The PolicySet as OPA data, indexed as PolicySet indexes it."""

    def agreement(a: Agreement) -> dict[str, Any]:
        return {
            "id": a.id,
            "version": a.version,
            "provider": a.provider,
            "purpose": a.purpose,
            "consent_required": a.consent_required,
            "recipients": _members(a.recipients),
            "fields": _members(a.fields),
            "roles": _members(a.roles),
            "valid_from": _day_number(a.valid_from),
            "valid_until": _day_number(a.valid_until),
        }

    versions: defaultdict[str, list[Agreement]] = defaultdict(list)
    for a in policies.agreements:
        versions[a.id].append(a)
    return {
        "catalogue": {s: _members(fields) for s, fields in policies.catalogue.items()},
        "by_provider": {
            p: [agreement(a) for a in policies.provided_by(p)]
            for p in sorted({a.provider for a in policies.agreements})
        },
        "versions": {
            i: [agreement(a) for a in sorted(vs, key=lambda a: a.version, reverse=True)]
            for i, vs in versions.items()
        },
    }


def opa_consent(c: Consent) -> dict[str, Any]:
    return {
        "id": c.id,
        "recipient": c.recipient,
        "purpose": c.purpose,
        "fields": _members(c.fields),
        "granted_ns": _nanoseconds(c.granted_at),
        "valid_until_ns": None if c.valid_until is None else _nanoseconds(c.valid_until),
        "revoked": c.revoked_at is not None,
    }


def opa_input(case: Case, *, with_consents: bool) -> dict[str, Any]:
    r = case.request
    found: dict[str, Any] = {
        "requester": r.requester,
        "source": r.source,
        "purpose": r.purpose,
        "role": r.actor.role,
        "fields": list(r.fields),
        "now_ns": _nanoseconds(case.now),
        "participant": case.pseudonym,
    }
    if with_consents:
        found["consents"] = [opa_consent(c) for c in case.consents]
    return found


@dataclass
class Opa:
    engine: Any
    """An ``opa_bindings.OpaEngine`` with the Rego module and the PolicySet loaded."""
    name: str

    @classmethod
    def load(cls, policies: PolicySet, consents: Mapping[str, Sequence[Consent]]) -> Opa:
        """``consents`` by pseudonym go into data; empty: requests bring their own."""
        from opa_bindings import OpaEngine  # noqa: PLC0415 - optional: the bench extra

        engine = OpaEngine()
        engine.add_policy("decide.rego", (RULES / "decide.rego").read_text(encoding="utf-8"))
        data = opa_data(policies)
        if consents:
            data["consents"] = {p: [opa_consent(c) for c in cs] for p, cs in consents.items()}
        engine.add_data(data, path="ketenhub")
        return cls(engine, _opa_name())

    def verdicts(self, item: dict[str, Any]) -> Verdicts:
        return tuple(self.engine.eval_document(REGO_QUERY, item))

    def run_pass(self, inputs: Sequence[dict[str, Any]]) -> Callable[[], None]:
        evaluate = self.engine.eval_document

        def run() -> None:
            for item in inputs:
                evaluate(REGO_QUERY, item)

        return run


@functools.cache
def _opa_name() -> str:
    """The binding's version and the OPA module version compiled into its library."""
    import opa_bindings  # noqa: PLC0415 - optional: the bench extra

    version = importlib.metadata.version("opa-golib-python-bindings")
    library = Path(opa_bindings.__file__).with_name("libopabridge.so")
    found = re.search(rb"\tgithub.com/open-policy-agent/opa\t(v[0-9.]+)", library.read_bytes())
    inside = f", OPA {found.group(1).decode()}" if found else ""
    return f"opa-golib-python-bindings {version} (in-process Go library{inside})"


# -- casbin -------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    """Fixed width and UTC, so that casbin's string comparison orders moments."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def in_force_stretches(policies: PolicySet) -> list[tuple[Agreement, date, date]]:
    """For each agreement version, the stretches of days on which it is the highest valid
    version of its id: casbin's matcher cannot take a maximum, so the policy says when."""
    versions: defaultdict[str, list[Agreement]] = defaultdict(list)
    for a in policies.agreements:
        versions[a.id].append(a)
    stretches: list[tuple[Agreement, date, date]] = []
    for group in versions.values():
        cuts = sorted(
            {a.valid_from for a in group}
            | {a.valid_until + timedelta(days=1) for a in group if a.valid_until is not None}
        )
        ends = [nxt - timedelta(days=1) for nxt in cuts[1:]] + [date.max]
        for first, last in zip(cuts, ends, strict=True):
            valid = [a for a in group if a.valid_on(first)]
            if not valid:
                continue
            top = max(valid, key=lambda a: a.version)
            if stretches and stretches[-1][0] is top and stretches[-1][2] + timedelta(1) == first:
                stretches[-1] = (top, stretches[-1][1], last)
            else:
                stretches.append((top, first, last))
    return stretches


def casbin_agreement_lines(policies: PolicySet) -> tuple[list[list[str]], list[list[str]]]:
    """``p`` and ``g`` lines of ``casbin_agreements.conf``; agreement-free lines first."""
    p_lines: list[list[str]] = []
    g_lines: set[tuple[str, str, str]] = set()
    for a, first, last in in_force_stretches(policies):
        unknown = a.fields - set(policies.fields_of(a.provider))
        if unknown:  # the loader refuses this; the casbin model relies on it
            raise RuntimeError(f"{a.ref} lists fields outside the catalogue: {sorted(unknown)}")
        consent = "yes" if a.consent_required else "no"
        p_lines.append([a.ref, a.provider, a.purpose, consent, first.isoformat(), last.isoformat()])
        g_lines.update((r, a.ref, "recipient") for r in a.recipients)
        g_lines.update((f, a.ref, "field") for f in a.fields)
        g_lines.update((r, a.ref, "role") for r in a.roles)
    p_lines.sort(key=lambda line: (line[3], line))
    return p_lines, [list(line) for line in sorted(g_lines)]


def casbin_consent_lines(consents: Iterable[tuple[str, Consent]]) -> list[list[str]]:
    """``p`` lines of ``casbin_consents.conf``: one per consent and field."""
    return sorted(
        [
            pseudonym,
            c.recipient,
            c.purpose,
            f,
            "" if c.valid_until is None else _stamp(c.valid_until),
            "yes" if c.revoked_at is not None else "no",
        ]
        for pseudonym, c in consents
        for f in c.fields
    )


@dataclass(frozen=True, slots=True)
class CasbinQuery:
    requester: str
    source: str
    purpose: str
    role: str
    day: str
    """The Brussels calendar day of ``now``, computed while building the input."""
    pseudonym: str
    now: str
    fields: tuple[str, ...]


def casbin_input(case: Case) -> CasbinQuery:
    r = case.request
    return CasbinQuery(
        requester=r.requester,
        source=r.source,
        purpose=r.purpose,
        role=r.actor.role,
        day=brussels_day(case.now).isoformat(),
        pseudonym=case.pseudonym,
        now=_stamp(case.now),
        fields=tuple(r.fields),
    )


@dataclass
class Casbin:
    agreements: Any
    """A ``casbin.FastEnforcer`` of ``casbin_agreements.conf``."""
    consents: Any
    """A ``casbin.FastEnforcer`` of ``casbin_consents.conf``, holding every consent."""
    name: str
    lines: int

    @classmethod
    def load(cls, policies: PolicySet, store: Mapping[str, Sequence[Consent]]) -> Casbin:
        """``store``: every participant's consents, by pseudonym."""
        import casbin  # noqa: PLC0415 - optional: the bench extra

        p_lines, g_lines = casbin_agreement_lines(policies)
        # Indexed on the request tokens that line up with policy tokens: source, purpose
        # and consent; participant, recipient, purpose and field.
        agreements = casbin.FastEnforcer(
            str(RULES / "casbin_agreements.conf"), cache_key_order=[1, 2, 3]
        )
        agreements.add_policies(p_lines)
        agreements.add_grouping_policies(g_lines)
        consent_lines = casbin_consent_lines((p, c) for p, cs in store.items() for c in cs)
        consents = casbin.FastEnforcer(
            str(RULES / "casbin_consents.conf"), cache_key_order=[0, 1, 2, 3]
        )
        consents.add_policies(consent_lines)
        name = f"casbin {importlib.metadata.version('casbin')} (FastEnforcer)"
        return cls(agreements, consents, name, len(p_lines) + len(g_lines) + len(consent_lines))

    def verdicts(self, q: CasbinQuery) -> tuple[bool, ...]:
        allow = self.agreements.enforce
        consented = self.consents.enforce
        return tuple(
            allow(q.requester, q.source, q.purpose, "no", f, q.role, q.day)
            or (
                allow(q.requester, q.source, q.purpose, "yes", f, q.role, q.day)
                and consented(q.pseudonym, q.requester, q.purpose, f, q.now)
            )
            for f in q.fields
        )

    def run_pass(self, inputs: Sequence[CasbinQuery]) -> Callable[[], None]:
        verdicts = self.verdicts

        def run() -> None:
            for q in inputs:
                verdicts(q)

        return run


# -- equivalence and timing ---------------------------------------------------------


def check_coverage(expected: Sequence[Verdicts]) -> Counter[str]:
    """The workload must exercise every reason ``decide`` can give before the fetch."""
    seen = Counter("allowed" if v is None else v for verdicts in expected for v in verdicts)
    missing = {r.value for r in Reason if r is not Reason.NOT_AVAILABLE} - set(seen)
    if missing or not seen["allowed"]:
        raise RuntimeError(f"the workload never yields {sorted(missing) or 'an allowed field'}")
    return seen


def check_equal(
    engine: str,
    cases: Sequence[Case],
    expected: Sequence[Sequence[object]],
    found: Sequence[Sequence[object]],
) -> None:
    for case, want, got in zip(cases, expected, found, strict=True):
        if tuple(want) != tuple(got):
            r = case.request
            raise RuntimeError(
                f"{engine} disagrees with decide() on {r.requester}->{r.source} {r.purpose} "
                f"{r.actor.role} {list(r.fields)} at {case.now.isoformat()}: "
                f"expected {list(want)}, got {list(got)}"
            )


def throughput(run_pass: Callable[[], None], requests: int, budget_s: float) -> float:
    """Decisions per second over whole passes until ``budget_s`` (at least one pass)."""
    gc.collect()
    passes = 0
    with stopwatch() as watch:
        deadline = time.perf_counter() + budget_s
        while True:
            run_pass()
            passes += 1
            if time.perf_counter() >= deadline:
                break
    return passes * requests / watch.wall_s


def latencies_us(decide_one: Callable[[Any], object], inputs: Sequence[Any]) -> list[float]:
    clock = time.perf_counter_ns
    samples: list[float] = []
    for item in inputs:
        start = clock()
        decide_one(item)
        samples.append((clock() - start) / 1000)
    return samples


@dataclass(frozen=True, slots=True)
class Contender:
    """One engine, ready: ``run_pass`` decides every request once, ``decide_one`` one of them."""

    prefix: str
    run_pass: Callable[[], None]
    decide_one: Callable[[Any], object]
    inputs: Sequence[Any]


def contenders(
    cases: Sequence[Case], policies: PolicySet, expected: Sequence[Verdicts], figures: Figures
) -> tuple[list[Contender], list[str]]:
    """Our engine and each other one that loads, after it agreed with ours on every field."""
    ours = our_inputs(cases)
    found = [
        Contender(
            "",
            our_pass(policies, ours),
            lambda item: decide(item[0], policies, item[1], item[2]),
            ours,
        )
    ]
    missing: list[str] = []
    store = {case.pseudonym: case.consents for case in cases}
    try:
        opa, opa_store = Opa.load(policies, {}), Opa.load(policies, store)
    except (ImportError, OSError) as exc:  # not installed, or its Go library does not load
        figures["opa_engine"] = None
        missing.append(f"OPA not measured ({type(exc).__name__}: {exc}).")
    else:
        figures["opa_engine"] = opa.name
        for engine, with_consents, prefix in (
            (opa, True, "opa_"),
            (opa_store, False, "opa_store_"),
        ):
            inputs = [opa_input(c, with_consents=with_consents) for c in cases]
            check_equal(engine.name, cases, expected, [engine.verdicts(i) for i in inputs])
            found.append(Contender(prefix, engine.run_pass(inputs), engine.verdicts, inputs))
            encode = latencies_us(json.dumps, inputs)
            figures[f"{prefix}input_json_us"] = rounded(statistics.fmean(encode), 2)
    try:
        casbin = Casbin.load(policies, store)
    except ImportError as exc:
        figures["casbin_engine"] = None
        missing.append(f"casbin not measured ({type(exc).__name__}: {exc}).")
    else:
        figures["casbin_engine"] = casbin.name
        figures["casbin_policy_lines"] = casbin.lines
        queries = [casbin_input(c) for c in cases]
        allowed = [tuple(v is None for v in verdicts) for verdicts in expected]
        check_equal(casbin.name, cases, allowed, [casbin.verdicts(q) for q in queries])
        found.append(Contender("casbin_", casbin.run_pass(queries), casbin.verdicts, queries))
    return found, missing


def run(*, quick: bool) -> Figures:
    network = load_network()
    policies = network.policies
    cases = build_workload(network)
    expected = [our_verdicts(policies, item) for item in our_inputs(cases)]
    seen = check_coverage(expected)
    fields = sum(seen.values())
    figures: Figures = {
        "requests": len(cases),
        "fields_per_request": rounded(fields / len(cases), 2),
        "allowed_field_share": rounded(seen["allowed"] / fields),
        "participants": PARTICIPANTS,
        "consents": sum(len(cs) for cs in {c.pseudonym: c.consents for c in cases}.values()),
    }
    ready, missing = contenders(cases, policies, expected, figures)

    # Interleaved rounds of whole passes, so that a busy moment of the machine is shared.
    rounds, budget_s = (1, 0.5) if quick else (5, 2.0)
    rates: dict[str, list[float]] = {c.prefix: [] for c in ready}
    for contender in ready:
        contender.run_pass()  # warm: caches, OPA's prepared query
    for _ in range(rounds):
        for contender in ready:
            rates[contender.prefix].append(throughput(contender.run_pass, len(cases), budget_s))
    for contender in ready:
        samples = latencies_us(contender.decide_one, contender.inputs)
        figures[f"{contender.prefix}p50_us"] = rounded(percentile(samples, 50), 1)
        figures[f"{contender.prefix}p99_us"] = rounded(percentile(samples, 99), 1)
    per_s = {prefix: statistics.median(found) for prefix, found in rates.items()}
    for prefix in ("", "opa_", "opa_store_", "casbin_"):
        figures[f"{prefix}per_s"] = rounded(per_s[prefix], 1) if prefix in per_s else None
    for prefix in ("opa_", "opa_store_", "casbin_"):
        ratio = per_s[""] / per_s[prefix] if prefix in per_s else None
        figures[f"vs_{prefix.rstrip('_')}"] = None if ratio is None else rounded(ratio, 2)
    figures["notes"] = " ".join((NOTES, *missing))
    return figures


NOTES = (
    "Before timing, every field of every request was decided by every engine: OPA's Rego "
    "had to give decide()'s exact reason string (or allow), pycasbin the same allow/deny, "
    "and the workload had to yield every pre-fetch reason. "
    "Not like-for-like: OPA's time includes the binding's JSON round trip through ctypes "
    "(opa_input_json_us is the Python encoding alone), opa_per_s hands it the "
    "participant's consents in each input as decide() gets them, opa_store_per_s and "
    "pycasbin hold every consent in the engine instead; pycasbin also gets the Brussels day "
    "computed for it and each agreement's in-force days compiled into its policy, gives no "
    "reasons, and needs up to three enforce calls per field."
)


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=2))
