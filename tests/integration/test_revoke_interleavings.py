"""A revoke blocks every exchange decided after it returned (issue #3, invariant 3), also
when both run at once: hypothesis draws the interleavings.

CONTRACT.md 3: "A revoked consent blocks every exchange decided after the revoke
returned." The hub (``hub.services.exchange``) decides on the consents as they stand,
asks the source, and then, in one write transaction, reads the consents again, decides
again and appends the audit record; a revoke is a write transaction too, and writes are
group-committed on one connection, one after the other (``hub.db.database``).

Here the real services run over a real database (the run's backend: tests/conftest.py);
the one fake is the source, whose
``fetch`` waits on an ``asyncio.Event`` per exchange that the test sets. Hypothesis
draws how many exchanges run (1-4), which fields each asks and whether some share an
``Idempotency-Key`` (so that replays are decided too), which consents are revoked, and
the order of every start, release of a source answer and revoke, each followed or not
by letting everything that can run settle (not settling puts the next action in the
same event-loop turn: an exchange's confirming transaction and a revoke in one commit
group, either one first). The Database's ``write`` is wrapped to note, in one event
log, when each transaction's work runs; the revokes note when they returned.

Asserted for every answer: no consent whose revoke returned before the exchange's last
transaction began is named by its audit record (the contract), and more strongly none
whose revoke transaction ran before it; every disclosed field is one the oracle of
tests/oracle.py allows on the consents as they stood then (exactly those, for an answer
that is not a replay); the audit record says what the answer says; and the source was
never asked for a field under a consent whose revoke had returned.

A second test moves the clock while the source is asked: an agreement version or a
consent that ended meanwhile allows nothing, as a revoke would.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import tempfile
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from consent.model import Consent
from hub import bootstrap
from hub.auth.keys import FileKeyRing
from hub.clock import FixedClock
from hub.domain.errors import ConflictError
from hub.domain.ids import FieldName, Insz, PartnerId
from hub.domain.principal import ALL_SCOPES, Principal
from hub.ports import UnitOfWork
from hub.services.exchange import Answer
from hub.settings import Settings
from tests.builders import (
    ICF,
    NOW,
    OPEN,
    PARTICIPANT,
    PLAN,
    REQUESTER,
    a_policy_set,
    a_request,
    an_agreement,
)
from tests.conftest import Backend
from tests.oracle import permit

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
FIELDS = (OPEN, PLAN, ICF)
# OPEN needs no consent; PLAN and ICF need one. Which consent covers what:
COVERS = {"icf": {ICF}, "plan": {PLAN}, "both": {PLAN, ICF}}
POLICIES = a_policy_set(
    an_agreement(id="open", fields=frozenset({OPEN})),
    an_agreement(id="consented", fields=frozenset({PLAN, ICF}), consent_required=True),
)
GTB = Principal("gtb-test", REQUESTER, ALL_SCOPES, expires_at=2**40)
KEY = "one-key"

Tag = tuple[str, object]
_running: contextvars.ContextVar[Tag | None] = contextvars.ContextVar("running", default=None)


# -- the drawn scenario ---------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    fields: tuple[tuple[FieldName, ...], ...]
    """Per exchange, the fields it asks."""
    keyed: tuple[bool, ...]
    """Per exchange, whether it sends the shared Idempotency-Key (same body)."""
    actions: tuple[tuple[str, object, bool], ...]
    """``(kind, subject, settle)``: start, release (its source answers) or revoke."""


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    count = draw(st.integers(min_value=1, max_value=4))
    keyed_fields = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True))
    keyed = tuple(draw(st.lists(st.booleans(), min_size=count, max_size=count)))
    fields = tuple(
        tuple(keyed_fields)
        if keyed[i]
        else tuple(draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)))
        for i in range(count)
    )
    revoked = draw(st.lists(st.sampled_from(sorted(COVERS)), unique=True, max_size=3))
    steps: list[tuple[str, object]] = [("x", i) for i in range(count) for _ in range(2)]
    steps += [("revoke", name) for name in revoked]
    order = draw(st.permutations(steps))
    # An exchange's first place in the order is its start, its second the release.
    seen: set[object] = set()
    named: list[tuple[str, object]] = []
    for kind, subject in order:
        if kind == "x":
            named.append(("release" if subject in seen else "start", subject))
            seen.add(subject)
        else:
            named.append((kind, subject))
    settles = draw(st.lists(st.booleans(), min_size=len(named), max_size=len(named)))
    return Plan(
        fields,
        keyed,
        tuple((k, s, settle) for (k, s), settle in zip(named, settles, strict=True)),
    )


# -- the one fake: a source whose answers the test releases --------------------------------


@dataclass
class GatedSource:
    """``SourceAdapter``: each exchange's fetch waits until the test releases it."""

    gates: dict[object, asyncio.Event] = field(default_factory=dict)
    waiting: set[object] = field(default_factory=set)
    asked: list[tuple[object, int, frozenset[FieldName]]] = field(default_factory=list)
    """``(exchange, place in the log, fields)`` of every fetch."""
    log: list[tuple[str, object]] = field(default_factory=list)

    def gate(self, exchange: object) -> asyncio.Event:
        return self.gates.setdefault(exchange, asyncio.Event())

    async def fetch(
        self, participant: Insz, fields: frozenset[FieldName]
    ) -> Mapping[FieldName, object]:
        assert participant == PARTICIPANT
        tag = _running.get()
        assert tag is not None
        self.asked.append((tag[1], len(self.log), fields))
        self.log.append(("fetch", tag[1]))
        gate = self.gate(tag[1])
        self.waiting.add(tag[1])
        try:
            await gate.wait()
        finally:
            self.waiting.discard(tag[1])
        return {f: f"value of {f}" for f in fields}

    async def aclose(self) -> None:
        return None


# -- the run --------------------------------------------------------------------------


@dataclass
class Run:
    log: list[tuple[str, object]] = field(default_factory=list)
    """``("work", tag)`` when a write transaction's work runs, ``("returned", name)``
    when a revoke returned to its caller."""
    answers: dict[int, Answer | ConflictError] = field(default_factory=dict)
    groups: dict[int, UnitOfWork] = field(default_factory=dict)
    """The unit of work each logged ``work`` ran in: one per commit group."""

    def first(self, event: tuple[str, object]) -> int | None:
        return self.log.index(event) if event in self.log else None

    def last(self, event: tuple[str, object]) -> int:
        return max(i for i, e in enumerate(self.log) if e == event)


def recording(
    write: Callable[[Callable[[UnitOfWork], T]], Coroutine[Any, Any, T]], run: Run
) -> Callable[[Callable[[UnitOfWork], T]], Coroutine[Any, Any, T]]:
    """The Database's ``write``, noting in the run's log when each transaction's work runs."""

    async def write_noting(work: Callable[[UnitOfWork], T]) -> T:
        tag = _running.get()  # the caller's, not the committer task's

        def noted(uow: UnitOfWork) -> T:
            run.log.append(("work", tag))
            run.groups[len(run.log) - 1] = uow  # one unit of work per commit group
            return work(uow)

        return await write(noted)

    return write_noting


async def play(plan: Plan, settings_: Settings, keys: FileKeyRing) -> None:
    source = GatedSource()
    container = await bootstrap.build(
        settings_,
        policies=POLICIES,
        clock=FixedClock(NOW),
        sources={PartnerId("vdab"): source},
        keys=keys,
    )
    try:
        consents: dict[str, Consent] = {}
        for name, covered in COVERS.items():
            granted = await container.consents.grant(
                GTB,
                participant=PARTICIPANT,
                recipient=REQUESTER,
                purpose=a_request().purpose,
                fields=sorted(covered),
                valid_until=NOW + timedelta(days=30),
                evidence=None,
            )
            consents[name] = granted.consent
        run = Run()
        source.log = run.log
        db = container.db
        db.write = recording(db.write, run)  # type: ignore[method-assign,assignment]
        await _act(plan, container, source, consents, run)
        await _check(plan, container, consents, run)
        _check_asked(plan, container, consents, run, source)
    finally:
        await container.aclose()


async def _act(
    plan: Plan,
    container: bootstrap.Container,
    source: GatedSource,
    consents: dict[str, Consent],
    run: Run,
) -> None:
    tasks: list[asyncio.Task[None]] = []

    async def exchange(i: int) -> None:
        _running.set(("exchange", i))
        request = a_request(*plan.fields[i])
        try:
            run.answers[i] = await container.exchange.exchange(
                request, KEY if plan.keyed[i] else None
            )
        except ConflictError as exc:  # two keyed requests at once: "send it again"
            run.answers[i] = exc
        run.log.append(("answered", i))

    async def revoke(name: str) -> None:
        _running.set(("revoke", name))
        await container.consents.revoke(GTB, consents[name].id)
        run.log.append(("returned", name))

    async def settle() -> None:
        """Until every task is done or waits for a source answer the test holds back."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 30  # a bound, not a measurement: a stuck scenario fails
        while loop.time() < give_up:
            busy = [t for t in tasks if not t.done()]
            held = {s for s in source.waiting if not source.gate(s).is_set()}
            if len(busy) == len(held):
                return
            await asyncio.sleep(0.001)
        pytest.fail("the scenario did not settle")

    for kind, subject, settled in plan.actions:
        if kind == "start":
            tasks.append(asyncio.create_task(exchange(int(str(subject)))))
        elif kind == "release":
            source.gate(subject).set()
        else:
            tasks.append(asyncio.create_task(revoke(str(subject))))
        if settled:
            await settle()
    for gate in source.gates.values():
        gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


async def _check(
    plan: Plan, container: bootstrap.Container, consents: dict[str, Consent], run: Run
) -> None:
    pseudonym = container.keys.pseudonym(PARTICIPANT)
    name_of = {c.id: name for name, c in consents.items()}
    assert set(run.answers) == set(range(len(plan.fields)))
    for i, answer in run.answers.items():
        if isinstance(answer, ConflictError):
            assert plan.keyed[i]
            continue
        decided = run.last(("work", ("exchange", i)))
        # The consents as they stood when the exchange's last transaction ran.
        revoked_then = {
            name
            for name in consents
            if (at := run.first(("work", ("revoke", name)))) is not None and at < decided
        }
        returned_then = {
            name
            for name in consents
            if (at := run.first(("returned", name))) is not None and at < decided
        }
        assert returned_then <= revoked_then
        _note_interleaving(run, i, decided)
        standing = _standing(consents, revoked_then)
        body = answer.document()
        assert answer.status in {200, 403}, body
        seq: int = body["audit_seq"]
        record = await container.db.read(lambda uow: uow.audit.get(seq))  # noqa: B023
        assert record is not None
        named = {name_of[c] for c in record.entry.consents}
        # The contract: nothing under a consent whose revoke had returned.
        assert not named & returned_then, (plan, run.log, i)
        # Stronger: nothing under a consent whose revoke had been decided.
        assert not named & revoked_then, (plan, run.log, i)
        data = body.get("data", {})
        assert record.entry.fields_disclosed == list(data)
        assert record.entry.participant == pseudonym
        assert data == {f: f"value of {f}" for f in data}
        request = a_request(*plan.fields[i])
        allowed = {
            f
            for f in request.fields
            if permit(request, f, POLICIES, standing, pseudonym, NOW).allows
        }
        if answer.replayed:
            assert set(data) <= allowed, (plan, run.log, i)
        else:
            assert set(data) == allowed, (plan, run.log, i)
        for f in set(data) - {OPEN}:  # each such field under a consent named, one that covers it
            assert any(f in COVERS[name] for name in named), (plan, run.log, i)


def _standing(consents: dict[str, Consent], revoked: set[str]) -> list[Consent]:
    return [
        dataclasses.replace(c, revoked_at=NOW) if name in revoked else c
        for name, c in consents.items()
    ]


def _check_asked(
    plan: Plan,
    container: bootstrap.Container,
    consents: dict[str, Consent],
    run: Run,
    source: GatedSource,
) -> None:
    """CONTRACT.md 2: the source is asked only for fields that may be disclosed: none
    under a consent whose revoke had returned."""
    pseudonym = container.keys.pseudonym(PARTICIPANT)
    for exchange, at, fields in source.asked:
        returned = {
            name for name in consents if (r := run.first(("returned", name))) is not None and r < at
        }
        request = a_request(*plan.fields[int(str(exchange))])
        standing = _standing(consents, returned)
        for f in fields:
            assert permit(request, f, POLICIES, standing, pseudonym, NOW).allows, (plan, run.log)


def _note_interleaving(run: Run, i: int, decided: int) -> None:
    """Hypothesis statistics: which of the interesting orders the plans reached."""
    fetched = run.first(("fetch", i))
    answered = run.last(("answered", i))
    for at, event_ in enumerate(run.log):
        if event_[0] != "work" or not isinstance(event_[1], tuple) or event_[1][0] != "revoke":
            continue
        if fetched is not None and fetched < at < decided:
            event("a revoke ran while the source was asked")
        if decided < at < answered:
            event("a revoke ran after the decision, before the answer")
        if run.groups[at] is run.groups[decided]:
            event("a revoke and the decision in one commit group")
    for at, event_ in enumerate(run.log):
        if event_[0] == "returned" and decided < at < answered:
            event("a revoke returned after the decision, before the answer")
    if isinstance(run.answers[i], Answer) and run.answers[i].replayed:  # type: ignore[union-attr]
        event("a replay")


# -- the test -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("revoke-keys")


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(plan=plans())
# The orders the contract names, always tried whatever the search finds.
@example(  # the revoke returns while the source is asked
    plan=Plan(
        ((OPEN, PLAN, ICF),),
        (False,),
        (("start", 0, True), ("revoke", "both", True), ("release", 0, True)),
    )
)
@example(  # the source answers and the revokes start in one event-loop turn
    plan=Plan(
        ((PLAN, ICF),),
        (False,),
        (
            ("start", 0, True),
            ("revoke", "icf", False),
            ("release", 0, False),
            ("revoke", "both", False),
        ),
    )
)
@example(  # an Idempotency-Key replayed after the consent it relied on was revoked
    plan=Plan(
        ((ICF,), (ICF,)),
        (True, True),
        (
            ("start", 0, True),
            ("release", 0, True),
            ("revoke", "both", True),
            ("start", 1, True),
            ("release", 1, True),
        ),
    )
)
def test_a_revoke_blocks_every_exchange_decided_after_it_returned(
    plan: Plan, backend: Backend, key_dir: Path
) -> None:
    keys = FileKeyRing.load_or_create(key_dir)
    with tempfile.TemporaryDirectory() as scratch:
        settings_ = Settings(
            policy_dir=REPO / "policies",
            database_url=backend.fresh(Path(scratch)),
            key_dir=key_dir,
            public_url="http://hub.test",
        )
        try:
            asyncio.run(play(plan, settings_, keys))
        finally:
            backend.drop_all()


# -- time passing while the source is asked -----------------------------------------------

LAST_MINUTE = datetime(2026, 6, 15, 21, 59, tzinfo=UTC)
"""23:59 in Brussels on the last day of the ``open`` agreement below."""
NEXT_DAY = LAST_MINUTE + timedelta(minutes=2)


@dataclass
class SlowSource:
    """``SourceAdapter`` that answers only after the clock passed Brussels midnight."""

    clock: FixedClock
    asked: list[frozenset[FieldName]] = field(default_factory=list)

    async def fetch(
        self, participant: Insz, fields: frozenset[FieldName]
    ) -> Mapping[FieldName, object]:
        assert participant == PARTICIPANT
        self.asked.append(fields)
        self.clock.set(NEXT_DAY)
        return {f: f"value of {f}" for f in fields}

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize(
    ("asked", "reason"), [(OPEN, "agreement-expired"), (ICF, "consent-expired")]
)
async def test_what_ends_while_the_source_is_asked_is_not_disclosed(
    asked: FieldName, reason: str, database_url: str, key_dir: Path
) -> None:
    """The decision that counts is the one recorded: an agreement or a consent that
    ended while the source was asked allows nothing, as a revoke would."""
    clock = FixedClock(LAST_MINUTE)
    source = SlowSource(clock)
    container = await bootstrap.build(
        Settings(
            policy_dir=REPO / "policies",
            database_url=database_url,
            key_dir=key_dir,
            public_url="http://hub.test",
        ),
        policies=a_policy_set(
            an_agreement(id="open", fields=frozenset({OPEN}), valid_until=LAST_MINUTE.date()),
            an_agreement(id="consented", fields=frozenset({ICF}), consent_required=True),
        ),
        clock=clock,
        sources={PartnerId("vdab"): source},
        keys=FileKeyRing.load_or_create(key_dir),
    )
    try:
        await container.consents.grant(
            GTB,
            participant=PARTICIPANT,
            recipient=REQUESTER,
            purpose=a_request().purpose,
            fields=[ICF],
            valid_until=LAST_MINUTE + timedelta(minutes=1),
            evidence=None,
        )
        answer = await container.exchange.exchange(a_request(asked), None)
        assert source.asked == [frozenset({asked})]  # allowed when it was asked
        body = answer.document()
        assert answer.status == 403, body
        assert body["withheld"] == [{"field": asked, "reason": reason}]
        seq: int = body["audit_seq"]
        record = await container.db.read(lambda uow: uow.audit.get(seq))
        assert record is not None
        assert (record.entry.decision, record.entry.fields_disclosed) == ("denied", [])
    finally:
        await container.aclose()
