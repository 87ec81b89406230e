"""Micro benchmark: what an exchange costs with and without an ``Idempotency-Key``.

``python -m bench.datakeys [ROUNDS]`` (not part of ``make bench``). In one process: the
composition root over an SQLite file (durable commits), an in-memory source, a fixed
clock; requests go straight to ``ExchangeService.exchange``, one at a time, so the
figure is the service's own latency (decide, fetch, audit append, keep the answer,
commit), not HTTP's. Three workloads, over 200 participants:

- ``plain``: no ``Idempotency-Key`` (data keys are never touched);
- ``keyed``: a new key each time, so the answer is sealed and kept (with per-participant
  data keys: read the participant's DEK, unwrap it, seal);
- ``replay``: the same key and body again (unseal and replay, audited).

Commits wait for the disk, which on a shared machine makes those figures noisy; so
``seal_us`` also isolates what sealing one kept answer costs inside a transaction:
``seal.key`` alone (before) against reading the participant's DEK row, unwrapping it
and sealing (after; only on a checkout that has data keys).

Run it on two checkouts to compare before and after a change; it uses only what both
have (``bootstrap.build``), and prints JSON.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from hub import bootstrap
from hub.auth.keys import FileKeyRing
from hub.clock import FixedClock
from hub.db import migrate
from hub.demo.population import make_population
from hub.domain.exchange import Actor, ExchangeRequest
from hub.domain.ids import FieldName, Insz, PartnerId, Purpose, Role
from hub.logging import configure_logging
from hub.settings import Settings

POLICIES = Path(__file__).resolve().parents[1] / "policies"
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
FIELDS = (FieldName("trajectory.status"), FieldName("trajectory.start_date"))


class MemorySource:
    async def fetch(
        self,
        participant: Insz,  # noqa: ARG002 - one answer for everyone
        fields: frozenset[FieldName],
    ) -> Mapping[FieldName, object]:
        return {f: f"value of {f}" for f in fields}

    async def aclose(self) -> None:
        return None


async def measure(rounds: int) -> dict[str, dict[str, float]]:
    people = [p.insz for p in make_population(2026).persons if "vdab" in p.sources][:200]
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/hub.db"
        migrate.upgrade(url)
        settings = Settings(
            policy_dir=POLICIES,
            database_url=url,
            key_dir=Path(directory) / "keys",
            public_url=None,
            rate_limit="off",
            token_rate_limit="off",
        )
        hub = await bootstrap.build(
            settings,
            clock=FixedClock(NOW),
            sources={PartnerId("vdab"): MemorySource()},
            keys=FileKeyRing.load_or_create(settings.key_dir),
        )
        try:

            def request(i: int) -> ExchangeRequest:
                return ExchangeRequest(
                    requester=PartnerId("gtb"),
                    participant=people[i % len(people)],
                    source=PartnerId("vdab"),
                    purpose=Purpose("trajectory-coordination"),
                    fields=FIELDS,
                    actor=Actor(Role("casemanager-work"), "u-1"),
                )

            async def run(key_of: object) -> list[float]:
                took = []
                for i in range(rounds):
                    key = key_of(i) if callable(key_of) else None
                    start = time.perf_counter()
                    answer = await hub.exchange.exchange(request(i), key)
                    took.append(time.perf_counter() - start)
                    assert answer.status == 200
                return took

            for _ in range(2):  # warm up: caches, the first DEK of each participant
                await run(lambda i: f"warm-{i}")
                await run(None)
            results = {}
            for name, key_of in (
                ("plain", None),
                ("keyed", lambda i: f"key-{i}"),
                ("replay", lambda i: f"key-{i}"),
            ):
                took = await run(key_of)
                results[name] = {
                    "median_us": round(statistics.median(took) * 1e6, 1),
                    "p90_us": round(statistics.quantiles(took, n=10)[-1] * 1e6, 1),
                }
            results["seal_us"] = await _seal_costs(hub, people)
            return results
        finally:
            await hub.aclose()


async def _seal_costs(hub: bootstrap.Container, people: list[Insz]) -> dict[str, float]:
    body = b"x" * 400  # about a kept answer's size
    pseudonyms = [hub.keys.pseudonym(p) for p in people]
    costs: dict[str, float] = {}
    n = 5000

    def one_key(_uow: object) -> None:
        start = time.perf_counter()
        for _ in range(n):
            hub.keys.seal(body, context=b"idempotency:bench")
        costs["seal_key"] = round((time.perf_counter() - start) / n * 1e6, 2)

    await hub.db.read(one_key)
    if hasattr(hub, "masters"):
        from hub.services.datakeys import ParticipantSealer  # noqa: PLC0415 - after only

        sealer = ParticipantSealer(masters=hub.masters, keys=hub.keys, clock=hub.clock)

        def per_participant(uow: object) -> None:
            start = time.perf_counter()
            for i in range(n):
                sealer.seal(uow, pseudonyms[i % len(pseudonyms)], body, context=b"bench")  # type: ignore[arg-type]
            costs["participant_dek"] = round((time.perf_counter() - start) / n * 1e6, 2)

        await hub.db.read(per_participant)
    return costs


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    configure_logging("warning", json=True)
    print(json.dumps(asyncio.run(measure(rounds))))


if __name__ == "__main__":
    main()
