"""One license and one version line across the collection's metadata and plugin docs."""

from __future__ import annotations

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())


def version_tuple(text):
    return tuple(int(part) for part in str(text).split("."))


def test_every_role_has_the_collection_license():
    licenses = {path.parent.parent.name: yaml.safe_load(path.read_text())["galaxy_info"]["license"]
                for path in (ROOT / "roles").glob("*/meta/main.yml")}
    assert licenses and set(licenses.values()) == set(GALAXY["license"]), licenses


def test_version_added_is_a_released_version_of_this_collection():
    """version_added (without version_added_collection: another collection's version) is at most galaxy.yml's."""
    ceiling = version_tuple(GALAXY["version"])
    released = set(yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text())["releases"])
    wrong = []
    sources = list((ROOT / "plugins").rglob("*.py")) + list((ROOT / "plugins").rglob("*.yml")) + \
        list((ROOT / "roles").glob("*/meta/argument_specs.yml"))
    for path in sources:
        text = path.read_text()
        for match in re.finditer(r"^(\s*)version_added:\s*['\"]?([0-9.]+)['\"]?\s*$", text, re.M):
            following = text[match.end():match.end() + 200]
            if re.match(r"\s*\n%sversion_added_collection:" % match.group(1), following):
                continue
            version = match.group(2)
            if version_tuple(version) > ceiling or version not in released | {GALAXY["version"]}:
                wrong.append("%s: %s" % (path.relative_to(ROOT), version))
    assert not wrong, "version_added above galaxy.yml's %s or not a release: %s" % (GALAXY["version"], wrong)
