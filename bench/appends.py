"""Section 3: the hub's audit append against a bare insert of the same row.

Both write to SQLite in WAL mode with ``synchronous=FULL`` (the hub's durability),
and a write counts only once its commit returned. Four figures:

- ``bare_insert_per_s``: raw ``sqlite3``, the same row, one commit per row;
- ``bare_batched_per_s``: the same, 64 rows per commit (what group commit could reach);
- ``no_group_per_s``: the hub's ``Database.write`` + ``SqlAudit.append`` (chain head
  update, hash, insert), one writer at a time, so every append is its own commit;
- ``per_s``: the same with 64 concurrent writers: group commit.

Each also as CPU microseconds of this process per append (``*_cpu_us``: all threads,
``time.process_time``), which a busy machine disturbs far less than the rates.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Figures, rounded
from hub.db import migrate
from hub.db.audit_rows import AUDIT_INSERT, audit_row
from hub.db.database import SqlDatabase, create_engine
from hub.domain.audit import GENESIS, AuditEntry, AuditRecord, link
from hub.ports import UnitOfWork

CONCURRENCY = 64


def entry(i: int) -> AuditEntry:
    return AuditEntry(
        at="2026-06-15T10:00:00.000000Z",
        kind="exchange",
        requester="gtb",
        source="vdab",
        participant=f"{i:064x}",
        purpose="trajectory-coordination",
        actor={"role": "casemanager-work", "id": "gtb-bench-1"},
        decision="disclosed",
        reason=None,
        fields_requested=["trajectory.status", "trajectory.start_date", "icf.assessment"],
        fields_disclosed=["trajectory.status", "trajectory.start_date", "icf.assessment"],
        withheld=[],
        agreement="vdab-trajectory-open@2",
        agreements=["vdab-health-assessment@1", "vdab-trajectory-open@2"],
        consents=["6f1c1d2e-0000-4000-8000-000000000000"],
        disclosure_id="0b7c6a58-0000-4000-8000-000000000000",
    )


def _fresh(directory: Path, name: str) -> str:
    url = f"sqlite:///{directory / name}"
    migrate.upgrade(url)
    return url


def _bare(url: str, count: int, per_commit: int) -> tuple[float, float]:
    connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"):
        connection.execute(pragma)
    # The same row as the hub's append below, which is given no tag either.
    rows = [{**audit_row(link(i + 1, entry(i), GENESIS)), "tag": None} for i in range(count)]
    start, cpu = time.perf_counter(), time.process_time()
    for first in range(0, count, per_commit):
        connection.execute("BEGIN IMMEDIATE")
        for row in rows[first : first + per_commit]:
            connection.execute(AUDIT_INSERT, row)
        connection.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    connection.close()
    return count / elapsed, cpu / count * 1e6


async def _hub(url: str, count: int, concurrency: int) -> tuple[float, float]:
    db = SqlDatabase(create_engine(url))
    entries = [entry(i) for i in range(count)]
    per_writer = count // concurrency

    def appending(item: AuditEntry) -> Callable[[UnitOfWork], AuditRecord]:
        return lambda uow: uow.audit.append(item)

    async def writer(k: int) -> None:
        for item in entries[k * per_writer : (k + 1) * per_writer]:
            await db.write(appending(item))

    await db.write(lambda uow: uow.audit.append(entry(-1)))  # connections open, caches warm
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(writer(k) for k in range(concurrency)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await db.dispose()
    done = per_writer * concurrency
    return done / elapsed, cpu / done * 1e6


def run(*, quick: bool) -> Figures:
    count = 640 if quick else 3200
    with tempfile.TemporaryDirectory(prefix="ketenhub-bench-append-") as tmp:
        work = Path(tmp)
        bare, bare_cpu = _bare(_fresh(work, "bare.db"), count, 1)
        bare_batched, bare_batched_cpu = _bare(_fresh(work, "batched.db"), count, CONCURRENCY)
        no_group, no_group_cpu = asyncio.run(_hub(_fresh(work, "single.db"), count, 1))
        grouped, grouped_cpu = asyncio.run(_hub(_fresh(work, "grouped.db"), count, CONCURRENCY))
    return {
        "appends": count,
        "per_s": rounded(grouped, 1),
        "bare_insert_per_s": rounded(bare, 1),
        "ratio": rounded(grouped / bare),
        "no_group_per_s": rounded(no_group, 1),
        "no_group_ratio": rounded(no_group / bare),
        "bare_batched_per_s": rounded(bare_batched, 1),
        "grouped_vs_bare_batched": rounded(grouped / bare_batched),
        "concurrency": CONCURRENCY,
        "cpu_us": rounded(grouped_cpu, 1),
        "bare_insert_cpu_us": rounded(bare_cpu, 1),
        "no_group_cpu_us": rounded(no_group_cpu, 1),
        "bare_batched_cpu_us": rounded(bare_batched_cpu, 1),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=1))
