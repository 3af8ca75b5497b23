"""Values that come from AWS are data, never templates, on every ansible-core the collection supports.

Anyone allowed to tag an instance (or to write the cluster's node table) controls these strings. Were
Ansible to template them, a tag holding {{ lookup('pipe', ...) }} would run a command on the controller.
The plugin is run by real ansible-playbook processes on the newest ansible-core (.venv) and the oldest
one meta/runtime.yml allows (.venv/ansible-core-oldest, made by scripts/setup.sh), uncached and from the
cache.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from ansible_collections.hpc.pcluster.tests.unit.plugins.inventory.pcluster_moto import Network, node_tags

ROOT = pathlib.Path(__file__).resolve().parents[4]
PAYLOAD = "{{ lookup('pipe', 'id') }}"
CORES = {
    "newest": pathlib.Path(sys.executable).parent,
    "oldest": ROOT / ".venv" / "ansible-core-oldest" / "bin",
}

PLAYBOOK = """
- hosts: evil_compute:evil_login_node
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: >-
          name=[{{ inventory_hostname }}] queue=[{{ pcluster_node_queue | default('-') }}]
          resource=[{{ pcluster_node_compute_resource | default('-') }}]
          pool=[{{ pcluster_node_login_pool | default('-') }}]
          slurm=[{{ pcluster_node_slurm_name | default('-') }}] tag=[{{ name_tag }}]
"""


@pytest.fixture(scope="module")
def evil_cluster(moto_clusters):
    """Cluster 'evil' in ap-southeast-2 whose tags and node table hold a template."""
    import moto_cluster

    network = Network(moto_clusters.endpoint_url, "ap-southeast-2", 3)
    network.launch(node_tags("evil", "HeadNode"), ip="10.3.0.10", public=True)
    network.launch(dict(node_tags("evil", "LoginNode", pool=PAYLOAD), Name=PAYLOAD))
    compute = network.launch(dict(node_tags("evil", "Compute", queue=PAYLOAD, compute_resource=PAYLOAD),
                                  Name=PAYLOAD), count=2)
    moto_cluster.register_slurm_nodes(moto_clusters.endpoint_url, "ap-southeast-2", "evil",
                                      {PAYLOAD: compute[0]}, "10.3.0.10")
    return moto_clusters.endpoint_url


@pytest.mark.parametrize("core", sorted(CORES))
def test_tag_and_node_table_values_are_not_templated(core, evil_cluster, tmp_path):
    bin_dir = CORES[core]
    if not (bin_dir / "ansible-playbook").exists():
        pytest.fail("%s is missing: run `make setup`" % bin_dir)
    inventory = tmp_path / "evil.pcluster_nodes.yml"
    inventory.write_text(yaml.safe_dump({
        "plugin": "hpc.pcluster.nodes", "regions": ["ap-southeast-2"], "endpoint_url": evil_cluster,
        "compose": {"name_tag": "ec2_tags['Name']"},
        "cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(tmp_path / "cache"),
    }))
    playbook = tmp_path / "show.yml"
    playbook.write_text(PLAYBOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_"))}
    env.update(PATH="%s:%s" % (bin_dir, os.environ["PATH"]), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_INVENTORY_UNPARSED_FAILED="true", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    version = subprocess.run([str(bin_dir / "ansible-playbook"), "--version"], env=env, capture_output=True, text=True,
                             check=True).stdout.splitlines()[0]
    for run in ("uncached", "from the cache"):
        proc = subprocess.run([str(bin_dir / "ansible-playbook"), "-i", str(inventory), str(playbook)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, "%s, %s:\n%s\n%s" % (version, run, proc.stdout, proc.stderr)
        messages = [line for line in proc.stdout.splitlines() if '"msg"' in line]
        assert len(messages) == 3, "%s, %s:\n%s" % (version, run, proc.stdout)
        output = "\n".join(messages)
        # Nothing ran: no `id` output, and the strings are shown as they are.
        assert "uid=" not in proc.stdout, "%s, %s: a value from AWS was templated:\n%s" % (version, run, output)
        # Host name, queue, compute resource, Slurm name and Name tag of the node the table names; queue, compute
        # resource and Name tag of the other compute node; host name, pool and Name tag of the login node.
        assert output.count(PAYLOAD) == 11, "%s, %s:\n%s" % (version, run, output)
