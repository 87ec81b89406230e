"""Every reason code of CONTRACT.md 3, each in its place in the precedence."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hub.domain.exchange import Actor, Decision, Reason
from hub.domain.ids import FieldName, PartnerId, Purpose, Role
from hub.policy.decide import brussels_day, decide
from tests.builders import (
    ICF,
    NOW,
    OPEN,
    PLAN,
    a_consent,
    a_policy_set,
    a_request,
    an_agreement,
)


def reasons(decision: Decision) -> dict[str, Reason | None]:
    return {v.field: v.reason for v in decision.verdicts}


def test_a_field_under_a_valid_agreement_for_the_role_is_allowed_with_that_version() -> None:
    decision = decide(a_request(OPEN), a_policy_set(), [], NOW)
    (verdict,) = decision.verdicts
    assert verdict.allowed
    assert verdict.agreement is not None
    assert verdict.agreement.ref == "vdab-coordination@1"
    assert verdict.consent_id is None


def test_unknown_field_comes_first_even_without_any_agreement() -> None:
    policies = a_policy_set(an_agreement(recipients=frozenset({PartnerId("ocmw-gent")})))
    decision = decide(a_request("trajectory.colour", OPEN), policies, [], NOW)
    assert reasons(decision) == {
        "trajectory.colour": Reason.UNKNOWN_FIELD,
        OPEN: Reason.NO_AGREEMENT,
    }


def test_no_agreement_when_the_requester_is_in_no_version_from_this_source() -> None:
    policies = a_policy_set(an_agreement(recipients=frozenset({PartnerId("ocmw-gent")})))
    assert reasons(decide(a_request(OPEN), policies, [], NOW)) == {OPEN: Reason.NO_AGREEMENT}


def test_no_agreement_counts_expired_agreements_as_agreements() -> None:
    expired = an_agreement(valid_until=date(2026, 1, 31))
    assert reasons(decide(a_request(OPEN), a_policy_set(expired), [], NOW)) == {
        OPEN: Reason.AGREEMENT_EXPIRED
    }


def test_purpose_not_allowed_when_agreements_exist_for_other_purposes() -> None:
    request = a_request(OPEN, purpose=Purpose("marketing"))
    assert reasons(decide(request, a_policy_set(), [], NOW)) == {OPEN: Reason.PURPOSE_NOT_ALLOWED}


def test_field_not_allowed_when_no_agreement_for_the_purpose_lists_it() -> None:
    policies = a_policy_set(an_agreement(fields=frozenset({OPEN})))
    assert reasons(decide(a_request(PLAN), policies, [], NOW)) == {PLAN: Reason.FIELD_NOT_ALLOWED}


def test_a_field_only_in_a_replaced_version_is_field_not_allowed() -> None:
    v1 = an_agreement(version=1, fields=frozenset({OPEN, PLAN}))
    v2 = an_agreement(version=2, fields=frozenset({OPEN}), valid_from=date(2026, 3, 1))
    decision = decide(a_request(OPEN, PLAN), a_policy_set(v1, v2), [], NOW)
    assert reasons(decision) == {OPEN: None, PLAN: Reason.FIELD_NOT_ALLOWED}
    assert decision.verdicts[0].agreement is not None
    assert decision.verdicts[0].agreement.version == 2


def test_the_highest_valid_version_is_in_force_not_the_highest_version() -> None:
    v1 = an_agreement(version=1, fields=frozenset({OPEN, PLAN}))
    v2 = an_agreement(version=2, fields=frozenset({OPEN}), valid_from=date(2027, 1, 1))
    decision = decide(a_request(PLAN), a_policy_set(v1, v2), [], NOW)
    assert reasons(decision) == {PLAN: None}


def test_agreement_expired_when_the_id_has_no_version_valid_today() -> None:
    old = an_agreement(valid_from=date(2025, 1, 1), valid_until=date(2025, 12, 31))
    assert reasons(decide(a_request(OPEN), a_policy_set(old), [], NOW)) == {
        OPEN: Reason.AGREEMENT_EXPIRED
    }


def test_a_not_yet_valid_agreement_also_counts_as_expired() -> None:
    future = an_agreement(valid_from=date(2027, 1, 1))
    assert reasons(decide(a_request(OPEN), a_policy_set(future), [], NOW)) == {
        OPEN: Reason.AGREEMENT_EXPIRED
    }


def test_field_not_allowed_beats_expired_when_the_field_was_never_in_the_expired_one() -> None:
    old = an_agreement(id="old", valid_until=date(2025, 12, 31), fields=frozenset({OPEN}))
    current = an_agreement(id="new", fields=frozenset({OPEN}))
    assert reasons(decide(a_request(PLAN), a_policy_set(old, current), [], NOW)) == {
        PLAN: Reason.FIELD_NOT_ALLOWED
    }


def test_valid_until_is_inclusive_in_brussels_days() -> None:
    last_day = an_agreement(valid_until=brussels_day(NOW))
    assert reasons(decide(a_request(OPEN), a_policy_set(last_day), [], NOW)) == {OPEN: None}
    # 23:30 UTC on the last day is already the next day in Brussels.
    late = NOW.replace(hour=23, minute=30)
    assert reasons(decide(a_request(OPEN), a_policy_set(last_day), [], late)) == {
        OPEN: Reason.AGREEMENT_EXPIRED
    }


def test_role_not_allowed_when_the_field_is_in_force_but_not_for_this_role() -> None:
    request = a_request(OPEN, actor=Actor(Role("penhouder"), "u-9"))
    assert reasons(decide(request, a_policy_set(), [], NOW)) == {OPEN: Reason.ROLE_NOT_ALLOWED}


def test_role_from_another_agreement_for_the_same_field_allows_it() -> None:
    a = an_agreement(id="a", roles=frozenset({Role("casemanager-care")}))
    b = an_agreement(id="b", roles=frozenset({Role("casemanager-work")}))
    decision = decide(a_request(OPEN), a_policy_set(a, b), [], NOW)
    assert decision.verdicts[0].agreement is not None
    assert decision.verdicts[0].agreement.id == "b"


def test_no_consent_when_consent_is_required_and_none_was_given() -> None:
    policies = a_policy_set(an_agreement(consent_required=True))
    assert reasons(decide(a_request(ICF), policies, [], NOW)) == {ICF: Reason.NO_CONSENT}


def test_an_active_matching_consent_allows_and_is_named() -> None:
    policies = a_policy_set(an_agreement(consent_required=True))
    decision = decide(a_request(ICF), policies, [a_consent(id="c-9")], NOW)
    assert decision.verdicts[0].allowed
    assert decision.verdicts[0].consent_id == "c-9"


def test_consent_revoked_when_the_only_consent_was_revoked() -> None:
    policies = a_policy_set(an_agreement(consent_required=True))
    revoked = a_consent(revoked_at=NOW - timedelta(minutes=1))
    assert reasons(decide(a_request(ICF), policies, [revoked], NOW)) == {
        ICF: Reason.CONSENT_REVOKED
    }


def test_consent_expired_at_valid_until_exactly() -> None:
    policies = a_policy_set(an_agreement(consent_required=True))
    ends_now = a_consent(valid_until=NOW)
    assert reasons(decide(a_request(ICF), policies, [ends_now], NOW)) == {
        ICF: Reason.CONSENT_EXPIRED
    }


def test_the_latest_lapsed_consent_names_the_reason() -> None:
    policies = a_policy_set(an_agreement(consent_required=True))
    old_revoked = a_consent(id="a", granted_at=NOW - timedelta(days=9), revoked_at=NOW)
    new_expired = a_consent(id="b", granted_at=NOW - timedelta(days=2), valid_until=NOW)
    assert reasons(decide(a_request(ICF), policies, [old_revoked, new_expired], NOW)) == {
        ICF: Reason.CONSENT_EXPIRED
    }


def test_a_consent_for_another_field_purpose_or_recipient_does_not_match() -> None:
    policies = a_policy_set(an_agreement(consent_required=True))
    others = [
        a_consent(fields=frozenset({PLAN})),
        a_consent(purpose=Purpose("other")),
        a_consent(recipient=PartnerId("ocmw-gent")),
    ]
    assert reasons(decide(a_request(ICF), policies, others, NOW)) == {ICF: Reason.NO_CONSENT}


def test_an_agreement_without_consent_is_preferred_over_one_needing_it() -> None:
    needs = an_agreement(id="a-needs", consent_required=True)
    free = an_agreement(id="b-free", fields=frozenset({OPEN}))
    decision = decide(a_request(OPEN), a_policy_set(needs, free), [], NOW)
    assert decision.verdicts[0].agreement is not None
    assert decision.verdicts[0].agreement.id == "b-free"


def test_not_available_is_decided_after_the_source_answered() -> None:
    decision = decide(a_request(OPEN, PLAN), a_policy_set(), [], NOW)
    after = decision.after_fetch({OPEN: "running", PLAN: None})
    assert reasons(after) == {OPEN: None, PLAN: Reason.NOT_AVAILABLE}
    assert after.allowed_fields == frozenset({OPEN})


def test_precedence_role_before_consent() -> None:
    policies = a_policy_set(an_agreement(consent_required=True))
    request = a_request(ICF, actor=Actor(Role("penhouder"), "u"))
    assert reasons(decide(request, policies, [], NOW)) == {ICF: Reason.ROLE_NOT_ALLOWED}


FIELD_NAMES = st.sampled_from([OPEN, PLAN, ICF, "x.unknown", "trajectory.colour"])


@given(
    fields=st.lists(FIELD_NAMES, min_size=1, max_size=5, unique=True),
    consent_required=st.booleans(),
    role=st.sampled_from(["casemanager-work", "penhouder"]),
    purpose=st.sampled_from(["trajectory-coordination", "other"]),
    revoked=st.booleans(),
    days=st.integers(min_value=-800, max_value=800),
)
def test_every_requested_field_gets_exactly_one_verdict(
    fields: list[str], consent_required: bool, role: str, purpose: str, revoked: bool, days: int
) -> None:
    policies = a_policy_set(an_agreement(consent_required=consent_required))
    request = a_request(*fields, actor=Actor(Role(role), "u"), purpose=Purpose(purpose))
    consent = a_consent(revoked_at=NOW if revoked else None)
    now = NOW + timedelta(days=days)
    decision = decide(request, policies, [consent], now)
    assert [v.field for v in decision.verdicts] == [FieldName(f) for f in fields]
    for verdict in decision.verdicts:
        assert verdict.allowed == (verdict.reason is None)
        if verdict.allowed:
            assert verdict.agreement is not None
            assert verdict.agreement.valid_on(brussels_day(now))
            assert request.actor.role in verdict.agreement.roles
            assert verdict.field in verdict.agreement.fields
            assert not verdict.agreement.consent_required or verdict.consent_id == consent.id


def test_a_version_whose_provider_is_another_source_does_not_count_for_this_one() -> None:
    expired_here = an_agreement(version=1, valid_until=date(2026, 1, 31), consent_required=True)
    elsewhere = an_agreement(version=2, provider=PartnerId("ocmw-gent"))
    decision = decide(a_request(OPEN), a_policy_set(expired_here, elsewhere), [], NOW)
    assert reasons(decision) == {OPEN: Reason.FIELD_NOT_ALLOWED}
