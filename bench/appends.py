"""Section 3: the hub's audit append against a bare insert of the same row.

Both write to SQLite in WAL mode with ``synchronous=FULL`` (the hub's durability),
and a write counts only once its commit returned. Four figures:

- ``bare_insert_per_s``: raw ``sqlite3``, the same row, one commit per row;
- ``bare_batched_per_s``: the same, 64 rows per commit (what group commit could reach);
- ``no_group_per_s``: the hub's ``Database.write`` + ``SqlAudit.append`` (chain head
  update, hash, insert), one writer at a time, so every append is its own commit;
- ``per_s``: the same with 64 concurrent writers: group commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import Figures, rounded
from hub.db import migrate
from hub.db.audit_rows import AUDIT_INSERT, audit_row
from hub.db.database import SqlDatabase, create_engine
from hub.domain.audit import GENESIS, AuditEntry, link

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


def _bare(url: str, count: int, per_commit: int) -> float:
    connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"):
        connection.execute(pragma)
    # The same row as the hub's append below, which is given no tag either.
    rows = [{**audit_row(link(i + 1, entry(i), GENESIS)), "tag": None} for i in range(count)]
    start = time.perf_counter()
    for first in range(0, count, per_commit):
        connection.execute("BEGIN IMMEDIATE")
        for row in rows[first : first + per_commit]:
            connection.execute(AUDIT_INSERT, row)
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return count / elapsed


async def _hub(url: str, count: int, concurrency: int) -> float:
    db = SqlDatabase(create_engine(url))
    entries = [entry(i) for i in range(count)]
    per_writer = count // concurrency

    async def writer(k: int) -> None:
        for item in entries[k * per_writer : (k + 1) * per_writer]:
            await db.write(lambda uow, e=item: uow.audit.append(e))

    await db.write(lambda uow: uow.audit.append(entry(-1)))  # connections open, caches warm
    start = time.perf_counter()
    await asyncio.gather(*(writer(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - start
    await db.dispose()
    return per_writer * concurrency / elapsed


def run(*, quick: bool) -> Figures:
    count = 640 if quick else 3200
    with tempfile.TemporaryDirectory(prefix="ketenhub-bench-append-") as tmp:
        work = Path(tmp)
        bare = _bare(_fresh(work, "bare.db"), count, 1)
        bare_batched = _bare(_fresh(work, "batched.db"), count, CONCURRENCY)
        no_group = asyncio.run(_hub(_fresh(work, "single.db"), count, 1))
        grouped = asyncio.run(_hub(_fresh(work, "grouped.db"), count, CONCURRENCY))
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
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=1))
