"""``ketenhub`` serve | demo | client create | audit verify | policy check | db upgrade."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from hub.cli.base import app, fail, policy_message, settings_from_env
from hub.db import migrate
from hub.domain.errors import HubError, PolicyError
from hub.domain.ids import PartnerId

client_app = typer.Typer(no_args_is_help=True, help="Partner API clients.")
audit_app = typer.Typer(no_args_is_help=True, help="The audit log.")
policy_app = typer.Typer(no_args_is_help=True, help="The policy directory.")
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
app.add_typer(client_app, name="client")
app.add_typer(audit_app, name="audit")
app.add_typer(policy_app, name="policy")
app.add_typer(db_app, name="db")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Hub processes.")] = 1,
) -> None:
    """Run the hub."""
    settings = settings_from_env()
    try:
        from hub.serving import run_server  # noqa: PLC0415

        run_server(settings, host, port, workers)
    except PolicyError as exc:
        raise fail(policy_message(settings, exc)) from None
    except HubError as exc:  # the database cannot be reached, the keys are unusable
        raise fail(f"The hub cannot start: {exc.detail}") from None


@app.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic population.")] = 2026,
) -> None:
    """Run the hub with the demo network's simulated partner systems."""
    from hub.auth.keys import FileKeyRing, Origin  # noqa: PLC0415
    from hub.demo.runner import run_demo  # noqa: PLC0415

    if os.environ.get("KETENHUB_ENV", "").strip().lower() == "production":
        raise fail(
            "ketenhub demo refuses KETENHUB_ENV=production: it makes demo keys and "
            "synthetic data. Run the hub with `ketenhub serve`."
        )

    if "KETENHUB_LOG_LEVEL" not in os.environ:
        # A visitor reads the guide and the API's answers; info events are one setting away.
        os.environ["KETENHUB_LOG_LEVEL"] = "warning"
    settings = settings_from_env()
    fresh_db = None
    if "KETENHUB_DATABASE_URL" not in os.environ:
        # The demo runs on its own database, made anew each start: it is a showroom.
        fresh_db = Path("var") / "demo.db"
        settings = replace(settings, database_url=f"sqlite:///{fresh_db.resolve()}")
    try:
        # Keys the demo makes are marked demo keys: production refuses them (keys.json).
        FileKeyRing.load_or_create(settings.key_dir, origin=Origin.DEMO)
        run_demo(settings, host=host, port=port, seed_value=seed, fresh_db=fresh_db)
    except HubError as exc:
        raise fail(f"The demo cannot start: {exc.detail}") from None
    except PolicyError as exc:
        raise fail(policy_message(settings, exc)) from None


@client_app.command("create")
def client_create(
    partner: Annotated[str, typer.Option(help="The partner id from partners.yaml.")],
    scope: Annotated[str, typer.Option(help='Space-separated, e.g. "exchange consent:write".')],
    jwks_file: Annotated[
        Path | None,
        typer.Option(help="The client's public JWK Set: makes a private_key_jwt client."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a client; its secret is shown once and stored only as a hash."""
    settings = settings_from_env()
    migrate.upgrade(settings.database_url)
    jwks: object | None = None
    if jwks_file is not None:
        try:
            jwks = json.loads(jwks_file.read_text())
        except (OSError, ValueError) as exc:
            raise fail(
                f"Cannot read a JSON JWK Set from {jwks_file}: {type(exc).__name__}"
            ) from None

    async def create() -> dict[str, str]:
        from hub import bootstrap  # noqa: PLC0415

        hub = await bootstrap.build(settings)
        try:
            made = await hub.clients.create(PartnerId(partner), frozenset(scope.split()), jwks)
        finally:
            await hub.aclose()
        out = {"client_id": made.client_id}
        if made.client_secret is not None:
            out["client_secret"] = made.client_secret
        return out

    try:
        result = asyncio.run(create())
    except HubError as exc:
        raise fail(exc.detail) from None
    except PolicyError as exc:
        raise fail(policy_message(settings, exc)) from None
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for key, value in result.items():
            typer.echo(f"{key}: {value}")


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(
            help="A signed checkpoint kept outside the database (the checkpoint.jws of a "
            "GET /v1/audit/verify answer) to hold the log against; may be repeated."
        ),
    ] = None,
) -> None:
    """Check the audit log's hash chain and signed checkpoints offline; exits 1 on damage."""
    settings = settings_from_env()
    from hub.auth.keys import FileKeyRing  # noqa: PLC0415
    from hub.db.database import SqlDatabase, create_engine  # noqa: PLC0415
    from hub.services.audit import read_checkpoint, verify_log  # noqa: PLC0415

    if not migrate.exists(settings.database_url):
        raise fail(f"There is no database at {migrate.describe(settings.database_url)}.")
    if not migrate.is_current(settings.database_url):
        raise fail("The database is not a Ketenhub database at the current schema version.")
    try:
        if settings.production:
            from hub.auth.production import check_key_dir  # noqa: PLC0415

            check_key_dir(settings.key_dir)
        keys = FileKeyRing.load(settings.key_dir)
    except HubError as exc:
        raise fail(f"The checkpoints need the hub's keys: {exc.detail}") from None
    anchors = []
    for jws in checkpoint or ():
        found = read_checkpoint(keys, jws.strip())
        if found is None:
            raise fail("A --checkpoint is not a checkpoint signed by this hub's keys.")
        anchors.append(found)

    async def verify() -> dict[str, object]:
        db = SqlDatabase(create_engine(settings.database_url))
        try:
            return (await verify_log(db, keys, anchors)).as_dict()
        finally:
            await db.dispose()

    report = asyncio.run(verify())
    typer.echo(json.dumps(report))
    if not report["ok"]:
        raise typer.Exit(1)


@policy_app.command("check")
def policy_check(
    directory: Annotated[Path | None, typer.Argument(help="Default: KETENHUB_POLICY_DIR.")] = None,
) -> None:
    """Validate a policy directory; lists every problem with file and line."""
    from adapters.registry import adapter_names  # noqa: PLC0415
    from hub.policy.loader import check_policy_dir  # noqa: PLC0415

    target = directory or settings_from_env().policy_dir
    problems = check_policy_dir(target, adapters=adapter_names())
    if problems:
        for problem in problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1)
    typer.echo(f"{target}: valid")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the schema migrations."""
    settings = settings_from_env()
    migrate.upgrade(settings.database_url, revision)
    typer.echo("database is at the newest schema")
