"""deploy/Dockerfile: what the image holds and how it runs, without a Docker engine.

The build copies a few paths of the repository and installs them; the test installs
exactly those paths the same way (``pip wheel``) and checks that the result is the whole
hub (migrations, CLI commands) and nothing else. The rest are the rules the image
keeps: non-root, no secret, a health check on /healthz.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.deploy.tools import DEPLOY, REPO

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def instructions(keyword: str) -> list[str]:
    """The arguments of each ``keyword`` instruction (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [
        line.split(None, 1)[1] for line in text.splitlines() if line.split(None, 1)[:1] == [keyword]
    ]


def copied_paths() -> list[str]:
    paths = []
    for args in instructions("COPY"):
        if args.startswith("--from="):
            continue
        *sources, _ = args.split()
        paths += sources
    return paths


def test_both_stages_are_python_3_11_slim_and_the_hub_runs_as_a_numeric_non_root_user() -> None:
    assert instructions("FROM") == ["python:3.11-slim AS build", "python:3.11-slim"]
    users = instructions("USER")
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert int(uid) >= 1000
    assert int(gid) >= 1000
    assert DOCKERFILE.rindex("USER") > DOCKERFILE.rindex("RUN")  # nothing runs as root after


def test_the_image_copies_only_the_package_sources_never_keys_or_state() -> None:
    assert sorted(copied_paths()) == sorted(
        ["pyproject.toml", "README.md", "hub", "adapters", "consent"]
    )
    environment = " ".join(instructions("ENV"))
    assert not re.search(r"(PASSWORD|SECRET|TOKEN)\w*=", environment)
    ignored = (REPO / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "var", "deploy/secrets"):
        assert path in ignored, path


def test_it_installs_with_the_postgres_extra_and_checks_health_on_healthz() -> None:
    assert any("pip install --no-cache-dir '.[postgres]'" in run for run in instructions("RUN"))
    (healthcheck,) = instructions("HEALTHCHECK")
    assert "http://127.0.0.1:8000/healthz" in healthcheck
    assert instructions("EXPOSE") == ["8000"]
    assert instructions("ENTRYPOINT") == ['["ketenhub"]']
    (command,) = instructions("CMD")
    assert '"serve", "--host", "0.0.0.0", "--port", "8000"' in command
    assert "KETENHUB_ENV=production" in " ".join(instructions("ENV"))


def test_the_copied_paths_alone_build_the_whole_hub(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for path in copied_paths():
        source = REPO / path
        if source.is_dir():
            shutil.copytree(source, context / path, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "wheel"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "wheel").glob("ketenhub-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = {n for n in names if n.startswith("hub/db/migrations/versions/")}
    expected = {
        str(p.relative_to(REPO))
        for p in (REPO / "hub" / "db" / "migrations" / "versions").glob("*.py")
    }
    assert expected
    assert expected <= migrations
    for module in ("hub/cli/simulate.py", "hub/db/migrations/script.py.mako", "hub/py.typed"):
        assert module in names, module
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ketenhub = hub.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not [n for n in names if n.startswith(("tests/", "var/", "deploy/"))]
