"""Role hpc.pcluster.image_config applied for real with ansible-playbook on localhost, in check mode: no download,
nothing written - the bake script's id (what it applies) is known without packing it. Its one AWS call, read-only,
asks a moto server over HTTP for the account the nodes will run in."""

from __future__ import annotations

import json
import os
import pathlib
import re

import pytest

from ansible_collections.hpc.pcluster.tests.unit.plugins.inventory.pcluster_moto import MotoServer
from ansible_collections.hpc.pcluster.tests.unit.roles import playbook_run
from ansible_collections.hpc.pcluster.tests.unit.roles.playbook_run import recap

HERE = pathlib.Path(__file__).resolve().parent / "image_config"
INVENTORY = pathlib.Path(__file__).resolve().parent / "cluster_config" / "inventory" / "hosts.yml"
PARENT = "ami-0a9c3a1e5c16f0b01"
MOTO_ACCOUNT = "123456789012"  # moto's default account
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module", name="moto")
def moto_fixture():
    with MotoServer() as server:
        yield server


def render(tmp_path, moto, **variables):
    extra = dict({"facts_out": str(tmp_path / "facts.json"), "image_config_parent_image": PARENT,
                  "image_config_output_path": str(tmp_path / "image-config.yaml"),
                  "node_setup_controller_cache": str(tmp_path / "cache"),
                  "pcluster_region": "us-east-1", "pcluster_endpoint_url": moto.endpoint_url}, **variables)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return playbook_run.ansible_playbook(HERE / "render.yml", INVENTORY, "--check", extra=extra, env=dict(env, **ENV))


@pytest.fixture(scope="module", name="default")
def default_fixture(tmp_path_factory, moto):
    """The role with the cluster's variables as they stand: (ansible-playbook's result, the facts, its directory)."""
    tmp_path = tmp_path_factory.mktemp("default")
    result = render(tmp_path, moto)
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


def test_another_variable_for_the_nodes_is_another_image(default, tmp_path, moto):
    facts = default[1]
    again = render(tmp_path, moto, docker_daemon_options={"log-driver": "journald"})
    other = json.loads((tmp_path / "facts.json").read_text())

    assert again.returncode == 0, again.stdout
    assert other["image_config_bake"]["manifest"]["vars_digest"] != facts["image_config_bake"]["manifest"]["vars_digest"]
    assert other["image_config_id"] != facts["image_config_id"]


def test_every_problem_at_once_with_its_variable(tmp_path, moto):
    result = render(tmp_path, moto, image_config_parent_image="ubuntu2204", image_config_security_group_ids=[],
                    image_config_tags={"team": ["ml"]}, image_config_instance_type="c5 large")

    assert result.returncode != 0
    output = result.stdout
    assert "The image configuration of 'ml-training-cluster-nodes-" in output and "has 4 problems" in output
    for text in ("Build.ParentImage (from image_config_parent_image): 'ubuntu2204' is not an AMI id",
                 "Build.InstanceType (from image_config_instance_type): 'c5 large' is not an EC2 instance type",
                 "Build.SecurityGroupIds (from image_config_security_group_ids)",
                 "Build.Tags (from image_config_tags): image_config_tags[team] must be a string"):
        assert text in output, output


def test_rhel8s_python_is_refused_with_the_fix(tmp_path, moto):
    result = render(tmp_path, moto, image_config_os="rhel8")

    assert result.returncode != 0 and "the image's Python 3.6" in result.stdout
    assert "Bake on a parent image with Python 3.9 or later" in result.stdout


def test_a_parent_image_with_another_python_gets_a_bake_for_it(default, tmp_path, moto):
    result = render(tmp_path, moto, image_config_python_version="3.11", image_config_python_glibc="2.36")
    facts = json.loads((tmp_path / "facts.json").read_text())

    assert result.returncode == 0, result.stdout
    assert facts["image_config_bake"]["manifest"]["python"] == "py3.11-x86_64-ansible-core-2.19.4"
    assert facts["image_config_id"] != default[1]["image_config_id"]


def test_the_bake_gives_the_nodes_the_account_and_region_the_inventory_will_give_them(default, tmp_path, moto):
    # Before the cluster exists no node is in the inventory: the bake asks AWS for the account, and its variables are
    # those of a node that the hpc.pcluster.nodes inventory names (aws_account_id, aws_region), so that a node of the
    # image finds the same variables in the staged bundle and answers up-to-date.
    as_a_node = render(tmp_path, moto, aws_account_id=MOTO_ACCOUNT, aws_region="us-east-1")
    facts = json.loads((tmp_path / "facts.json").read_text())

    assert as_a_node.returncode == 0, as_a_node.stdout
    assert facts["image_config_bake"]["manifest"]["vars_digest"] == default[1]["image_config_bake"]["manifest"]["vars_digest"]
    other = render(tmp_path, moto, aws_account_id="210987654321", aws_region="us-east-1")
    assert other.returncode == 0, other.stdout
    assert json.loads((tmp_path / "facts.json").read_text())["image_config_bake"]["manifest"]["vars_digest"] != (
        default[1]["image_config_bake"]["manifest"]["vars_digest"])
