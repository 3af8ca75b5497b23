"""config_validate full: true and the cluster_config role against the sandbox (moto + pcluster's dryrun).

The sandbox has no FSx (moto implements none), so the configs here turn both
FSx file systems off: checking FSx ids against AWS is not available in the sandbox.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import uuid

import boto3
import yaml

import iam_identities  # sandbox/iam_identities.py
import real_account  # sandbox/real_account.py

ROOT = pathlib.Path(__file__).resolve().parents[3]
HERE = pathlib.Path(__file__).resolve().parent
UNIT_INVENTORY = ROOT / "tests" / "unit" / "roles" / "cluster_config" / "inventory"
MISSING_SUBNET = "subnet-0123456789abcdef0"


def state_of(sandbox):
    return json.loads((pathlib.Path(sandbox.state_dir) / "state.json").read_text())


def role_vars(sandbox, tmp_path, **overrides):
    state = state_of(sandbox)
    aws = state["aws"]
    variables = {
        "pcluster_endpoint_url": state["endpoint_url"],
        "pcluster_cluster_name": "cfgval-%s" % uuid.uuid4().hex[:8],
        "cluster_config_region": state["region"],
        "cluster_config_public_subnet_id": aws["public_subnet_id"],
        "cluster_config_private_subnet_id": aws["private_subnet_id"],
        "cluster_config_security_group_id": aws["security_group_id"],
        "cluster_config_ssh_key_name": real_account.KEY_PAIR_NAME,
        "cluster_config_head_node_bootstrap_script": aws["head_node_bootstrap_script"],
        "cluster_config_compute_node_bootstrap_script": aws["compute_node_bootstrap_script"],
        "cluster_config_fsx_lustre_enabled": False,
        "cluster_config_fsx_openzfs_enabled": False,
        "cluster_config_validate_full": True,
        "cluster_config_suppress_validators": state["suppress_validators"],
        "cluster_config_output_path": str(tmp_path / "cluster-config.yaml"),
        "result_out": str(tmp_path / "result.json"),
    }
    variables.update(overrides)
    return variables


def playbook(sandbox, name, variables):
    argv = ["ansible-playbook", "-i", str(UNIT_INVENTORY), str(HERE / name), "-e", json.dumps(variables)]
    env = dict(sandbox.env, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_role_full_validation_passes_for_a_config_without_fsx(sandbox, tmp_path):
    variables = role_vars(sandbox, tmp_path)
    result = playbook(sandbox, "render_full.yml", variables)
    assert result.returncode == 0, result.stdout + result.stderr
    validation = json.loads((tmp_path / "result.json").read_text())
    assert validation["valid"] is True and validation["full_checked"] is True
    assert validation["dryrun_message"] == "Request would have succeeded, but DryRun flag is set."
    assert validation["validation_messages"]["ERROR"] == []
    warning_types = {m["type"] for m in validation["validation_messages"]["WARNING"]}
    assert "KeyPairValidator" not in warning_types  # the sandbox's ed25519 key pair
    written = yaml.safe_load((tmp_path / "cluster-config.yaml").read_text())
    assert "SharedStorage" not in written


def test_full_validation_names_a_subnet_that_does_not_exist(sandbox, tmp_path):
    state = state_of(sandbox)
    variables = role_vars(sandbox, tmp_path, cluster_config_private_subnet_id=MISSING_SUBNET,
                          cluster_config_validate_full=False)
    rendered = playbook(sandbox, "render_full.yml", variables)  # offline: the id is well formed
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    result = playbook(sandbox, "validate.yml", {
        "config_file": variables["cluster_config_output_path"],
        "cluster_name": variables["pcluster_cluster_name"],
        "suppress_validators": state["suppress_validators"],
        "region": state["region"], "endpoint_url": state["endpoint_url"],
        "result_out": str(tmp_path / "validate.json"),
    })
    assert result.returncode == 0, result.stdout + result.stderr
    validation = json.loads((tmp_path / "validate.json").read_text())
    assert validation["valid"] is False and validation["full_checked"] is True
    assert validation["errors"] == [{
        "path": "Scheduling.SlurmQueues[0].Networking.SubnetIds[0]",
        "value": MISSING_SUBNET,
        "message": "The subnet %s does not exist in %s" % (MISSING_SUBNET, state["region"]),
        "fix": "Use the id of an existing subnet of this account and region.",
    }]


def test_role_full_validation_failure_names_the_variable(sandbox, tmp_path):
    variables = role_vars(sandbox, tmp_path, cluster_config_public_subnet_id=MISSING_SUBNET)
    result = playbook(sandbox, "render_full.yml", variables)
    assert result.returncode != 0
    assert ("HeadNode.Networking.SubnetId (from cluster_config_public_subnet_id): The subnet %s does not exist"
            % MISSING_SUBNET) in result.stdout
    assert not (tmp_path / "cluster-config.yaml").exists()


def test_pcluster_dryrun_rejection_is_pointed_at_the_value_it_names(sandbox, tmp_path):
    """An instance type that does not exist: pcluster stops before its validators; the path is still named."""
    variables = role_vars(sandbox, tmp_path, cluster_config_compute_instance_type="g5.unknownsize")
    result = playbook(sandbox, "render_full.yml", variables)
    assert result.returncode != 0
    assert ("Scheduling.SlurmQueues[0].ComputeResources[0].InstanceType (from cluster_config_compute_instance_type): "
            "ParallelCluster rejected the config") in result.stdout, result.stdout
    assert "g5.unknownsize" in result.stdout


def test_role_full_validation_refuses_an_rsa_key_pair_on_ubuntu(sandbox, tmp_path):
    state = state_of(sandbox)
    # The key pair is imported as the sandbox's admin would (moto enforces IAM).
    ec2 = boto3.client("ec2", endpoint_url=state["endpoint_url"], region_name=state["region"],
                       **iam_identities.ADMIN_CREDENTIALS)
    name = "rsa-%s" % uuid.uuid4().hex[:8]
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-N", "", "-f", str(tmp_path / "rsa")], check=True)
    ec2.import_key_pair(KeyName=name, PublicKeyMaterial=(tmp_path / "rsa.pub").read_bytes())
    try:
        result = playbook(sandbox, "render_full.yml", role_vars(sandbox, tmp_path, cluster_config_ssh_key_name=name))
    finally:
        ec2.delete_key_pair(KeyName=name)
    assert result.returncode != 0
    assert ("HeadNode.Ssh.KeyName (from cluster_config_ssh_key_name): The key pair %s is RSA, which ParallelCluster "
            "refuses on ubuntu2204" % name) in " ".join(result.stdout.split()), result.stdout
    assert not (tmp_path / "cluster-config.yaml").exists()


def test_role_full_validation_of_the_existing_cluster_is_its_update_dryrun(sandbox, tmp_path):
    # pcluster refuses a create dryrun of a cluster that exists: the update's dryrun checks the config instead.
    variables = role_vars(sandbox, tmp_path, pcluster_cluster_name=sandbox.cluster_name)
    result = playbook(sandbox, "render_full.yml", variables)
    assert result.returncode == 0, result.stdout + result.stderr
    validation = json.loads((tmp_path / "result.json").read_text())
    assert validation["valid"] is True and validation["full_checked"] is True
    assert "already exists" not in validation["dryrun_message"]
