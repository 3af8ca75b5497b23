"""The node-setup step of the queues' OnNodeConfigured sequence (plugins/plugin_utils/node_setup_step.py)."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.config import rules as config_rules
from ansible_collections.hpc.pcluster.plugins.plugin_utils.config_builder import build_cluster_config
from ansible_collections.hpc.pcluster.plugins.plugin_utils import node_setup_step
from ansible_collections.hpc.pcluster.plugins.plugin_utils.node_setup_step import BOOT_SCRIPT_PATH
from ansible_collections.hpc.pcluster.tests.unit.fixtures.guide.guide import ROLE_OPTIONS, role_variables

SHA256 = hashlib.sha256(pathlib.Path(BOOT_SCRIPT_PATH).read_bytes()).hexdigest()
# Named after the loader's interface, not its content: a release that changes the loader's body keeps every queue's
# CustomActions as they are (their change would drain and replace every node of the queue).
SCRIPT_NAME = "hpc-pcluster-node-setup-v1.sh"
# The options each interface of the loader accepts. A new option, or one that means something else, is a new
# interface: a new number in the loader's header (and so a new S3 key and a change of every queue's CustomActions,
# said in a changelog fragment), and a line here.
LOADER_INTERFACES = {1: ["--check", "--dir", "--fleet", "--force", "--wait"]}
ROOT = pathlib.Path(__file__).resolve().parents[4]
# The cluster config a build of the collection renders, in a process of its own (that build's plugins and roles).
RENDER = """
import json, sys, yaml
from ansible_collections.hpc.pcluster.plugins.plugin_utils.config_builder import build_cluster_config
from ansible_collections.hpc.pcluster.plugins.plugin_utils.role_variables import role_options
with open(sys.argv[2] + "/ansible_collections/hpc/pcluster/roles/cluster_config/meta/argument_specs.yml") as spec:
    built = build_cluster_config(json.loads(sys.argv[1]), role_options(yaml.safe_load(spec)))
print(json.dumps({"config": built["config"], "problems": built["problems"]}, sort_keys=True))
"""


def build(**overrides):
    return build_cluster_config(role_variables(**overrides), ROLE_OPTIONS)


def sequence(section):
    return section["CustomActions"]["OnNodeConfigured"]["Sequence"]


def test_every_queue_runs_the_node_setup_before_its_own_script_and_the_head_node_does_not():
    built = build(cluster_config_compute_node_bootstrap_script="s3://scripts/bootstrap/compute.sh")
    assert built["problems"] == []
    config = built["config"]
    assert sequence(config["Scheduling"]["SlurmQueues"][0]) == [
        {"Script": "s3://scripts/bootstrap/" + SCRIPT_NAME,
         "Args": ["--dir", "/opt/slurm/hpc-pcluster/node-setup", "--wait", "0"]},
        {"Script": "s3://scripts/bootstrap/compute.sh"}]
    assert sequence(config["HeadNode"]) == [{"Script": "s3://my-bucket/head-node.sh"}]
    assert built["node_setup_script"] == {
        "url": "s3://scripts/bootstrap/" + SCRIPT_NAME, "bucket": "scripts", "key": "bootstrap/" + SCRIPT_NAME,
        "sha256": SHA256, "src": BOOT_SCRIPT_PATH}
    assert config_rules.validate_config(config, "ml-training-cluster")[0] == []


def test_a_location_of_its_own_gets_read_access_on_the_compute_nodes_only():
    for location in ("s3://node-scripts/hpc", "s3://node-scripts/hpc/"):
        built = build(cluster_config_node_setup_script_location=location,
                      cluster_config_node_setup_dir="/opt/slurm/site/node-setup",
                      cluster_config_node_setup_boot_wait_seconds=300)
        assert built["problems"] == []
        queue = built["config"]["Scheduling"]["SlurmQueues"][0]
        assert sequence(queue)[0] == {"Script": "s3://node-scripts/hpc/" + SCRIPT_NAME,
                                      "Args": ["--dir", "/opt/slurm/site/node-setup", "--wait", "300"]}
        assert queue["Iam"]["S3Access"] == [{"BucketName": "node-scripts"}, {"BucketName": "my-bucket"}]
        assert built["config"]["HeadNode"]["Iam"]["S3Access"] == [{"BucketName": "my-bucket"}]


def test_an_https_bootstrap_script_needs_a_location_and_says_so():
    built = build(cluster_config_compute_node_bootstrap_script="https://example.com/compute.sh")
    [problem] = built["problems"]
    assert problem["variable"] == "cluster_config_node_setup_script_location"
    assert "'https://example.com/compute.sh'" in problem["message"] and "not an s3:// URL" in problem["message"]
    assert "s3://my-bucket/bootstrap/" in problem["fix"] and "cluster_config_node_setup_enabled: false" in problem["fix"]
    assert build(cluster_config_compute_node_bootstrap_script="https://example.com/compute.sh",
                 cluster_config_node_setup_script_location="s3://b/")["problems"] == []


def test_bad_location_directory_and_wait_are_reported_together():
    built = build(cluster_config_node_setup_script_location="https://example.com/scripts/",
                  cluster_config_node_setup_dir="node-setup", cluster_config_node_setup_boot_wait_seconds=-1)
    assert sorted(p["variable"] for p in built["problems"]) == [
        "cluster_config_node_setup_boot_wait_seconds", "cluster_config_node_setup_dir",
        "cluster_config_node_setup_script_location"]
    assert all(p["fix"] for p in built["problems"])


def test_turned_off_there_is_no_step_and_nothing_to_upload():
    built = build(cluster_config_node_setup_enabled=False)
    assert built["node_setup_script"] is None
    assert sequence(built["config"]["Scheduling"]["SlurmQueues"][0]) == [{"Script": "s3://my-bucket/compute-node.sh"}]


def test_queues_opt_in_and_out_on_their_own():
    queues = [{"name": "gpu", "compute_resources": [{"name": "g5", "instance_type": "g5.xlarge"}]},
              {"name": "cpu", "node_setup_enabled": False,
               "compute_resources": [{"name": "c7i", "instance_type": "c7i.large"}]}]
    built = build(cluster_config_queues=queues)
    gpu, cpu = built["config"]["Scheduling"]["SlurmQueues"]
    assert [step["Script"] for step in sequence(gpu)] == ["s3://my-bucket/" + SCRIPT_NAME,
                                                          "s3://my-bucket/compute-node.sh"]
    assert sequence(cpu) == [{"Script": "s3://my-bucket/compute-node.sh"}]
    queues[1]["node_setup_enabled"] = True
    built = build(cluster_config_queues=queues, cluster_config_node_setup_enabled=False)
    gpu, cpu = built["config"]["Scheduling"]["SlurmQueues"]
    assert len(sequence(gpu)) == 1 and len(sequence(cpu)) == 2
    assert built["node_setup_script"]["url"] == "s3://my-bucket/" + SCRIPT_NAME


def test_the_loader_declares_its_interface_and_accepts_just_its_options():
    text = pathlib.Path(BOOT_SCRIPT_PATH).read_text()
    interface = node_setup_step.loader_interface()
    options = sorted(set(re.findall(r"^    (--[a-z-]+)\)", text, re.M)))
    assert options == LOADER_INTERFACES[interface], (
        "the loader's options changed: give it a new interface number (its header), add it to LOADER_INTERFACES "
        "and say in a changelog fragment that every queue's CustomActions change with it")
    assert SCRIPT_NAME == "hpc-pcluster-node-setup-v%d.sh" % interface


@pytest.mark.parametrize("directory, place", [
    ("/home/shared/node-setup", "/home"), ("/fsx/node-setup", "/fsx"), ("/lustre/x/y", "/lustre"),
    ("/scratch/node-setup", "/scratch"), ("/tmp/../tmp/node-setup", "/tmp")])
def test_a_bundle_directory_where_users_write_is_refused(directory, place):
    built = build(cluster_config_node_setup_dir=directory)
    [problem] = built["problems"]
    assert problem["variable"] == "cluster_config_node_setup_dir"
    assert "is under %s, where the cluster's users can write" % place in problem["message"]
    assert build(cluster_config_node_setup_dir="/opt/slurm/hpc-pcluster/node-setup")["problems"] == []


def collection_build(top, release_change=True, interface=1):
    """A copy of the collection (plugins, roles) as a release ships it: with release_change, the node roles, the
    bundle's runner and the loader's body changed; the loader declaring the given interface."""
    collection = top / "ansible_collections" / "hpc" / "pcluster"
    for part in ("plugins", "roles"):
        shutil.copytree(ROOT / part, collection / part, ignore=shutil.ignore_patterns("__pycache__", "molecule"))
    shutil.copy(ROOT / "galaxy.yml", collection)
    files = collection / "roles" / "node_setup" / "files"
    loader = files / "hpc-pcluster-node-setup.sh"
    text = loader.read_text().replace("loader - interface 1.", "loader - interface %d." % interface)
    if release_change:
        loader.write_text(text.replace("\nset ", "\n# a release's change\nset ", 1))
        with (files / "run.py").open("a") as run_py:
            run_py.write("\n# a release's change\n")
        with (collection / "roles" / "docker" / "defaults" / "main.yml").open("a") as defaults:
            defaults.write("docker_release_note: a release's change\n")
    else:
        loader.write_text(text)
    return top


def rendered(top, variables):
    proc = subprocess.run([sys.executable, "-c", RENDER, json.dumps(variables), str(top)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(top)), timeout=120, check=True)
    return json.loads(proc.stdout)


def test_another_release_of_the_node_setup_renders_the_same_cluster_config(tmp_path):
    # A change of any queue's CustomActions drains and replaces every node of the queue: a release that changes the
    # node roles, the runner and the loader's body - but not the loader's interface - must not make one.
    variables = role_variables(cluster_config_compute_node_bootstrap_script="s3://scripts/bootstrap/compute.sh")
    this = rendered(collection_build(tmp_path / "this", release_change=False), variables)
    after = rendered(collection_build(tmp_path / "next"), variables)
    assert this["problems"] == [] and this == after
    # A new interface is a new S3 key, and so a change of every queue's CustomActions (and a changelog fragment).
    new = rendered(collection_build(tmp_path / "v2", interface=2), variables)
    assert sequence(new["config"]["Scheduling"]["SlurmQueues"][0])[0]["Script"] == (
        "s3://scripts/bootstrap/hpc-pcluster-node-setup-v2.sh")
