"""``ketenhub demo``: the hub with the demo network's simulated partner systems.

Everything a visitor needs to see the problem solved end to end on one machine:
the five source systems answer from a synthetic population, each partner gets a
client, a few participants have consents on record, and the guide printed at start
shows a ready ``curl`` line per partner and the privacy officer's view.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hub import bootstrap
from hub.db import migrate
from hub.demo.population import SOURCE_FIELDS, Population, make_population
from hub.demo.simulator import SimulatorThread
from hub.domain.agreements import HUB_PARTNER, Agreement, PolicySet
from hub.domain.ids import PartnerId
from hub.domain.principal import ALL_SCOPES, Principal, Scope
from hub.policy.decide import brussels_day
from hub.serving import run_server
from hub.settings import Settings

DEMO_ROLES = {
    "vdab": "vdab-mediator",
    "gtb": "casemanager-work",
    "cgg-vagga": "casemanager-care",
    "ocmw-gent": "social-worker",
    "in-gent": "integration-counsellor",
    "levanto": "service-provider",
    "penhouder-antwerpen": "penhouder",
}
"""The role a demo partner's staff have (DOMAIN.md), where an agreement names it."""

CONSENTED_PER_SOURCE = 25
"""How many participants of each source have the consents their agreements ask for."""


@dataclass(frozen=True, slots=True)
class DemoClient:
    partner: str
    client_id: str
    client_secret: str


@dataclass(frozen=True, slots=True)
class Example:
    partner: str
    source: str
    purpose: str
    fields: tuple[str, ...]
    role: str
    participant: str
    unconsented: str | None = None
    """A participant of the same source who gave no consent, where the agreement needs one."""

    @property
    def body(self) -> dict[str, object]:
        """The ``POST /v1/exchange`` body."""
        return {
            "participant": self.participant,
            "source": self.source,
            "purpose": self.purpose,
            "fields": list(self.fields),
            "actor": {"role": self.role, "id": f"{self.partner}-user-1"},
        }


def source_ports(policies: PolicySet) -> dict[str, int]:
    ports: dict[str, int] = {}
    for partner in policies.partners.values():
        if partner.source is not None and partner.id in SOURCE_FIELDS:
            port = urlsplit(partner.source.base_url).port
            if port is not None:
                ports[partner.id] = port
    return ports


async def seed(
    settings: Settings, population: Population
) -> tuple[list[DemoClient], list[Example]]:
    """Clients for every partner and the operator; consents; one example request each."""
    hub = await bootstrap.build(settings)
    try:
        clients: list[DemoClient] = []
        for partner in sorted({*hub.policies.partners, HUB_PARTNER}):
            scopes = (
                {str(Scope.AUDIT_READ)} if partner == HUB_PARTNER else {str(s) for s in ALL_SCOPES}
            )
            made = await hub.clients.create(PartnerId(partner), frozenset(scopes))
            assert made.client_secret is not None
            clients.append(DemoClient(partner, made.client_id, made.client_secret))
        today = brussels_day(hub.clock.now())
        in_force = hub.policies.all_in_force(today)
        for agreement in in_force:
            if agreement.consent_required and agreement.provider in SOURCE_FIELDS:
                await _consent_for(hub, agreement, population)
        return clients, _examples(in_force, population)
    finally:
        await hub.aclose()


async def _consent_for(
    hub: bootstrap.Container, agreement: Agreement, population: Population
) -> None:
    for recipient in sorted(agreement.recipients):
        principal = Principal("demo-seed", recipient, frozenset({Scope.CONSENT_WRITE}), 0)
        for person in population.known_to(agreement.provider)[:CONSENTED_PER_SOURCE]:
            await hub.consents.grant(
                principal,
                participant=person.insz,
                recipient=recipient,
                purpose=agreement.purpose,
                fields=sorted(agreement.fields),
                valid_until=None,
                evidence="Demo: signed trajectory agreement, synthetic participant.",
            )


def _examples(in_force: tuple[Agreement, ...], population: Population) -> list[Example]:
    examples: dict[str, Example] = {}
    # Agreements that need consent first: they show the most of what the hub decides.
    for agreement in sorted(in_force, key=lambda a: (not a.consent_required, a.id)):
        if agreement.provider not in SOURCE_FIELDS:
            continue
        known = population.known_to(agreement.provider)
        person = known[0]
        unconsented = (
            known[CONSENTED_PER_SOURCE].insz.digits if agreement.consent_required else None
        )
        for recipient in sorted(agreement.recipients):
            if recipient in examples:
                continue
            examples[recipient] = Example(
                partner=recipient,
                source=agreement.provider,
                purpose=agreement.purpose,
                fields=tuple(sorted(agreement.fields)[:3]),
                role=_role(recipient, agreement),
                participant=person.insz.digits,
                unconsented=unconsented,
            )
    return [examples[k] for k in sorted(examples)]


def _role(partner: str, agreement: Agreement) -> str:
    natural = DEMO_ROLES.get(partner)
    return natural if natural in agreement.roles else min(agreement.roles)


def guide(base: str, clients: list[DemoClient], examples: list[Example]) -> str:
    by_partner = {c.partner: c for c in clients}
    lines = [
        "",
        "Ketenhub demo network (synthetic data only)",
        "=" * 44,
        f"Hub: {base}   API docs: {base}/docs   JWKS: {base}/.well-known/jwks.json",
        "",
        "Partner clients (scopes: exchange consent:write audit:read):",
    ]
    lines += [
        f"  {c.partner:<22} client_id={c.client_id}  client_secret={c.client_secret}"
        for c in clients
        if c.partner != HUB_PARTNER
    ]
    for example in examples:
        client = by_partner[example.partner]
        asked = ", ".join(example.fields)
        lines += [
            "",
            f"# {example.partner}: ask {example.source} for {asked}",
            _token_line(base, client),
            (
                'curl -s -X POST -H "Authorization: Bearer $TOKEN" '
                f"-H 'Content-Type: application/json' "
                f"-d {shlex.quote(json.dumps(example.body))} {base}/v1/exchange"
            ),
        ]
        if example.unconsented is not None:
            lines.append(
                f"#   this needs the participant's consent: {example.participant} gave it, "
                f"{example.unconsented} did not (try it)"
            )
    officer = by_partner.get(HUB_PARTNER)
    if officer is not None:
        lines += [
            "",
            "# The operator's privacy officer (partner 'hub', scope audit:read):",
            "# the latest decisions, then the hash chain's check",
            _token_line(base, officer),
            f"curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1/audit/events?limit=5'",
            f'curl -s -H "Authorization: Bearer $TOKEN" {base}/v1/audit/verify',
        ]
    lines += ["", "Stop with Ctrl-C.", ""]
    return "\n".join(lines)


def _token_line(base: str, client: DemoClient) -> str:
    return (
        f"TOKEN=$(curl -s -u {client.client_id}:{client.client_secret} "
        f"-d grant_type=client_credentials {base}/oauth/token "
        "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
    )


def run_demo(
    settings: Settings, *, host: str, port: int, seed_value: int, fresh_db: Path | None
) -> None:
    policies = bootstrap.load_policies(settings)
    if fresh_db is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{fresh_db}{suffix}").unlink(missing_ok=True)
    migrate.upgrade(settings.database_url)
    population = make_population(seed_value)
    simulators = SimulatorThread(population, ports=source_ports(policies))
    simulators.start()
    try:
        clients, examples = asyncio.run(seed(settings, population))
        print(guide(f"http://{host}:{port}", clients, examples), flush=True)  # noqa: T201
        run_server(settings, host, port, workers=1)
    finally:
        simulators.stop()
