"""Hub processes writing one SQLite file take turns through a lock file
(``hub.db.write_queue``): a waiter is woken when the turn is let go, not when a sleep
ends; a turn held too long is a 503 that writes nothing; and SQLite's own lock, not the
queue, still keeps writers apart.

Two ``WriteQueue``s (or databases) on one file stand in for two processes: ``flock``
locks belong to the open file, so two opens in one process exclude each other as two
processes' would (``tests/e2e/test_workers.py`` runs real worker processes).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from hub.db import migrate
from hub.db.database import SqlDatabase, create_engine
from hub.db.write_queue import SUFFIX, WriteQueue
from hub.domain.audit import verify_chain
from hub.domain.errors import ServiceUnavailableError
from hub.ports import UnitOfWork
from tests.builders import an_audit_entry

pytestmark = pytest.mark.sqlite_only("SQLite's write lock and the lock file beside it")


def _queue_threads() -> int:
    return sum(t.name == "ketenhub-write-queue" for t in threading.enumerate())


@pytest.fixture
def file(tmp_path: Path) -> Path:
    path = tmp_path / "hub.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


async def test_a_free_turn_is_taken_at_once_without_a_thread(file: Path) -> None:
    queue = WriteQueue(file)
    before = _queue_threads()
    assert await queue.take(1.0) is True
    assert _queue_threads() == before
    assert queue.path == file.with_name("hub.db" + SUFFIX)
    assert queue.path.exists()
    queue.release()
    assert await queue.take(1.0) is True  # let go, so free again
    queue.close()


async def test_a_taken_turn_is_waited_for_and_handed_over_when_let_go(file: Path) -> None:
    first, second = WriteQueue(file), WriteQueue(file)
    assert await first.take(1.0)
    waiting = asyncio.create_task(second.take(30.0))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # it waits for the turn ...
    first.release()
    # ... and is handed it when it is let go, not when its 30 s run out.
    assert await asyncio.wait_for(waiting, 5.0) is True
    held_by_second = asyncio.create_task(first.take(30.0))
    await asyncio.sleep(0.1)
    assert not held_by_second.done()
    second.close()  # closing the file lets go too
    assert await asyncio.wait_for(held_by_second, 5.0) is True
    first.close()


async def test_a_wait_given_up_on_lets_go_of_the_turn_when_it_comes(file: Path) -> None:
    holder, impatient, third = WriteQueue(file), WriteQueue(file), WriteQueue(file)
    assert await holder.take(1.0)
    with pytest.raises(TimeoutError):
        await impatient.take(0.05)
    # While its thread still waits, the impatient one goes without the queue at once.
    assert await impatient.take(30.0) is False
    holder.release()
    # Its thread then gets the turn and lets go at once: the third is not kept waiting.
    assert await asyncio.wait_for(third.take(30.0), 5.0) is True
    third.release()
    for _ in range(100):  # its answer reached the event loop: the queue is back in use
        if await impatient.take(30.0):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the queue stayed unused after the abandoned wait ended")
    impatient.release()
    for queue in (holder, impatient, third):
        queue.close()


async def test_a_lock_file_that_cannot_be_made_means_no_queue(tmp_path: Path) -> None:
    queue = WriteQueue(tmp_path / "missing-directory" / "hub.db")
    assert await queue.take(1.0) is False
    queue.release()  # nothing to let go: no error
    queue.close()


async def test_a_turn_held_too_long_is_503_and_writes_nothing(file: Path) -> None:
    db = SqlDatabase(create_engine(f"sqlite:///{file}"), busy_timeout_s=0.2)
    other = WriteQueue(file)  # another process's committer, in the middle of its group
    try:
        await db.write(lambda uow: uow.audit.append(an_audit_entry(0)))
        assert await other.take(1.0)
        with pytest.raises(ServiceUnavailableError):
            await db.write(lambda uow: uow.audit.append(an_audit_entry(1)))
        stored = await db.scan(lambda uow: list(uow.audit.stream()))
        assert [r.seq for r in stored] == [1]
        # The next group does not wait behind the abandoned wait: SQLite's lock, which
        # the other holds not, is what keeps writers apart.
        record = await db.write(lambda uow: uow.audit.append(an_audit_entry(2)))
        assert record.seq == 2
        other.release()
        for n in range(3, 6):
            assert (await db.write(lambda uow, n=n: uow.audit.append(an_audit_entry(n)))).seq == n
        # The database lets go of its turn after each group: the other can take it.
        assert await asyncio.wait_for(other.take(30.0), 5.0) is True
        other.release()
    finally:
        other.close()
        await db.dispose()


async def test_two_databases_on_one_file_take_turns_and_keep_one_chain(file: Path) -> None:
    url = f"sqlite:///{file}"
    one, two = SqlDatabase(create_engine(url)), SqlDatabase(create_engine(url))

    def append(n: int) -> object:
        def work(uow: UnitOfWork) -> int:
            return uow.audit.append(an_audit_entry(n)).seq

        return work

    try:
        seqs = await asyncio.gather(
            *(db.write(append(n)) for n in range(150) for db in (one, two))  # type: ignore[arg-type]
        )
        assert sorted(seqs) == list(range(1, 301))
        stored = await one.scan(lambda uow: list(uow.audit.stream()))
        assert verify_chain(stored).ok
        assert len(stored) == 300
    finally:
        await one.dispose()
        await two.dispose()


def test_a_turn_that_comes_after_its_loop_closed_is_let_go(file: Path) -> None:
    """A hub stopping while it waits must not keep the other processes' turn for ever."""
    holder, leaving = WriteQueue(file), WriteQueue(file)

    async def hold() -> None:
        assert await holder.take(1.0)

    async def wait_and_leave() -> None:
        with pytest.raises(TimeoutError):
            await leaving.take(0.05)  # its thread goes on waiting after its loop is gone

    asyncio.run(hold())
    asyncio.run(wait_and_leave())
    holder.release()  # the waiting thread gets the turn, finds no loop, and lets go

    async def take_again() -> bool:
        return await asyncio.wait_for(WriteQueue(file).take(30.0), 5.0)

    assert asyncio.run(take_again()) is True
