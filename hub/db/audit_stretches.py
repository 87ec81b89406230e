"""A large audit log verified in stretches, side by side in helper processes (one
per further core); ``hub.domain.audit.join_segments`` says what they prove together."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sqlite3
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hub.db.audit_rows import AUDIT_SELECT, record_of, seq_of
from hub.db.sql import Row, Sql
from hub.domain.audit import (
    GENESIS,
    ChainReport,
    ChainVerifier,
    Segment,
    join_segments,
)

_STRETCH = 25_000
"""Records one process checks before it takes the next stretch of a large log."""
_PARALLEL_FROM = 200_000
"""Smaller logs are checked in one pass: a helper process takes about 0.4 s to start."""
_MAX_HELPERS = 7


def helper_count(top: object) -> int:
    """Helper processes for a log whose greatest seq is ``top``: one per further core.

    Only when every seq is a whole number: SQLite sorts text after numbers, and a log
    with a seq of text is damaged, which the one pass reports.
    """
    if type(top) is not int or top < _PARALLEL_FROM:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min((cores or 1) - 1, _MAX_HELPERS))


def reopen_target(sql: Sql) -> str | None:
    """How another process opens this database; None when it cannot (SQLite in memory)."""
    raw = getattr(sql.connection, "driver_connection", sql.connection)
    if sql.postgres:
        from psycopg.conninfo import make_conninfo  # noqa: PLC0415 - only with PostgreSQL

        return str(make_conninfo(raw.info.dsn, password=raw.info.password))
    for _, name, path in raw.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(path) if path else None
    return None


def _open_again(postgres: bool, target: str) -> Sql:
    """A read-only connection of a helper process to the database named by ``target``."""
    if postgres:
        import psycopg  # noqa: PLC0415 - only with PostgreSQL

        return Sql(psycopg.connect(target, autocommit=True), "postgresql")
    uri = Path(target).as_uri() + "?mode=ro"
    return Sql(sqlite3.connect(uri, uri=True, check_same_thread=False), "sqlite")


def check_stretch(sql: Sql, after: int, upto: int) -> Segment:
    """Check the records with ``after < seq <= upto``, assuming the chain is whole up to them."""
    start_prev: str | None = GENESIS
    if after > 0:
        found = sql.row("SELECT hash FROM audit_events WHERE seq = :seq", {"seq": after})
        start_prev = found[0] if found is not None and isinstance(found[0], str) else None
    verifier = ChainVerifier(expected_seq=after + 1, prev=start_prev)
    cursor = sql.run(
        f"{AUDIT_SELECT} WHERE seq > :after AND seq <= :upto ORDER BY seq",
        {"after": after, "upto": upto},
    )
    first: Row | None = None
    # Small batches: rows freed as fast as they are made never wake the cyclic GC.
    while rows := cursor.fetchmany(200):
        if first is None:
            first = rows[0]
        if not verifier.feed_stored(rows, record_of):
            break
    cursor.close()
    return Segment(
        start_seq=after + 1,
        start_prev=start_prev,
        report=verifier.report(),
        end_seq=verifier.expected_seq,
        first_seq=None if first is None else seq_of(first[0]),
        first_prev_hash=first[19] if first is not None and isinstance(first[19], str) else None,
    )


class _Stretches:
    """The stretches of one verification, handed out in order to whoever is free."""

    def __init__(self, top: int, count: int) -> None:
        self.bounds = [top * k // count for k in range(count + 1)]
        self.done: dict[int, Segment] = {}
        self.needed = count
        """Stretches up to the first one found faulty are all that can matter."""
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self._next >= self.needed:
                return None
            self._next += 1
            return self._next - 1

    def keep(self, index: int, segment: Segment) -> None:
        with self._lock:
            self.done[index] = segment
            if not segment.report.ok:
                self.needed = min(self.needed, index + 1)

    def check(self, sql: Sql, index: int) -> None:
        self.keep(index, check_stretch(sql, self.bounds[index], self.bounds[index + 1]))


def verify_stretches(sql: Sql, target: str, top: int, helpers: int) -> ChainReport | None:
    stretches = _Stretches(top, max(helpers + 1, -(-top // _STRETCH)))
    drivers = [
        threading.Thread(target=_drive_helper, args=(sql.postgres, target, stretches), daemon=True)
        for _ in range(helpers)
    ]
    for driver in drivers:
        driver.start()
    try:
        while (index := stretches.take()) is not None:
            stretches.check(sql, index)
    except BaseException:
        stretches.needed = 0  # the helpers stop at their next stretch
        raise
    finally:
        for driver in drivers:
            driver.join()
    for index in range(stretches.needed):
        if index not in stretches.done:  # a helper failed with it in hand
            stretches.check(sql, index)
    return join_segments(stretches.done[index] for index in range(stretches.needed))


_HELPER = "from hub.db.audit_stretches import serve_as_helper; serve_as_helper()"


def _drive_helper(postgres: bool, target: str, stretches: _Stretches) -> None:
    """Feed one helper process stretches until none is left; stop it on any trouble."""
    try:
        helper = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed command
            [sys.executable, "-c", _HELPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    except OSError:
        return
    if helper.stdin is None or helper.stdout is None:  # Popen made them: for the type checker
        return
    try:
        # The target may hold a password: a pipe, never the command line.
        helper.stdin.write(json.dumps({"postgres": postgres, "target": target}) + "\n")
        while (index := stretches.take()) is not None:
            bounds = [stretches.bounds[index], stretches.bounds[index + 1]]
            helper.stdin.write(json.dumps(bounds) + "\n")
            helper.stdin.flush()
            answer = helper.stdout.readline()
            if not answer:
                return  # it failed: the stretch is checked here after all
            stretches.keep(index, segment_from(json.loads(answer)))
    except (OSError, ValueError, TypeError, KeyError):
        return
    finally:
        helper.kill()  # done, or in trouble: its answers are no longer read
        helper.wait()
        with contextlib.suppress(OSError):
            helper.stdin.close()
        helper.stdout.close()


def serve_as_helper() -> None:
    """A helper process of ``SqlAudit.verify``: checks the stretches it is sent on stdin."""
    gc.disable()  # its own process, making no cycles: the collector would only cost time
    opening = json.loads(sys.stdin.readline())
    sql = _open_again(bool(opening["postgres"]), str(opening["target"]))
    try:
        for line in sys.stdin:
            after, upto = json.loads(line)
            sys.stdout.write(json.dumps(asdict(check_stretch(sql, after, upto))) + "\n")
            sys.stdout.flush()
    finally:
        sql.connection.close()


def segment_from(document: dict[str, Any]) -> Segment:
    return Segment(**{**document, "report": ChainReport(**document["report"])})
