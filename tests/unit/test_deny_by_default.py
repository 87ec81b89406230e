"""Deny by default (issue #3, invariant 1), checked against a deliberately simple oracle.

"No field leaves without a valid agreement version, role, purpose and, where required,
consent." For random policy sets (several partners, agreement ids with several versions
and random validity windows), random requests, random consents and a random moment,
``decide`` allows a field if and only if the oracle does, and names an agreement
version and a consent that the oracle accepts.

The oracle (tests/oracle.py) restates CONTRACT.md 3 in the plainest terms and shares
no code with ``hub.policy.decide``.

Precondition of ``decide`` (its docstring): the caller passes the participant's consents,
selected by pseudonym; consents of other participants are dropped here as the exchange
service's query does (the API test in tests/api/test_deny_by_default_api.py checks that
selection end to end).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st

from consent.model import Consent
from hub.domain.agreements import Agreement, PolicySet
from hub.domain.exchange import Actor, ExchangeRequest
from hub.domain.ids import FieldName, PartnerId, Purpose, Role
from hub.policy.decide import decide
from tests.builders import NOW, PSEUDONYM, a_consent, a_policy_set, a_request, an_agreement
from tests.oracle import BRUSSELS, permit

CATALOGUE = {
    "vdab": ("trajectory.status", "trajectory.plan", "icf.assessment"),
    "ocmw-gent": ("social_assistance.leefloon", "barriers.housing"),
    "levanto": ("internship.functioning_report",),
}
SOURCES = tuple(CATALOGUE)
RECIPIENTS = ("gtb", "cgg-vagga", "ocmw-gent", "vdab")
PARTNERS = ("gtb", "cgg-vagga")  # the ones that are not sources
ALL_FIELDS = tuple(f for fields in CATALOGUE.values() for f in fields)
UNKNOWN = ("trajectory.colour", "icf.assesment")
PURPOSES = ("trajectory-coordination", "integration-coordination")
ROLES = ("casemanager-work", "casemanager-care", "penhouder")
IDS = ("alpha", "beta", "gamma")
OTHER_PARTICIPANT = "q" * 64
TODAY = NOW.astimezone(BRUSSELS).date()


def _subset(items: tuple[str, ...], *, min_size: int = 0) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(items), min_size=min_size, max_size=len(items))


# Windows around today, so that "valid", "expired", "not yet valid" and the inclusive
# last day all occur; ``now`` moves up to four days either way, by the minute, so that
# it crosses Brussels midnight (which is not UTC midnight).
_DAY = st.integers(min_value=-4, max_value=4).map(lambda n: TODAY + timedelta(days=n))


@st.composite
def agreements(draw: st.DrawFn) -> Agreement:
    valid_from = draw(_DAY)
    length = draw(st.none() | st.integers(min_value=0, max_value=6))
    valid_until = None if length is None else valid_from + timedelta(days=length)
    provider = draw(st.sampled_from(SOURCES))
    # Mostly the provider's own fields, sometimes another source's.
    fields = draw(_subset(CATALOGUE[provider], min_size=1)) | draw(
        st.sets(st.sampled_from(ALL_FIELDS), max_size=1)
    )
    return an_agreement(
        id=draw(st.sampled_from(IDS)),
        version=draw(st.integers(min_value=1, max_value=3)),
        provider=PartnerId(provider),
        recipients=frozenset(map(PartnerId, draw(_subset(RECIPIENTS, min_size=1)))),
        purpose=Purpose(draw(st.sampled_from(PURPOSES))),
        fields=frozenset(map(FieldName, fields)),
        roles=frozenset(map(Role, draw(_subset(ROLES, min_size=1)))),
        consent_required=draw(st.booleans()),
        valid_from=valid_from,
        valid_until=valid_until,
    )


def _unique_versions(found: list[Agreement]) -> list[Agreement]:
    """The loader refuses two files with one id and version: keep the first of each."""
    seen: dict[tuple[str, int], Agreement] = {}
    for agreement in found:
        seen.setdefault((agreement.id, agreement.version), agreement)
    return list(seen.values())


POLICY_SETS = st.lists(agreements(), min_size=1, max_size=6).map(
    lambda found: a_policy_set(*_unique_versions(found), catalogue=CATALOGUE, partners=PARTNERS)
)

_MIDNIGHT = datetime.combine(TODAY, time(0, 0), tzinfo=BRUSSELS)
MOMENTS = st.integers(min_value=-4 * 24 * 60, max_value=4 * 24 * 60).map(
    lambda minutes: NOW + timedelta(minutes=minutes)
) | st.tuples(st.integers(-4, 4), st.integers(-150, 150)).map(
    # Close to a Brussels midnight, where the Brussels day and the UTC day differ.
    lambda moment: (_MIDNIGHT + timedelta(days=moment[0], minutes=moment[1])).astimezone(UTC)
)


@st.composite
def requests(draw: st.DrawFn, policies: PolicySet) -> ExchangeRequest:
    """Mostly near one of the agreements (else nearly every field is denied early), each
    coordinate sometimes anything at all."""
    near = draw(st.sampled_from(policies.agreements))

    def pick(own: tuple[str, ...] | frozenset[str], anything: tuple[str, ...]) -> str:
        return draw(
            st.sampled_from(sorted(own)) if draw(st.integers(0, 4)) else st.sampled_from(anything)
        )

    source = pick((near.provider,), SOURCES)
    fields = draw(
        st.lists(
            st.sampled_from(sorted(near.fields) + list(CATALOGUE[source]) + list(UNKNOWN)),
            min_size=1,
            max_size=5,
            unique=True,
        )
    )
    return a_request(
        *fields,
        requester=PartnerId(pick(near.recipients, RECIPIENTS)),
        source=PartnerId(source),
        purpose=Purpose(pick((near.purpose,), PURPOSES)),
        actor=Actor(Role(pick(near.roles, ROLES)), "u-1"),
    )


@st.composite
def consents(draw: st.DrawFn, request: ExchangeRequest) -> Consent:
    """Mostly about the request (so that status decides), sometimes about anything."""
    granted = NOW - timedelta(minutes=draw(st.integers(min_value=1, max_value=10 * 24 * 60)))
    until = draw(
        st.none()
        | st.integers(min_value=-5 * 24 * 60, max_value=5 * 24 * 60).map(
            lambda minutes: NOW + timedelta(minutes=minutes)
        )
    )
    about = draw(st.integers(0, 3)) > 0
    return a_consent(
        id=f"c-{draw(st.integers(min_value=0, max_value=10**6))}",
        participant=draw(st.sampled_from((PSEUDONYM, PSEUDONYM, OTHER_PARTICIPANT))),
        recipient=request.requester if about else PartnerId(draw(st.sampled_from(RECIPIENTS))),
        purpose=request.purpose if about else Purpose(draw(st.sampled_from(PURPOSES))),
        fields=frozenset(
            map(FieldName, draw(_subset(tuple(request.fields) + ALL_FIELDS[:2], min_size=1)))
        ),
        granted_at=granted,
        valid_until=until,
        revoked_at=draw(st.none() | st.just(granted + timedelta(minutes=1))),
    )


@dataclass(frozen=True)
class Scenario:
    policies: PolicySet
    request: ExchangeRequest
    consents: list[Consent]
    now: datetime


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    policies = draw(POLICY_SETS)
    request = draw(requests(policies))
    found = draw(st.lists(consents(request), max_size=6, unique_by=lambda c: c.id))
    return Scenario(policies, request, found, draw(MOMENTS))


# -- the property ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_a_field_is_allowed_exactly_when_the_oracle_allows_it(scenario: Scenario) -> None:
    policies, request, given_consents, now = (
        scenario.policies,
        scenario.request,
        scenario.consents,
        scenario.now,
    )
    own = [c for c in given_consents if c.participant == PSEUDONYM]
    decision = decide(request, policies, own, now)
    # Without this, a field left out of the verdicts would escape the comparison below.
    assert [v.field for v in decision.verdicts] == list(request.fields)
    # Consents for another recipient or purpose change no verdict at all.
    about = [c for c in own if c.recipient == request.requester and c.purpose == request.purpose]
    assert decide(request, policies, about, now) == decision
    by_ref = {a.ref: a for a in policies.agreements}
    for verdict in decision.verdicts:
        expected = permit(request, verdict.field, policies, given_consents, PSEUDONYM, now)
        assert verdict.allowed == expected.allows, (verdict, expected)
        event("allowed" if verdict.allowed else str(verdict.reason))
        if not verdict.allowed:
            assert verdict.reason is not None
            continue
        assert verdict.agreement is not None
        assert verdict.agreement.ref in expected.agreements
        assert by_ref[verdict.agreement.ref] == verdict.agreement
        if verdict.agreement.consent_required:
            assert verdict.consent_id in expected.consents
        else:
            assert verdict.consent_id is None


def test_the_oracle_agrees_on_each_consent_state() -> None:
    """The oracle itself: it allows on an active consent, and on nothing else."""
    policies = a_policy_set(
        an_agreement(id="alpha", consent_required=True), catalogue=CATALOGUE, partners=PARTNERS
    )
    request = a_request("icf.assessment")
    active = a_consent(id="c-active", fields=frozenset({FieldName("icf.assessment")}))
    revoked = a_consent(id="c-revoked", revoked_at=NOW - timedelta(hours=1))
    expired = a_consent(id="c-expired", valid_until=NOW)
    for given_consents, allowed in (
        ([active], True),
        ([revoked], False),
        ([expired], False),
        ([revoked, expired, active], True),
        ([a_consent(id="c-other", participant=OTHER_PARTICIPANT)], False),
    ):
        own = [c for c in given_consents if c.participant == PSEUDONYM]
        (verdict,) = decide(request, policies, own, NOW).verdicts
        expected = permit(request, verdict.field, policies, given_consents, PSEUDONYM, NOW)
        assert verdict.allowed is allowed is expected.allows
