"""``ketenhub participant erase INSZ``: crypto-shred a participant (``hub.services.erasure``).

Exit codes: 0 erased (or erased before, nothing new to erase); 1 the hub holds
nothing of this participant (a mistyped number is the likely cause, so a script
notices); 2 bad input or an unusable database or key directory. The INSZ is never
printed: the output names the erasure by its id and the participant by pseudonym.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from typing import Annotated

import typer

from hub.cli.base import app, fail, settings_from_env
from hub.db import migrate
from hub.domain.errors import HubError
from hub.domain.ids import Insz

participant_app = typer.Typer(no_args_is_help=True, help="Participants: erasure.")
app.add_typer(participant_app, name="participant")


def _default_by() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "cli"


@participant_app.command("erase")
def erase(
    insz: Annotated[str, typer.Argument(help="The participant's INSZ (11 digits).")],
    by: Annotated[
        str | None,
        typer.Option(help="Who erases, kept in the erasure record. Default: cli:<user>."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Erase a participant: revoke their consents, delete their kept answers, and destroy
    their data key, so their consent evidence and answers are unreadable (crypto-shredding).
    The audit log is untouched and still verifies."""
    try:
        participant = Insz.parse(insz)
    except HubError as exc:
        raise fail(f"Not a valid INSZ: {exc.detail}") from None
    settings = settings_from_env()
    if not migrate.exists(settings.database_url):
        raise fail(f"There is no database at {migrate.describe(settings.database_url)}.")
    if not migrate.is_current(settings.database_url):
        raise fail("The database is not at the current schema version: run `ketenhub db upgrade`.")
    from hub.auth.keys import FileKeyRing  # noqa: PLC0415 - only this command needs them
    from hub.clock import SystemClock  # noqa: PLC0415
    from hub.db.database import SqlDatabase, create_engine  # noqa: PLC0415
    from hub.services.erasure import ErasureService  # noqa: PLC0415

    try:
        keys = FileKeyRing.load(settings.key_dir)
    except HubError as exc:
        raise fail(f"Erasure needs the hub's pseudonym key: {exc.detail}") from None

    async def run() -> dict[str, object]:
        db = SqlDatabase(create_engine(settings.database_url))
        try:
            service = ErasureService(db=db, keys=keys, clock=SystemClock())
            outcome = await service.erase(participant, by=by or _default_by())
            return outcome.as_dict()
        finally:
            await db.dispose()

    try:
        report = asyncio.run(run())
    except HubError as exc:
        raise fail(exc.detail) from None
    if as_json:
        typer.echo(json.dumps(report))
    else:
        typer.echo(_describe(report))
    if not report["erased"] and not report["earlier"]:
        raise typer.Exit(1)


def _describe(report: dict[str, object]) -> str:
    erasure = report["erasure"]
    earlier = report["earlier"]
    if isinstance(erasure, dict):
        return (
            f"Erased participant {erasure['participant']} at {erasure['at']} "
            f"(erasure {erasure['id']}): data key "
            f"{'destroyed' if erasure['key_destroyed'] else 'absent'}, "
            f"{erasure['consents_revoked']} consent(s) revoked, "
            f"{erasure['answers_deleted']} kept answer(s) deleted."
        )
    if isinstance(earlier, list) and earlier:
        last = earlier[-1]
        return (
            f"Participant {last['participant']} was erased at {last['at']} "
            f"(erasure {last['id']}); there is nothing new to erase."
        )
    return "The hub holds no consents, data key or kept answers of this participant."
