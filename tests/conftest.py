"""Fixtures every kind of test shares: the synthetic population, a migrated database,
and the settings of a hub on a copy of it with the demo policies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hub.db import migrate
from hub.demo.population import Population, make_population
from hub.settings import Settings

POLICIES = Path(__file__).resolve().parents[1] / "policies"


@pytest.fixture(scope="session")
def population() -> Population:
    return make_population(2026)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database at the newest schema; tests copy it rather than migrate their own."""
    path = tmp_path_factory.mktemp("template") / "hub.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def settings(tmp_path: Path, template_db: Path) -> Settings:
    db = tmp_path / "hub.db"
    shutil.copy(template_db, db)
    return Settings(
        policy_dir=POLICIES,
        database_url=f"sqlite:///{db}",
        key_dir=tmp_path / "keys",
        public_url="http://hub.test",
        # In-process calls outrun any partner: a test of limits sets its own
        # (tests/api/test_rate_limit.py).
        rate_limit="off",
        token_rate_limit="off",
    )
