"""Every task of the node roles that downloads - packages, keys, source archives - retries, so that a node booting
during a short repository outage does not fail its bootstrap (ParallelCluster would replace it, and after about ten
failures put the fleet in PROTECTED). How a retry behaves is run for real in test_docker_role.py."""

from __future__ import annotations

import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
# The modules that reach a repository or a web server (a package install downloads, a local package its dependencies).
DOWNLOADING = {"ansible.builtin.get_url", "ansible.builtin.apt", "ansible.builtin.dnf", "ansible.builtin.package",
               "ansible.builtin.rpm_key", "ansible.builtin.uri"}


def tasks(items):
    for item in items or []:
        if not isinstance(item, dict):
            continue
        for key in ("block", "rescue", "always"):
            yield from tasks(item.get(key))
        yield item


def downloading_tasks(role):
    for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
        for task in tasks(yaml.safe_load(path.read_text())):
            module = next((key for key in task if key in DOWNLOADING), None)
            if module:
                yield "%s: %s" % (path.name, task.get("name")), task


@pytest.mark.parametrize("role", ["docker", "enroot", "pyxis"])
def test_every_download_retries_with_the_role_s_settings(role):
    found = dict(downloading_tasks(role))
    assert found, role
    missing = [name for name, task in found.items()
               if task.get("retries") != "{{ %s_download_retries }}" % role
               or task.get("delay") != "{{ %s_download_delay }}" % role
               or not str(task.get("until", "")).endswith("is succeeded")
               or task.get("register") not in str(task.get("until"))]
    assert not missing, "tasks without the role's retries: %s" % missing
