"""docs/architecture.md's file tables agree with the tree: every module_utils and plugin_utils file has its row, and
every row names a file that exists."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def rows(folder):
    """The files the table under "### plugins/<folder>/" names (its rows' first cells)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = re.search(r"^### plugins/%s/\n(.*?)(?=^#)" % folder, text, re.M | re.S)
    assert section, "docs/architecture.md has no section plugins/%s/" % folder
    return set(re.findall(r"^\| `([^`]+\.py)` \|", section.group(1), re.M))


@pytest.mark.parametrize("folder", ["module_utils", "plugin_utils"])
def test_every_file_has_its_row_and_every_row_its_file(folder):
    files = {str(p.relative_to(ROOT / "plugins" / folder)) for p in (ROOT / "plugins" / folder).rglob("*.py")
             if p.name != "__init__.py" and "__pycache__" not in p.parts}
    named = rows(folder)
    assert named == files, {"files without a row": sorted(files - named), "rows without a file": sorted(named - files)}
