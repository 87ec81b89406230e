"""``ketenhub keys`` init | rotate | prune | status: the hub's signing keys (issue #5).

Each command works whether or not a hub is running on the key directory: changes hold
``keys.lock`` and replace ``keys.json`` atomically, and running hubs follow within
seconds (``hub.auth.keys``). Each prints one line of JSON and exits 0; a refusal is
one plain line on stderr and exit 2, and changes nothing. What a retired key stays
published for is decided in ``hub.auth.rotation``; the consents it needs to know
about are read from the hub's database (``KETENHUB_DATABASE_URL``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import typer

from hub.cli.base import app, fail, settings_from_env
from hub.domain.errors import HubError

if TYPE_CHECKING:
    from hub.auth.rotation import KeyChange, ReceiptsSigned
    from hub.ports import OutstandingConsents
    from hub.settings import Settings

T = TypeVar("T")

keys_app = typer.Typer(no_args_is_help=True, help="The hub's signing keys.")
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init() -> None:
    """Make the key directory's keys, deliberately: the only keys production accepts."""
    from hub.auth.datakeys import MasterKeyRing  # noqa: PLC0415
    from hub.auth.production import source_tree_holding  # noqa: PLC0415
    from hub.auth.rotation import init_keys  # noqa: PLC0415
    from hub.clock import SystemClock  # noqa: PLC0415

    settings = settings_from_env()
    if settings.production:
        inside = source_tree_holding(settings.key_dir)
        if inside is not None:
            raise fail(
                f"KETENHUB_ENV=production: the key directory {settings.key_dir} lies inside "
                f"the source tree or repository {inside}; keys never come from a repository."
            )
    change = _run(lambda: init_keys(settings.key_dir, now=SystemClock().now()))
    # The master key of per-participant data keys belongs to the same deliberate act:
    # a production hub never makes one on the fly (hub.bootstrap).
    _run(lambda: MasterKeyRing.load_or_create(settings.key_dir))
    _print(change)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new signing key active; the old one is retired, verify-only."""
    from hub.auth.rotation import rotate  # noqa: PLC0415

    settings = settings_from_env()
    _check(settings)
    _print(_with_receipts(settings, lambda now, r: rotate(settings.key_dir, now=now, receipts=r)))


@keys_app.command("prune")
def keys_prune() -> None:
    """Drop retired keys from the JWK Set once nothing they signed is still in use."""
    from hub.auth.rotation import prune  # noqa: PLC0415

    settings = settings_from_env()
    _check(settings)
    _print(_with_receipts(settings, lambda now, r: prune(settings.key_dir, now=now, receipts=r)))


@keys_app.command("status")
def keys_status() -> None:
    """The key set: origin, active key, retired keys and whether each is published."""
    from hub.auth.keyindex import INDEX_FILE, read_index  # noqa: PLC0415
    from hub.auth.rotation import describe  # noqa: PLC0415
    from hub.clock import SystemClock  # noqa: PLC0415

    settings = settings_from_env()
    _check(settings)
    index = _run(lambda: read_index(settings.key_dir / INDEX_FILE))
    typer.echo(json.dumps(describe(index, SystemClock().now())))


def _check(settings: Settings) -> None:
    """Production refuses a key directory it would not start with (``hub.auth.production``)."""
    if settings.production:
        from hub.auth.production import check_key_dir  # noqa: PLC0415

        _run(lambda: check_key_dir(settings.key_dir))


def _with_receipts(
    settings: Settings, change: Callable[[datetime, ReceiptsSigned], KeyChange]
) -> KeyChange:
    """Run ``change`` with the database's answer to "which consents are still active"."""
    from hub.clock import SystemClock  # noqa: PLC0415
    from hub.db import migrate  # noqa: PLC0415
    from hub.db.database import SqlDatabase, check_reachable, create_engine  # noqa: PLC0415
    from hub.ports import OutstandingConsents  # noqa: PLC0415

    now = SystemClock().now()
    url = settings.database_url
    if not migrate.exists(url):  # no database yet: no consent was ever granted
        return _run(lambda: change(now, lambda *_: OutstandingConsents(0, False, None)))
    _run(lambda: check_reachable(url))
    if not migrate.is_current(url):
        raise fail(
            f"The database at {migrate.describe(url)} is not at the current schema: run "
            "`ketenhub db upgrade` first (the rotation reads which consents are active)."
        )

    async def run() -> KeyChange:
        db = SqlDatabase(create_engine(url))
        loop = asyncio.get_running_loop()

        def receipts(since: datetime | None, before: datetime, at: datetime) -> OutstandingConsents:
            read = db.read(
                lambda uow: uow.consents.outstanding(
                    granted_from=since, granted_before=before, now=at
                )
            )
            return asyncio.run_coroutine_threadsafe(read, loop).result()

        try:
            # The change holds the key directory's lock and blocks: off the event loop,
            # which meanwhile answers its database reads.
            return await asyncio.to_thread(change, now, receipts)
        finally:
            await db.dispose()

    return _run(lambda: asyncio.run(run()))


def _run(work: Callable[[], T]) -> T:
    try:
        return work()
    except HubError as exc:  # keys refused, unreadable or missing; database unreachable
        raise fail(exc.detail) from None
    except OSError as exc:
        raise fail(f"The key directory cannot be changed ({type(exc).__name__}).") from None


def _print(change: KeyChange) -> None:
    typer.echo(json.dumps(change.as_dict()))
