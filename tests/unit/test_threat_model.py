"""docs/threat-model.md links each threat to tests: every link must name a real test."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "docs" / "threat-model.md"
_LINK = re.compile(r"`((?:\w+/)+test_\w+\.py)?(?:::(\w+))?`")


def _links() -> list[tuple[str, str | None]]:
    """``(test file, test name or None)`` for each link; ``::name`` is in the row's last file."""
    found: list[tuple[str, str | None]] = []
    for line in MODEL.read_text().splitlines():
        current: str | None = None
        for module, name in _LINK.findall(line):
            current = module or current
            if current is not None and (module or name):
                found.append((current, name or None))
    return found


def test_every_test_the_threat_model_names_exists() -> None:
    links = _links()
    assert len(links) > 60
    missing = []
    for module, name in links:
        path = REPO / "tests" / module
        if not path.is_file():
            missing.append(module)
        elif name is not None and not re.search(
            rf"^(async )?def {name}\(", path.read_text(), re.MULTILINE
        ):
            missing.append(f"{module}::{name}")
    assert missing == []
