"""One frozen settings object, read once in the CLI (or the worker factory) and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ISSUER = "urn:ketenhub:hub"


@dataclass(frozen=True, slots=True)
class Settings:
    policy_dir: Path
    database_url: str
    key_dir: Path
    public_url: str | None
    log_level: str = "info"
    log_json: bool = True

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
        )

    def as_env(self) -> dict[str, str]:
        """The same settings as environment variables, for worker processes."""
        env = {
            "KETENHUB_POLICY_DIR": str(self.policy_dir),
            "KETENHUB_DATABASE_URL": self.database_url,
            "KETENHUB_KEY_DIR": str(self.key_dir),
            "KETENHUB_LOG_LEVEL": self.log_level,
            "KETENHUB_LOG_FORMAT": "json" if self.log_json else "console",
        }
        if self.public_url:
            env["KETENHUB_PUBLIC_URL"] = self.public_url
        return env
