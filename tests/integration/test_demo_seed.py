"""``ketenhub demo``'s seeding: a client per partner, the consents agreements need, a guide."""

from __future__ import annotations

import shlex
from pathlib import Path

from hub import bootstrap
from hub.demo.population import make_population
from hub.demo.runner import CONSENTED_PER_SOURCE, guide, seed, source_ports
from hub.domain.principal import Principal, Scope
from hub.settings import Settings

REPO = Path(__file__).resolve().parents[2]


async def test_seed_makes_clients_consents_and_a_guide_with_working_commands(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings(
        policy_dir=REPO / "policies",
        database_url=database_url,
        key_dir=tmp_path / "keys",
        public_url=None,
    )
    population = make_population(2026)
    clients, examples = await seed(settings, population)

    partners = {c.partner for c in clients}
    assert partners == {
        "vdab",
        "ocmw-gent",
        "in-gent",
        "cgg-vagga",
        "gtb",
        "levanto",
        "penhouder-antwerpen",
        "hub",
    }
    assert {e.partner for e in examples} >= {"gtb", "cgg-vagga", "ocmw-gent", "vdab"}

    hub = await bootstrap.build(settings)
    try:
        gtb = Principal("t", "gtb", frozenset({Scope.CONSENT_WRITE}), 0)  # type: ignore[arg-type]
        consented = population.known_to("cgg-vagga")[0].insz
        page = await hub.consents.page(gtb, participant=consented, cursor=None, limit=10)
        assert any("care.progress" in c.fields for c in page.items)
        without = population.known_to("cgg-vagga")[CONSENTED_PER_SOURCE].insz
        assert (
            await hub.consents.page(gtb, participant=without, cursor=None, limit=10)
        ).items == []
    finally:
        await hub.aclose()

    text = guide("http://127.0.0.1:8000", clients, examples)
    for client in clients:
        assert client.client_secret in text
    exchange_lines = [line for line in text.splitlines() if "/v1/exchange" in line]
    assert len(exchange_lines) == len(examples)
    for line in exchange_lines:
        assert shlex.split(line)[0] == "curl"
    assert "did not (try it)" in text


def test_the_simulators_listen_where_partners_yaml_says() -> None:
    policies = bootstrap.load_policies(
        Settings(REPO / "policies", "sqlite://", Path("unused"), None)
    )
    assert source_ports(policies) == {
        "vdab": 8101,
        "ocmw-gent": 8102,
        "in-gent": 8103,
        "cgg-vagga": 8104,
        "levanto": 8105,
    }
