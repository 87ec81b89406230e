# hub/policy/decide.py's decision in Rego, for bench/decide.py: the same reasons in the
# same precedence (CONTRACT.md 3), one verdict per requested field, null when allowed.
#
# data.ketenhub is the PolicySet, generated from the policy directory at run time and
# indexed as PolicySet indexes it:
#   catalogue:   {source: {field: true}}
#   by_provider: {provider: [agreement, ...]}            every version, valid or not
#   versions:    {agreement id: [agreement, ...]}        highest version first
#   agreement:   {id, version, provider, purpose, consent_required,
#                 recipients: {partner: true}, fields: {field: true}, roles: {role: true},
#                 valid_from: yyyymmdd, valid_until: yyyymmdd | null}   (inclusive days)
#   consents:    {pseudonym: [consent, ...]}             only when input has no consents
# input is one exchange request, and the participant's consents unless data holds them:
#   {requester, source, purpose, role, fields: [field, ...], now_ns, participant,
#    consents?: [consent, ...]}
#   consent:     {id, recipient, purpose, fields: {field: true}, granted_ns,
#                 valid_until_ns: int | null, revoked: bool}
package ketenhub.decide

# Agreement dates are calendar days in Europe/Brussels.
day := (d[0] * 10000 + d[1] * 100) + d[2] if {
	d := time.date([input.now_ns, "Europe/Brussels"])
}

# Paths into data are referenced, never read whole: OPA then reads only what it needs.
to_requester := [a |
	some a in data.ketenhub.by_provider[input.source]
	a.recipients[input.requester]
]

for_purpose := [a | some a in to_requester; a.purpose == input.purpose]

valid_on(a) if {
	a.valid_from <= day
	a.valid_until == null
}

valid_on(a) if {
	a.valid_from <= day
	a.valid_until != null
	day <= a.valid_until
}

# The highest version of an agreement id valid today; undefined when none is.
current(agreement_id) := valid[0] if {
	valid := [v | some v in data.ketenhub.versions[agreement_id]; valid_on(v)]
}

in_force := [a |
	some agreement_id in {b.id | some b in for_purpose}
	a := current(agreement_id)
	a.provider == input.source
	a.recipients[input.requester]
	a.purpose == input.purpose
]

expired := [a | some a in for_purpose; not current(a.id)]

# The participant's consents: handed in with the request, or held in data by pseudonym.
consents := input.consents if {
	input.consents
} else := held if {
	held := data.ketenhub.consents[input.participant]
} else := []

relevant := [c |
	some c in consents
	c.recipient == input.requester
	c.purpose == input.purpose
]

# One field's verdict, each step computed once and handed down (decide.py's ladder).
reason(f) := "unknown-field" if {
	not data.ketenhub.catalogue[input.source][f]
} else := "no-agreement" if {
	count(to_requester) == 0
} else := "purpose-not-allowed" if {
	count(for_purpose) == 0
} else := listed_reason(f, [a | some a in in_force; a.fields[f]])

listed_reason(f, listing) := "agreement-expired" if {
	count(listing) == 0
	some a in expired
	a.fields[f]
} else := "field-not-allowed" if {
	count(listing) == 0
} else := role_reason(f, [a | some a in listing; a.roles[input.role]])

role_reason(f, for_role) := "role-not-allowed" if {
	count(for_role) == 0
} else := null if {
	some a in for_role
	not a.consent_required
} else := consent_reason([c | some c in relevant; c.fields[f]])

active(c) if {
	not c.revoked
	c.valid_until_ns == null
}

active(c) if {
	not c.revoked
	c.valid_until_ns != null
	input.now_ns < c.valid_until_ns
}

# No active consent: the participant's latest word on the field speaks.
consent_reason(about) := null if {
	some c in about
	active(c)
} else := "no-consent" if {
	count(about) == 0
} else := "consent-revoked" if {
	latest := max({[c.granted_ns, c.id] | some c in about})
	some c in about
	[c.granted_ns, c.id] == latest
	c.revoked
} else := "consent-expired"

verdicts := [reason(f) | some f in input.fields]
