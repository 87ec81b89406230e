"""``ketenhub keys rotate-master`` and ``keys retire-master``: the master keys that wrap
the participants' data keys (``hub.auth.datakeys``).

``rotate-master`` makes a new master key active, then rewraps every data key under
it in short transactions (hubs keep serving; they pick the new key up by themselves).
Interrupted, it is finished by ``rotate-master --resume``, which makes no new key.
``retire-master`` removes the master keys no data key is wrapped under any more
(it rewraps first, so a key a hub used just before the rotation is never lost).

The commands join the ``keys`` group of ``hub.cli.keys`` (the signing keys' commands).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer

from hub.cli.base import fail, settings_from_env
from hub.cli.keys import keys_app
from hub.db import migrate
from hub.domain.errors import HubError

if TYPE_CHECKING:
    from hub.auth.datakeys import MasterKeyRing
    from hub.db.database import SqlDatabase
    from hub.settings import Settings


def _open(settings: Settings) -> tuple[SqlDatabase, MasterKeyRing]:
    from hub.auth.datakeys import MasterKeyRing  # noqa: PLC0415 - only these commands
    from hub.db.database import SqlDatabase, create_engine  # noqa: PLC0415

    if not migrate.exists(settings.database_url):
        raise fail(f"There is no database at {migrate.describe(settings.database_url)}.")
    if not migrate.is_current(settings.database_url):
        raise fail("The database is not at the current schema version: run `ketenhub db upgrade`.")
    db = SqlDatabase(create_engine(settings.database_url))

    async def wrapped() -> bool:
        return bool(await db.read(lambda uow: uow.participant_keys.count_by_master()))

    try:
        held = asyncio.run(wrapped())
        return db, MasterKeyRing.load_or_create(
            settings.key_dir, may_create=not held and not settings.production
        )
    except HubError as exc:
        asyncio.run(db.dispose())
        raise fail(exc.detail) from None


@keys_app.command("rotate-master")
def rotate_master(
    resume: Annotated[
        bool,
        typer.Option(help="Finish an interrupted rewrap under the active key; no new key."),
    ] = False,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Data keys per transaction.")] = 500,
) -> None:
    """Make a new master key active and rewrap every participant data key under it."""
    from hub.services.datakeys import rewrap_all  # noqa: PLC0415

    settings = settings_from_env()
    db, masters = _open(settings)

    async def run() -> dict[str, object]:
        try:
            return (await rewrap_all(db, masters, batch=batch)).as_dict()
        finally:
            await db.dispose()

    try:
        if not resume:
            masters.rotate()
        report = asyncio.run(run())
    except HubError as exc:
        raise fail(exc.detail) from None
    typer.echo(json.dumps(report))
    if report["unreadable"]:
        typer.echo(
            f"{report['unreadable']} data key(s) did not unwrap with any master key held: "
            "restore the key directory's master-*.key files from backup, then run "
            "`ketenhub keys rotate-master --resume`.",
            err=True,
        )
        raise typer.Exit(1)


@keys_app.command("retire-master")
def retire_master() -> None:
    """Remove every master key (but the active one) that no data key is wrapped under."""
    from hub.services.datakeys import rewrap_all  # noqa: PLC0415

    settings = settings_from_env()
    db, masters = _open(settings)

    async def run() -> dict[str, object]:
        try:
            report = await rewrap_all(db, masters)
            unused = [m for m in masters.ids if not report.by_master.get(m)]
            return {"retired": masters.retire(unused), **report.as_dict()}
        finally:
            await db.dispose()

    try:
        report = asyncio.run(run())
    except HubError as exc:
        raise fail(exc.detail) from None
    typer.echo(json.dumps(report))
