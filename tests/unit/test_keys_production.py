"""What production (``KETENHUB_ENV=production``) refuses in a key directory (issue #5)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from hub.auth.keyindex import INDEX_FILE
from hub.auth.keys import FileKeyRing, Origin
from hub.auth.production import ProductionRefusalError, check_key_dir, source_tree_holding
from hub.auth.rotation import init_keys
from tests.builders import NOW

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def source_root(tmp_path: Path) -> Path:
    """A stand-in for the hub's source checkout."""
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'ketenhub'\n")
    return root


def refused(key_dir: Path, source_root: Path) -> str:
    with pytest.raises(ProductionRefusalError) as caught:
        check_key_dir(key_dir, source_root=source_root)
    message = caught.value.detail
    assert message.startswith("Production mode (KETENHUB_ENV=production) refuses to start:")
    assert "\n" not in message
    return message


def test_keys_made_by_keys_init_pass(tmp_path: Path, source_root: Path) -> None:
    init_keys(tmp_path / "keys", now=NOW)
    check_key_dir(tmp_path / "keys", source_root=source_root)
    assert FileKeyRing.open(tmp_path / "keys", production=True).origin is Origin.KEYS_INIT


def test_a_missing_key_directory_is_refused_and_not_made(tmp_path: Path, source_root: Path) -> None:
    message = refused(tmp_path / "keys", source_root)
    assert "does not exist" in message
    assert "ketenhub keys init" in message
    with pytest.raises(ProductionRefusalError):
        FileKeyRing.open(tmp_path / "keys", production=True)
    assert not (tmp_path / "keys").exists()


@pytest.mark.parametrize("origin", [Origin.DEVELOPMENT, Origin.DEMO])
def test_keys_made_on_the_fly_are_refused(
    tmp_path: Path, source_root: Path, origin: Origin
) -> None:
    FileKeyRing.load_or_create(tmp_path / "keys", origin=origin)
    message = refused(tmp_path / "keys", source_root)
    assert f"are {origin.value} keys" in message
    assert "ketenhub keys init" in message


def test_keys_of_the_previous_format_count_as_development_keys(
    tmp_path: Path, source_root: Path
) -> None:
    FileKeyRing.load_or_create(tmp_path / "keys")
    index = json.loads((tmp_path / "keys" / INDEX_FILE).read_text())
    (tmp_path / "keys" / INDEX_FILE).write_text(
        json.dumps({"active": index["active"], "signing": index["signing"]})
    )
    assert "are development keys" in refused(tmp_path / "keys", source_root)


@pytest.mark.parametrize(
    ("loosen", "named"),
    [
        (lambda d: d.chmod(0o750), "the directory itself"),
        (lambda d: (d / "seal.key").chmod(0o640), "seal.key"),
        (lambda d: (d / INDEX_FILE).chmod(0o604), INDEX_FILE),
    ],
    ids=["directory", "key-file-group", "index-others"],
)
def test_keys_readable_by_group_or_others_are_refused(
    tmp_path: Path, source_root: Path, loosen: object, named: str
) -> None:
    init_keys(tmp_path / "keys", now=NOW)
    loosen(tmp_path / "keys")  # type: ignore[operator]
    message = refused(tmp_path / "keys", source_root)
    assert f"{named} can be read by group or others" in message
    assert "chmod" in message


def test_a_key_directory_inside_the_source_tree_is_refused(source_root: Path) -> None:
    init_keys(source_root / "var" / "keys", now=NOW)
    message = refused(source_root / "var" / "keys", source_root)
    assert f"inside the source tree or repository {source_root}" in message


def test_a_key_directory_inside_any_git_work_tree_is_refused(
    tmp_path: Path, source_root: Path
) -> None:
    (tmp_path / "config-repo" / ".git").mkdir(parents=True)
    key_dir = tmp_path / "config-repo" / "secrets" / "keys"
    init_keys(key_dir, now=NOW)
    assert source_tree_holding(key_dir, source_root=source_root) == tmp_path / "config-repo"
    assert "config-repo" in refused(key_dir, source_root)


def test_the_real_source_tree_is_recognised() -> None:
    from pathlib import Path  # noqa: PLC0415

    import hub  # noqa: PLC0415

    repo = Path(hub.__file__).resolve().parents[1]
    assert source_tree_holding(repo / "var" / "keys") == repo
