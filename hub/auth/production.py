"""What production (``KETENHUB_ENV=production``) demands of the key directory.

A production hub never makes keys on the fly; it refuses to start (the CLI exits 2
with the message) when the key directory

- does not exist (``ketenhub keys init`` makes it, deliberately);
- lies inside the source tree or any git work tree: keys never come from a repository;
- or any file in it can be read by group or others (mode ``0700``/``0600`` expected);
- holds keys made on the fly by a development start or by ``ketenhub demo``
  (``origin`` in ``keys.json``; an index of the previous format counts as
  development keys, since a start made it).

The ``origin`` mark guards against mistakes (a demo key directory copied to a server),
not against someone who can write the key directory: they hold the keys anyway.
The settings' own production checks (public URL, rate limits) are in ``hub.settings``.
"""

from __future__ import annotations

import stat
from pathlib import Path

from hub.auth.keyindex import INDEX_FILE, KeyRingError, Origin, read_index

_SOURCE_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding the ``hub`` package: the source tree in a checkout."""


class ProductionRefusalError(KeyRingError):
    """Production mode refuses this key directory; the message says why and what to do."""


def check_key_dir(key_dir: Path, *, source_root: Path = _SOURCE_ROOT) -> None:
    """Raise ``ProductionRefusalError`` naming the first problem; return when all hold."""
    where = f"the key directory {key_dir}"
    if not key_dir.is_dir():
        raise _refuse(
            f"{where} does not exist. Production never makes keys on the fly: make them "
            "once with `ketenhub keys init` (KETENHUB_KEY_DIR names where)"
        )
    inside = source_tree_holding(key_dir, source_root=source_root)
    if inside is not None:
        raise _refuse(
            f"{where} lies inside the source tree or repository {inside}: keys never come "
            "from a repository. Keep them in a mounted secret or a directory of their own"
        )
    loose = loose_permissions(key_dir)
    if loose is not None:
        name, mode = loose
        raise _refuse(
            f"{where}: {name} can be read by group or others (mode {mode:04o}). "
            f"Make the directory 0700 and its files 0600 (chmod -R go= {key_dir})"
        )
    origin = read_index(key_dir / INDEX_FILE).origin
    if origin is not Origin.KEYS_INIT:
        made_by = "ketenhub demo" if origin is Origin.DEMO else "a development start"
        raise _refuse(
            f"the keys in {key_dir} are {origin.value} keys, made on the fly by {made_by}. "
            "Production needs keys made with `ketenhub keys init` in a new directory"
        )


def source_tree_holding(path: Path, *, source_root: Path = _SOURCE_ROOT) -> Path | None:
    """The source tree or git work tree that ``path`` lies in, or None."""
    resolved = path.resolve()
    is_checkout = (source_root / "pyproject.toml").is_file() or (source_root / ".git").exists()
    if is_checkout and resolved.is_relative_to(source_root):
        return source_root
    for parent in (resolved, *resolved.parents):
        if (parent / ".git").exists():
            return parent
    return None


def loose_permissions(key_dir: Path) -> tuple[str, int] | None:
    """The first of the directory and its files that group or others may use, and its mode."""
    for path in (key_dir, *sorted(key_dir.iterdir())):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            return (path.name if path != key_dir else "the directory itself", mode)
    return None


def _refuse(problem: str) -> ProductionRefusalError:
    return ProductionRefusalError(
        f"Production mode (KETENHUB_ENV=production) refuses to start: {problem}."
    )
