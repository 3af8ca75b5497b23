"""The variables of a node-setup bundle (filter hpc.pcluster.node_setup_vars): each node renders from vars.yml the
values the same inventory gives it over SSH, including values defined from the node's own name or facts.

Real ansible-playbook runs: the controller's play writes vars.yml from the inventory, as role node_setup stages it;
then each node's play loads it the way run.py runs playbooks/node_local.yml (`-i <node>, -c local`, vars_files).
"""

from __future__ import annotations

import json
import sys

import yaml

from ansible_collections.hpc.pcluster.tests.unit.roles import playbook_run

PATTERN = "^(docker|enroot|pyxis)_"
NODES = ("compute-st-1", "compute-st-2")

CONTROLLER = """\
- name: Gather the compute nodes' facts, as the play that sets them up over SSH does
  hosts: compute
  gather_facts: true
  gather_subset: [min]
  tasks: []

- name: Write a bundle's vars.yml, and what each compute node gets over SSH
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write vars.yml from the first compute node's variables
      ansible.builtin.copy:
        content: "{{{{ hostvars | hpc.pcluster.node_setup_vars(groups['compute'] | first, '{pattern}', {{'node_setup_head_node': 'head'}}) }}}}"
        dest: "{out}/vars.yml"
        mode: "0600"

    - name: Write each node's values as its own play would render them
      ansible.builtin.copy:
        content: "{{{{ dict(names | zip(names | map('extract', hostvars[item]))) | to_json }}}}"
        dest: "{out}/{{{{ item }}}}.ssh.json"
        mode: "0600"
      loop: "{{{{ groups['compute'] }}}}"
      vars:
        names: "{{{{ hostvars[item].keys() | select('match', '{pattern}') | sort }}}}"
"""

NODE = """\
- name: Render the bundle's variables on this node
  hosts: all
  connection: local
  gather_facts: true
  gather_subset: [min]
  vars_files:
    - "{out}/vars.yml"
  tasks:
    - name: Write what this node gets
      ansible.builtin.copy:
        content: "{{{{ dict(names | zip(names | map('extract', vars))) | to_json }}}}"
        dest: "{out}/{{{{ inventory_hostname }}}}.bundle.json"
        mode: "0600"
      vars:
        names: "{{{{ vars.keys() | select('match', '{pattern}') | sort }}}}"
"""


def inventory(tmp_path, extra_vars):
    data = {"all": {
        "vars": dict({"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                      "site": "cluster-x",
                      "docker_daemon_options": {"storage-driver": "vfs", "cgroup-parent": "/sbx/{{ inventory_hostname }}"},
                      "docker_data_root": "/data/{{ site }}/docker",
                      "enroot_runtime_path": "/run/enroot/{{ ansible_facts['system'] | lower }}/{{ enroot_name }}",
                      "enroot_name": "{{ inventory_hostname_short }}",
                      "pyxis_runtime_path_mode": "1777"}, **extra_vars),
        "children": {"compute": {"hosts": {name: {} for name in NODES}}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def stage(tmp_path, extra_vars=None):
    play = tmp_path / "controller.yml"
    play.write_text(CONTROLLER.format(pattern=PATTERN, out=tmp_path))
    return playbook_run.ansible_playbook(play, inventory(tmp_path, extra_vars or {}))


def test_each_node_renders_from_the_bundle_what_it_gets_over_ssh(tmp_path):
    proc = stage(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    bundle_vars = yaml.safe_load((tmp_path / "vars.yml").read_text())
    # Resolved on the controller: the bundle does not carry the inventory's other variables (site).
    assert bundle_vars["docker_data_root"] == "/data/cluster-x/docker"
    # Kept for the node: the node's name and facts are the node's.
    assert bundle_vars["docker_daemon_options"]["cgroup-parent"] == "/sbx/{{ inventory_hostname }}"
    assert bundle_vars["node_setup_head_node"] == "head"
    play = tmp_path / "node.yml"
    play.write_text(NODE.format(pattern=PATTERN, out=tmp_path))
    for name in NODES:
        proc = playbook_run.ansible_playbook(play, "%s," % name, "-c", "local",
                                             "-e", json.dumps({"ansible_python_interpreter": sys.executable}))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        over_ssh = json.loads((tmp_path / ("%s.ssh.json" % name)).read_text())
        from_bundle = json.loads((tmp_path / ("%s.bundle.json" % name)).read_text())
        assert from_bundle == over_ssh, name
        assert from_bundle["docker_daemon_options"]["cgroup-parent"] == "/sbx/%s" % name
        assert from_bundle["enroot_runtime_path"] == "/run/enroot/linux/%s" % name


def test_a_node_template_reading_a_variable_the_nodes_lack_is_refused_naming_it(tmp_path):
    proc = stage(tmp_path, {"docker_users": ["{{ site }}-{{ inventory_hostname }}"],
                            "pyxis_version": "{{ ansible_facts['distribution'] }}-{{ cluster_tag }}"})
    assert proc.returncode != 0
    text = " ".join(proc.stdout.split())
    assert "docker_users=[\"{{ site }}-{{ inventory_hostname }}\"] uses inventory_hostname" in text, text[-3000:]
    assert "and site, which the nodes do not have" in text
    assert "pyxis_version=" in text and "cluster_tag" in text  # all problems at once
    assert not (tmp_path / "vars.yml").exists()
