"""galaxy.yml's manifest is an allow-list (a user's own playbooks in the checkout must not travel): every playbook it
ships finds what it imports in the tarball too, and every playbook the collection has is shipped."""

from __future__ import annotations

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]


def shipped_playbooks():
    directives = yaml.safe_load((ROOT / "galaxy.yml").read_text())["manifest"]["directives"]
    return {name for line in directives if line.startswith("include ")
            for name in line.split()[1:] if name.startswith("playbooks/")}


def imported(playbook):
    """The playbooks and task files a playbook imports or includes, as paths in the collection."""
    text = (ROOT / playbook).read_text()
    found = {"playbooks/%s.yml" % name for name in re.findall(r"import_playbook:\s*hpc\.pcluster\.(\w+)", text)}
    found |= {"playbooks/%s" % path for path in re.findall(r"(?:include|import)_tasks:\s*(\S+\.yml)", text)}
    return found


def test_what_a_shipped_playbook_imports_is_shipped():
    shipped = shipped_playbooks()
    missing = sorted("%s (imported by %s)" % (target, playbook) for playbook in shipped for target in imported(playbook)
                     if target not in shipped)
    assert not missing, "galaxy.yml's manifest leaves out: %s" % missing


def test_every_playbook_of_the_collection_is_shipped():
    ours = {str(path.relative_to(ROOT)) for path in ROOT.glob("playbooks/**/*.yml")}
    # What imports reach from the entry points is the collection's; deploy.yml's chain reaches them all.
    reached, todo = set(), ["playbooks/deploy.yml", "playbooks/destroy.yml", "playbooks/node_local.yml"]
    while todo:
        playbook = todo.pop()
        if playbook not in reached:
            reached.add(playbook)
            todo.extend(imported(playbook))
    assert reached <= shipped_playbooks(), sorted(reached - shipped_playbooks())
    assert reached <= ours
