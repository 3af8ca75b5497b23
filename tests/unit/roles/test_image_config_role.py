"""Role hpc.pcluster.image_config applied for real with ansible-playbook on localhost, in check mode: no AWS call, no
download, nothing written - the bake script's id (what it applies) is known without packing it."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from ansible_collections.hpc.pcluster.tests.unit.roles import playbook_run
from ansible_collections.hpc.pcluster.tests.unit.roles.playbook_run import recap

HERE = pathlib.Path(__file__).resolve().parent / "image_config"
INVENTORY = pathlib.Path(__file__).resolve().parent / "cluster_config" / "inventory" / "hosts.yml"
PARENT = "ami-0a9c3a1e5c16f0b01"


def render(tmp_path, **variables):
    extra = dict({"facts_out": str(tmp_path / "facts.json"), "image_config_parent_image": PARENT,
                  "image_config_output_path": str(tmp_path / "image-config.yaml"),
                  "node_setup_controller_cache": str(tmp_path / "cache")}, **variables)
    return playbook_run.ansible_playbook(HERE / "render.yml", INVENTORY, "--check", extra=extra)


@pytest.fixture(scope="module", name="default")
def default_fixture(tmp_path_factory):
    """The role with the cluster's variables as they stand: (ansible-playbook's result, the facts, its directory)."""
    tmp_path = tmp_path_factory.mktemp("default")
    result = render(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads((tmp_path / "facts.json").read_text()), tmp_path


def test_the_configuration_bakes_the_node_setup_and_is_named_after_itself(default):
    result, facts, tmp_path = default
    config, bake = facts["image_config_data"], facts["image_config_bake"]
    assert re.fullmatch(r"ml-training-cluster-nodes-[0-9a-f]{12}", facts["image_config_id"])
    assert config["Image"]["Name"] == facts["image_config_id"]
    assert config["Build"] == {
        "InstanceType": "c5.2xlarge", "ParentImage": PARENT, "SubnetId": "subnet-0fedcba9876543210",
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Components": [{"Type": "script", "Value": "s3://my-bucket/bootstrap/hpc-pcluster-node-bake-%s.sh"
                        % bake["manifest"]["id"]}]}
    # What the bake applies: the bundle's variables for the image's OS (Ubuntu 22.04: Python 3.10).
    assert bake["manifest"]["python"] == "py3.10-x86_64-ansible-core-2.17.14"
    assert re.fullmatch(r"[0-9a-f]{16}", bake["manifest"]["vars_digest"]) and bake["manifest"]["node_rendered"] == []
    assert bake["sha256"] is None  # check mode: nothing packed, downloaded, written or uploaded
    assert not (tmp_path / "image-config.yaml").exists() and not (tmp_path / "cache").exists()
    assert recap(result, "failed") == 0


def test_another_variable_for_the_nodes_is_another_image(default, tmp_path):
    facts = default[1]
    again = render(tmp_path, docker_daemon_options={"log-driver": "journald"})
    other = json.loads((tmp_path / "facts.json").read_text())

    assert again.returncode == 0, again.stdout
    assert other["image_config_bake"]["manifest"]["vars_digest"] != facts["image_config_bake"]["manifest"]["vars_digest"]
    assert other["image_config_id"] != facts["image_config_id"]


def test_every_problem_at_once_with_its_variable(tmp_path):
    result = render(tmp_path, image_config_parent_image="ubuntu2204", image_config_security_group_ids=[],
                    image_config_tags={"team": ["ml"]}, image_config_instance_type="c5 large")

    assert result.returncode != 0
    output = result.stdout
    assert "The image configuration of 'ml-training-cluster-nodes-" in output and "has 4 problems" in output
    for text in ("Build.ParentImage (from image_config_parent_image): 'ubuntu2204' is not an AMI id",
                 "Build.InstanceType (from image_config_instance_type): 'c5 large' is not an EC2 instance type",
                 "Build.SecurityGroupIds (from image_config_security_group_ids)",
                 "Build.Tags (from image_config_tags): image_config_tags[team] must be a string"):
        assert text in output, output


def test_rhel8s_python_is_refused_with_the_fix(tmp_path):
    result = render(tmp_path, image_config_os="rhel8")

    assert result.returncode != 0 and "the image's Python 3.6" in result.stdout
    assert "Bake on a parent image with Python 3.9 or later" in result.stdout


def test_a_parent_image_with_another_python_gets_a_bake_for_it(default, tmp_path):
    result = render(tmp_path, image_config_python_version="3.11", image_config_python_glibc="2.36")
    facts = json.loads((tmp_path / "facts.json").read_text())

    assert result.returncode == 0, result.stdout
    assert facts["image_config_bake"]["manifest"]["python"] == "py3.11-x86_64-ansible-core-2.19.4"
    assert facts["image_config_id"] != default[1]["image_config_id"]
