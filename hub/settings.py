"""One frozen settings object, read once in the CLI (or the worker factory) and passed down.

Secrets never need to be in the environment itself or in the repository: each setting
in ``SECRET_SETTINGS`` may be given as ``<NAME>_FILE``, the path of a file holding the
value (a mounted Kubernetes Secret or Docker secret; one trailing newline is stripped).
Both forms at once are an error naming both. ``KETENHUB_DATABASE_PASSWORD`` is put into
``KETENHUB_DATABASE_URL``'s password, so the URL itself can live in plain config.
No error message, ``repr`` or log line shows a secret's value.

``KETENHUB_ENV=production`` makes the settings stricter (``production_problems``); the
key directory's own checks are in ``hub.auth.production``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

from hub.ratelimit import parse_limits

DEFAULT_ISSUER = "urn:ketenhub:hub"
DEFAULT_RATE_LIMIT = "50/second;1000/minute"
"""Per OAuth client on the partner API: bursts of a partner's batch job pass, while one
client (a runaway loop, a stolen secret) can neither starve the others nor pull more
than about 17 participants' data a second, sustained."""
DEFAULT_TOKEN_RATE_LIMIT = "30/minute"  # noqa: S105  # a rate, not a password
"""Per presented client id at ``POST /oauth/token``: a token lives 15 minutes, so a
partner's fleet of workers restarting at once passes, and secret guessing is slowed
to a crawl."""


DEVELOPMENT: Final = "development"
PRODUCTION: Final = "production"
SECRET_SETTINGS: Final = ("KETENHUB_DATABASE_URL", "KETENHUB_DATABASE_PASSWORD")
"""Settings that may carry a secret; each may be given as ``<NAME>_FILE`` instead."""


class SettingsError(ValueError):
    """A setting has a value the hub cannot run with; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    policy_dir: Path
    database_url: str = field(repr=False)
    """May hold the database password: kept out of ``repr``."""
    key_dir: Path
    public_url: str | None
    log_level: str = "info"
    log_json: bool = True
    rate_limit: str = DEFAULT_RATE_LIMIT
    """``KETENHUB_RATE_LIMIT``: e.g. ``50/second;1000/minute``, or ``off``."""
    token_rate_limit: str = DEFAULT_TOKEN_RATE_LIMIT
    """``KETENHUB_TOKEN_RATE_LIMIT``: e.g. ``30/minute``, or ``off``."""
    environment: str = DEVELOPMENT
    """``KETENHUB_ENV``: ``development`` (the default) or ``production``."""

    def __post_init__(self) -> None:
        if self.environment not in (DEVELOPMENT, PRODUCTION):
            raise SettingsError(
                f"KETENHUB_ENV must be {DEVELOPMENT!r} or {PRODUCTION!r}, not {self.environment!r}."
            )
        for name, value in (
            ("KETENHUB_RATE_LIMIT", self.rate_limit),
            ("KETENHUB_TOKEN_RATE_LIMIT", self.token_rate_limit),
        ):
            try:
                parse_limits(value, name=name)
            except ValueError as exc:
                raise SettingsError(str(exc)) from None
        if self.production:
            problems = production_problems(self)
            if problems:
                raise SettingsError(problems[0])

    @property
    def production(self) -> bool:
        return self.environment == PRODUCTION

    @property
    def issuer(self) -> str:
        """Issuer and audience of access tokens: the public URL when one is configured."""
        return self.public_url or DEFAULT_ISSUER

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Settings:
        env = os.environ if env is None else env
        base = cwd or Path.cwd()
        environment = (env.get("KETENHUB_ENV") or DEVELOPMENT).strip().lower()
        url = read_setting(env, "KETENHUB_DATABASE_URL")
        if environment == PRODUCTION:
            for name, value in (("KETENHUB_DATABASE_URL", url), ("KETENHUB_KEY_DIR", None)):
                if not (value or env.get(name)):
                    raise SettingsError(
                        f"KETENHUB_ENV=production: set {name}; production names where its "
                        "data and keys are rather than defaulting to ./var."
                    )
        database_url = url or f"sqlite:///{base / 'var' / 'ketenhub.db'}"
        password = read_setting(env, "KETENHUB_DATABASE_PASSWORD")
        if password is not None:
            database_url = with_password(database_url, password)
        public_url = env.get("KETENHUB_PUBLIC_URL") or None
        return cls(
            policy_dir=Path(env.get("KETENHUB_POLICY_DIR") or base / "policies"),
            database_url=database_url,
            key_dir=Path(env.get("KETENHUB_KEY_DIR") or base / "var" / "keys"),
            public_url=public_url.rstrip("/") if public_url else None,
            log_level=env.get("KETENHUB_LOG_LEVEL", "info").lower(),
            log_json=env.get("KETENHUB_LOG_FORMAT", "json").lower() != "console",
            rate_limit=env.get("KETENHUB_RATE_LIMIT") or DEFAULT_RATE_LIMIT,
            token_rate_limit=env.get("KETENHUB_TOKEN_RATE_LIMIT") or DEFAULT_TOKEN_RATE_LIMIT,
            environment=environment,
        )

    def as_env(self) -> dict[str, str]:
        """The same settings as environment variables, for worker processes."""
        env = {
            "KETENHUB_POLICY_DIR": str(self.policy_dir),
            "KETENHUB_DATABASE_URL": self.database_url,
            "KETENHUB_KEY_DIR": str(self.key_dir),
            "KETENHUB_LOG_LEVEL": self.log_level,
            "KETENHUB_LOG_FORMAT": "json" if self.log_json else "console",
            "KETENHUB_RATE_LIMIT": self.rate_limit,
            "KETENHUB_TOKEN_RATE_LIMIT": self.token_rate_limit,
            "KETENHUB_ENV": self.environment,
        }
        if self.public_url:
            env["KETENHUB_PUBLIC_URL"] = self.public_url
        return env

    def export(self, environ: MutableMapping[str, str]) -> None:
        """Put these settings into ``environ`` for worker processes, replacing the
        ``_FILE`` and password forms they were read from (a worker reading both the
        URL and its ``_FILE`` would refuse to start)."""
        for name in SECRET_SETTINGS:
            environ.pop(f"{name}_FILE", None)
        environ.pop("KETENHUB_DATABASE_PASSWORD", None)
        environ.update(self.as_env())


def read_setting(env: Mapping[str, str], name: str) -> str | None:
    """``name``'s value, or the content of the file ``name``_FILE names; None if unset.

    Raises ``SettingsError`` naming the variables (never the value) when both are set,
    or the file cannot be read or is empty.
    """
    value = env.get(name) or None
    path = env.get(f"{name}_FILE") or None
    if path is None:
        return value
    if value is not None:
        raise SettingsError(f"{name} and {name}_FILE are both set; set one of them.")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{name}_FILE: cannot read {path} ({type(exc).__name__}).") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise SettingsError(f"{name}_FILE: {path} is empty.")
    return text


def with_password(url: str, password: str) -> str:
    """``url`` (an SQLAlchemy URL) with ``password`` percent-encoded as its password."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        raise SettingsError(
            "KETENHUB_DATABASE_PASSWORD is set, but KETENHUB_DATABASE_URL is an SQLite "
            "database, which takes no password."
        )
    user, at, host = parts.netloc.rpartition("@")
    if parts.password is not None:
        raise SettingsError(
            "KETENHUB_DATABASE_URL holds a password and KETENHUB_DATABASE_PASSWORD is set "
            "too; give the password in one place."
        )
    if not at or not user:
        raise SettingsError(
            "KETENHUB_DATABASE_PASSWORD is set, but KETENHUB_DATABASE_URL names no user "
            "(postgresql+psycopg://USER@HOST/DB)."
        )
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def production_problems(settings: Settings) -> list[str]:
    """What ``KETENHUB_ENV=production`` refuses in the settings, each a one-line message.

    - no ``KETENHUB_PUBLIC_URL``, or one that is not ``https``: it is the tokens'
      issuer and audience and the ``private_key_jwt`` audience (CONTRACT.md 3), the
      URL partners call through TLS;
    - a rate limit switched ``off``: it is what keeps a stolen client secret from
      pulling the register wholesale.
    """
    problems = []
    prefix = "KETENHUB_ENV=production refuses to start:"
    if not settings.public_url:
        problems.append(
            f"{prefix} KETENHUB_PUBLIC_URL is unset; set it to the https URL partners call."
        )
    elif urlsplit(settings.public_url).scheme != "https":
        problems.append(f"{prefix} KETENHUB_PUBLIC_URL must be an https URL.")
    for name, value in (
        ("KETENHUB_RATE_LIMIT", settings.rate_limit),
        ("KETENHUB_TOKEN_RATE_LIMIT", settings.token_rate_limit),
    ):
        if value.strip().lower() == "off":
            problems.append(f"{prefix} {name}=off; production keeps its rate limits.")
    return problems
