"""One declaration per thing across the roles and playbooks: the cluster's name and its default, the rule that names
the inventory's groups."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[3]
DEFAULT_NAME = "ml-training-cluster"


def playbook_and_role_lines():
    """(path, line number, line) of every non-comment line of the roles' and playbooks' YAML and templates."""
    paths = [p for p in ROOT.glob("roles/*/**/*") if p.suffix in (".yml", ".yaml", ".j2") and "molecule" not in p.parts]
    paths += list(ROOT.glob("playbooks/**/*.yml"))
    for path in sorted(paths):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.lstrip().startswith("#"):
                yield path.relative_to(ROOT), number, line


def test_the_cluster_name_has_one_default_in_role_pcluster():
    found = ["%s:%d: %s" % (path, number, line.strip()) for path, number, line in playbook_and_role_lines()
             if DEFAULT_NAME in line and path.parts[:2] != ("roles", "pcluster")]
    assert not found, "the cluster's default name is declared in roles/pcluster only:\n" + "\n".join(found)


def test_the_cluster_has_one_variable():
    old = re.compile(r"\b(cluster_config_cluster_name|verify_cluster_name|containers_cluster_name|count_jobs_cluster_name|"
                     r"destroy_cluster_name|__node_setup_cluster_name)\b")
    found = ["%s:%d" % (path, number) for path, number, line in playbook_and_role_lines() if old.search(line)]
    assert not found, found


def test_no_playbook_rebuilds_the_inventorys_group_names():
    """Group names come from the filter hpc.pcluster.cluster_group, the inventory plugin's own rule."""
    found = ["%s:%d: %s" % (path, number, line.strip()) for path, number, line in playbook_and_role_lines()
             if "A-Za-z0-9_" in line or re.search(r"~ *'_(head_node|compute|login_node)'", line)]
    assert not found, found
