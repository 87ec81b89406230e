"""``ketenhub``: serve | demo | client create | audit verify | policy check | db upgrade.

Settings are read once per command and passed down (STYLE.md habit 8). The web
server, the HTTP client and the composition root are imported by the commands that
use them: ``audit verify`` and ``policy check`` start in a fraction of the time
without them. Each module of this package adds its commands to ``app``.
"""

from __future__ import annotations

import sys

from hub.cli import commands as commands
from hub.cli import keys as keys
from hub.cli import masterkeys as masterkeys
from hub.cli import participants as participants
from hub.cli import simulate as simulate
from hub.cli.base import app

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
