"""One frozen settings object, read once in the CLI (or the worker factory) and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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


class SettingsError(ValueError):
    """A setting has a value the hub cannot run with; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    policy_dir: Path
    database_url: str
    key_dir: Path
    public_url: str | None
    log_level: str = "info"
    log_json: bool = True
    rate_limit: str = DEFAULT_RATE_LIMIT
    """``KETENHUB_RATE_LIMIT``: e.g. ``50/second;1000/minute``, or ``off``."""
    token_rate_limit: str = DEFAULT_TOKEN_RATE_LIMIT
    """``KETENHUB_TOKEN_RATE_LIMIT``: e.g. ``30/minute``, or ``off``."""

    def __post_init__(self) -> None:
        for name, value in (
            ("KETENHUB_RATE_LIMIT", self.rate_limit),
            ("KETENHUB_TOKEN_RATE_LIMIT", self.token_rate_limit),
        ):
            try:
                parse_limits(value, name=name)
            except ValueError as exc:
                raise SettingsError(str(exc)) from None

    @property
    def issuer(self) -> str:
        """Issuer and audience of access tokens: the public URL when one is configured."""
        return self.public_url or DEFAULT_ISSUER

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Settings:
        env = os.environ if env is None else env
        base = cwd or Path.cwd()
        database_url = (
            env.get("KETENHUB_DATABASE_URL") or f"sqlite:///{base / 'var' / 'ketenhub.db'}"
        )
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
        }
        if self.public_url:
            env["KETENHUB_PUBLIC_URL"] = self.public_url
        return env
