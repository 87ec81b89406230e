"""What every ``ketenhub`` command shares: the root app, settings, and failing plainly."""

from __future__ import annotations

import typer

from hub.domain.errors import PolicyError
from hub.logging import configure_logging
from hub.settings import Settings, SettingsError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Ketenhub: privacy-controlled, field-level data exchange.",
)


def settings_from_env() -> Settings:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise fail(str(exc)) from None
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def policy_message(settings: Settings, error: PolicyError) -> str:
    lines = "\n".join(f"  {problem}" for problem in error.problems)
    return f"The policy directory {settings.policy_dir} is invalid:\n{lines}"
