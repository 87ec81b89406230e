"""Hub processes that write one SQLite file take turns through a lock file.

SQLite lets one connection write at a time. A writer that finds the lock taken does
not wait on it: its busy handler sleeps and tries again after 1, 2, 5, 10, 15, 20,
25... milliseconds. With ``ketenhub serve --workers 2``, a group that met the other
worker's group slept for milliseconds after a lock that was free again within half
a millisecond (one group's statements and its ``fsync``).

So before ``BEGIN IMMEDIATE`` a group takes an exclusive ``flock`` on ``<db>-writers``
and holds it until its commit or rollback has returned. A group that finds it taken
waits in a thread of its own, which the kernel wakes the moment the lock is let go.

The queue only orders writers; SQLite's own lock still keeps them apart. A writer that
does not queue here (a tool with a connection of its own) is waited for as before, by
SQLite's busy handler; and when this lock cannot be used (no lock file can be made, a
wait given up on is still blocked) a group goes straight to SQLite's wait, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import threading
from pathlib import Path

SUFFIX = "-writers"
"""The lock file is the database file's name with this added, beside SQLite's ``-wal``."""

_Turn = tuple[asyncio.AbstractEventLoop, "asyncio.Future[bool]"]


class WriteQueue:
    """The write turns of one SQLite database file, for one committer.

    ``take`` and ``release`` come in pairs from one task at a time: a database's
    committer runs one group after another.
    """

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + SUFFIX)
        self._fd: int | None = None
        self._waits: queue.SimpleQueue[_Turn | None] = queue.SimpleQueue()
        self._waiter: threading.Thread | None = None
        self._abandoned = False
        """A wait was given up on (timed out, cancelled) and its thread has not returned."""

    async def take(self, timeout_s: float) -> bool:
        """Whether this group now holds the lock; False when it goes without the queue.

        Raises ``TimeoutError`` when the lock stayed taken for ``timeout_s``.
        """
        if self._abandoned:
            return False
        fd = self._open()
        if fd is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # taken: wait below
        except OSError:
            return False
        else:
            return True  # free: no thread
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[bool] = loop.create_future()
        self._start_waiter(fd)
        self._waits.put((loop, turn))
        try:
            return await asyncio.wait_for(turn, timeout_s)
        except BaseException:
            if turn.done() and not turn.cancelled() and turn.result():
                self.release()  # it came, but this group is no longer there to use it
            else:
                self._abandoned = True  # ``_answer`` lets go of it when it comes
            raise

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Stop the waiting thread once it is idle; closing the file lets go of the lock."""
        if self._waiter is not None:
            self._waits.put(None)
            self._waiter = None
        if self._fd is not None and not self._abandoned:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _open(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                return None
        return self._fd

    def _start_waiter(self, fd: int) -> None:
        if self._waiter is None:
            # A daemon: a wait another process never ends must not hold up an exit.
            self._waiter = threading.Thread(
                target=self._wait_turns, args=(fd,), name="ketenhub-write-queue", daemon=True
            )
            self._waiter.start()

    def _wait_turns(self, fd: int) -> None:
        while (wait := self._waits.get()) is not None:
            loop, turn = wait
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                got = True
            except OSError:
                got = False
            try:
                loop.call_soon_threadsafe(self._answer, turn, got)
            except RuntimeError:  # the loop was closed meanwhile: nobody takes the turn
                if got:
                    with contextlib.suppress(OSError):
                        fcntl.flock(fd, fcntl.LOCK_UN)

    def _answer(self, turn: asyncio.Future[bool], got: bool) -> None:
        if not turn.done():
            turn.set_result(got)
            return
        if got:  # given up on: let go at once
            self.release()
        self._abandoned = False
