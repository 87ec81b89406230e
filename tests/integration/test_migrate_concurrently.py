"""Processes that start on a new database at once all migrate it (SQLite and PostgreSQL).

``ketenhub serve`` beside ``ketenhub client create`` in a start-up script: each
finds no schema; without a lock taken first, both create the tables and one fails
with ``table clients already exists`` (found by the crash test's harness). And the
migration leaves the file in WAL mode: a hub connection that finds it in rollback
mode while another process holds a lock cannot switch, and its writes then fail
with ``database is locked``. On PostgreSQL the same start-up script (or ``serve
--workers N`` on several machines) races the same way.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

from hub.db import migrate
from tests.conftest import Backend

PROCESSES = 3


def _migrate(url: str, start: multiprocessing.synchronize.Barrier) -> None:
    start.wait(timeout=30)
    migrate.upgrade(url)  # an exception exits the process with status 1


def test_concurrent_first_migrations_of_a_new_database_all_succeed(
    tmp_path: Path, fresh_databases: Backend
) -> None:
    # fork: the processes are ready at once, so their migrations overlap.
    context = multiprocessing.get_context("fork")
    for attempt in range(4):
        url = fresh_databases.empty(tmp_path)
        start = context.Barrier(PROCESSES)
        processes = [context.Process(target=_migrate, args=(url, start)) for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        assert [p.exitcode for p in processes] == [0] * PROCESSES, attempt
        assert migrate.is_current(url)
        if not url.startswith("sqlite"):
            continue
        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            connection.close()
