"""Files of a key directory: created whole, replaced atomically, changed under a lock.

Both the signing keys' index (``hub.auth.keyindex``) and the master keys of data keys
(``hub.auth.datakeys``) live in ``KETENHUB_KEY_DIR`` and are written by processes that
may run at the same moment (hub workers starting together, a rotation beside a
running hub): one set of primitives serves both.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

_LINK_UNSUPPORTED = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


def create_file(path: Path, data: bytes) -> bool:
    """Create ``path`` (mode 0600) holding ``data``, whole; False if it already exists.

    The file is written aside and hard-linked into place, which fails when the name
    is taken: readers never see half a key, and concurrent creators cannot overwrite
    each other.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".creating-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in _LINK_UNSUPPORTED:
                raise
            return _create_exclusively(path, data)
    finally:
        Path(temporary).unlink(missing_ok=True)
    sync_directory(path.parent)
    return True


def _create_exclusively(path: Path, data: bytes) -> bool:
    """The fallback for file systems without hard links: exclusive, but not atomic."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` by a file (mode 0600) holding ``data``, atomically and durably.

    Written aside, fsynced, renamed over the old one (POSIX ``rename`` is atomic), then
    the directory fsynced: a reader sees the old file or the new one, never half of one,
    and a crash leaves one of the two.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".writing-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    # Make a new name durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold ``lock_file`` (made 0600 if absent) exclusively, across processes.

    ``flock`` is released by the kernel when the holder dies, so a crashed writer never
    leaves the directory locked; the file itself stays (it holds nothing). Raises
    ``OSError`` when the lock file cannot be opened.
    """
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
