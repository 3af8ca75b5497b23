"""The node-setup step of the queues' OnNodeConfigured sequence (plugins/plugin_utils/node_setup_step.py)."""

from __future__ import annotations

import hashlib
import pathlib

from ansible_collections.hpc.pcluster.plugins.module_utils.config import rules as config_rules
from ansible_collections.hpc.pcluster.plugins.plugin_utils.config_builder import build_cluster_config
from ansible_collections.hpc.pcluster.plugins.plugin_utils.node_setup_step import BOOT_SCRIPT_PATH
from ansible_collections.hpc.pcluster.tests.unit.fixtures.guide.guide import role_variables

SHA256 = hashlib.sha256(pathlib.Path(BOOT_SCRIPT_PATH).read_bytes()).hexdigest()
SCRIPT_NAME = "hpc-pcluster-node-setup-%s.sh" % SHA256[:16]


def build(**overrides):
    return build_cluster_config(role_variables(**overrides))


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
                      cluster_config_node_setup_dir="/home/shared/node-setup",
                      cluster_config_node_setup_boot_wait_seconds=300)
        assert built["problems"] == []
        queue = built["config"]["Scheduling"]["SlurmQueues"][0]
        assert sequence(queue)[0] == {"Script": "s3://node-scripts/hpc/" + SCRIPT_NAME,
                                      "Args": ["--dir", "/home/shared/node-setup", "--wait", "300"]}
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
