"""hpc.pcluster.cluster, cluster_info and compute_fleet through ansible-playbook, against the sandbox's
moto with the real pcluster.lib.

Not available in the sandbox (moto cannot run ParallelCluster's CloudFormation template): a real
create or update. Those run against recorded pcluster responses in tests/unit; here creation is a
check-mode dryrun and the update path stops at its dryrun (check mode). Several module calls share
one playbook run to keep the suite fast.
"""

from __future__ import annotations

import copy
import json
import pathlib

import pytest
import yaml

from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.fleet import FLEET_STOP_TAG
from ansible_collections.hpc.pcluster.tests.integration.lifecycle.lifecycle_helpers import (
    LIFECYCLE_REGION,
    Step,
    fleet_transitions,
    lifecycle_config,
    moto_cluster,
    run_playbook,
)


def stack_names(sandbox, region):
    cfn = moto_cluster.client("cloudformation", sandbox.endpoint_url, region)
    return sorted(s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE")


# --------------------------------------------------------------------------- the sandbox cluster (read only)


@pytest.fixture(scope="module", name="readonly")
def readonly_fixture(sandbox, tmp_path_factory):
    """One playbook (-v): describe, list, a missing cluster, an unknown region, the unchanged sandbox cluster,
    and its stored config."""
    return run_playbook(sandbox, tmp_path_factory.mktemp("readonly"), [
        Step("hpc.pcluster.cluster_info", {"name": sandbox.cluster_name, "instances": True, "compute_fleet": True}),
        Step("hpc.pcluster.cluster_info", {"region": sandbox.region, "endpoint_url": sandbox.endpoint_url}),
        Step("hpc.pcluster.cluster_info", {"name": "no-such-cluster"}),
        Step("hpc.pcluster.cluster_info", {"name": sandbox.cluster_name, "region": "mars-east-1"}),
        Step("hpc.pcluster.cluster", {"name": sandbox.cluster_name, "config_file": sandbox.state["cluster_config_path"]}, diff=True),
        Step("hpc.pcluster.cluster_info", {"name": sandbox.cluster_name, "stored_config": True}),
    ], extra_args=["-v"])


def test_cluster_info_describes_the_sandbox_cluster(sandbox, readonly):
    result = readonly.results[0]

    assert not result.get("failed"), readonly
    assert result["exists"] is True and result["status"] == "CREATE_COMPLETE" and result["stack_status"] == "CREATE_COMPLETE"
    assert result["head_node"]["private_ip_address"] == sandbox.head_ip
    assert result["version"] == "3.16.1" and result["compute_fleet"]["status"] == "RUNNING"
    compute = sorted(i["privateIpAddress"] for i in result["instances"] if i["nodeType"] == "ComputeNode")
    assert compute == sorted(sandbox.compute_ips)
    assert [i["privateIpAddress"] for i in result["instances"] if i["nodeType"] == "HeadNode"] == [sandbox.head_ip]


def test_cluster_info_lists_clusters_of_the_region(sandbox, readonly):
    assert sandbox.cluster_name in [c["clusterName"] for c in readonly.results[1]["clusters"]], readonly


def test_cluster_info_of_a_missing_cluster(readonly):
    assert readonly.results[2]["exists"] is False and not readonly.results[2].get("failed"), readonly


def test_unknown_region_is_one_clear_message(readonly):
    result = readonly.results[3]

    assert result["failed"] is True, readonly
    assert "AWS region 'mars-east-1' is unknown or not supported by ParallelCluster" in result["msg"]


def test_sandbox_cluster_with_its_stored_config_is_unchanged(sandbox, readonly):
    result = readonly.results[4]

    assert not result.get("failed"), readonly
    assert result["changed"] is False and result["actions"] == []
    assert result["msg"] == "cluster %s already has the desired configuration" % sandbox.cluster_name
    assert result["head_node"]["private_ip_address"] == sandbox.head_ip


def test_stored_config_comes_from_cluster_info(sandbox, readonly):
    # moto serves the presigned URL over http: read because it is the host of the explicit http endpoint_url.
    stored = readonly.results[5]

    assert not stored.get("failed"), readonly
    assert stored["stored_config"] == yaml.safe_load(pathlib.Path(sandbox.state["cluster_config_path"]).read_text())
    assert "stored_config_error" not in stored


def test_no_presigned_url_in_results_or_verbose_output(readonly):
    text = readonly.stdout + readonly.stderr + json.dumps(readonly.results)

    assert "clusterConfiguration" in text  # the key is there, its url is not
    for secret in ("Signature=", "AWSAccessKeyId=", "X-Amz-Credential", "configs/cluster-config.yaml?"):
        assert secret not in text, secret


# --------------------------------------------------------------------------- drift (through the stored config and the update dryrun)


def test_drift_is_found_through_the_stored_config_and_dryrun(sandbox, playbook, throwaway_cluster):
    name, config = throwaway_cluster()
    more_nodes = copy.deepcopy(config)
    more_nodes["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MaxCount"] = 3
    other_type = copy.deepcopy(config)
    other_type["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["InstanceType"] = "g5.12xlarge"
    args = {"name": name, "region": LIFECYCLE_REGION, "suppress_validators": ["ALL"]}

    run = playbook(
        Step("hpc.pcluster.cluster", dict(args, config=config), check=True),
        Step("hpc.pcluster.cluster", dict(args, config=more_nodes), check=True, diff=True),
        Step("hpc.pcluster.cluster", dict(args, config=other_type), check=True),
    )
    same, drift, needs_stop = run.results

    assert same["changed"] is False and same["actions"] == [], run
    assert not drift.get("failed"), run
    assert drift["changed"] is True and drift["actions"] == ["dryrun update", "update cluster"]
    assert drift["config_changes"] == ["Scheduling.SlurmQueues[0].ComputeResources[0].MaxCount: 1 -> 3"]
    assert drift["change_set"] == [{
        "parameter": "Scheduling.SlurmQueues[compute-gpu].ComputeResources[distributed-ml].MaxCount",
        "currentValue": "1", "requestedValue": "3"}]
    assert "-      MaxCount: 1" in run.stdout and "+      MaxCount: 3" in run.stdout
    assert drift["status"] == "CREATE_COMPLETE"  # check mode changed nothing
    assert needs_stop["failed"] is True
    assert "needs the compute fleet stopped (All compute nodes must be stopped)" in needs_stop["msg"]
    assert "stop_fleet_for_update: true" in needs_stop["msg"]


# --------------------------------------------------------------------------- check-mode create


def test_check_mode_create_is_a_dryrun_that_creates_nothing(sandbox, playbook, lifecycle_region):
    before = stack_names(sandbox, LIFECYCLE_REGION)
    bad = lifecycle_config(lifecycle_region)
    bad["HeadNode"]["Networking"]["SubnetId"] = "subnet-0123456789abcdef0"
    bad["Scheduling"]["SlurmQueues"][0]["Networking"]["SubnetIds"] = ["subnet-0123456789abcdef0"]
    args = {"region": LIFECYCLE_REGION, "suppress_validators": sandbox.state["suppress_validators"]}

    run = playbook(
        Step("hpc.pcluster.cluster", dict(args, name="lifecycle-new", config=lifecycle_config(lifecycle_region)), check=True, diff=True),
        Step("hpc.pcluster.cluster", dict(args, name="lifecycle-bad", config=bad), check=True),
    )
    good, rejected = run.results

    assert not good.get("failed"), run
    assert good["changed"] is True and good["exists"] is False
    assert good["actions"] == ["dryrun create", "create cluster"]
    assert good["msg"] == "cluster lifecycle-new would be created (dryrun passed)"
    assert stack_names(sandbox, LIFECYCLE_REGION) == before and "lifecycle-new" not in before
    assert rejected["failed"] is True
    assert "would reject the creation of lifecycle-bad" in rejected["msg"] and "subnet-0123456789abcdef0" in rejected["msg"]


# --------------------------------------------------------------------------- compute fleet and delete


def head_node_tags(sandbox, name):
    ec2 = moto_cluster.client("ec2", sandbox.endpoint_url, LIFECYCLE_REGION)
    head = ec2.describe_instances(Filters=[{"Name": "tag:parallelcluster:cluster-name", "Values": [name]},
                                           {"Name": "tag:parallelcluster:node-type", "Values": ["HeadNode"]}])
    head_id = head["Reservations"][0]["Instances"][0]["InstanceId"]
    return [t["Key"] for t in ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [head_id]}])["Tags"]]


def test_fleet_stop_and_start(sandbox, playbook, throwaway_cluster):
    # A registered cluster has no head node: the sandbox moves the requested status on as clusterstatusmgtd would
    # (sandbox/headless_fleet.py).
    name, _config = throwaway_cluster()
    args = {"name": name, "region": LIFECYCLE_REGION}

    run = playbook(
        Step("hpc.pcluster.compute_fleet", dict(args, state="stopped"), check=True),
        Step("hpc.pcluster.compute_fleet", dict(args, state="stopped")),
        Step("hpc.pcluster.compute_fleet", dict(args, state="stopped", unfinished_jobs=0)),
        Step("hpc.pcluster.compute_fleet", dict(args, state="stopped")),
    )
    planned, refused, stopped, again = run.results

    assert planned["changed"] is True and planned["status"] == "RUNNING", run
    assert "nobody counted the Slurm jobs" in run.stdout + run.stderr  # check mode warns what the real run refuses
    assert refused["failed"] is True and "nobody counted the Slurm jobs" in refused["msg"]
    assert not stopped.get("failed"), run
    assert stopped["changed"] is True and stopped["status"] == "STOPPED" and stopped["marked_for_restart"] is True
    assert "compute fleet STOPPED" in run.stdout  # the action plugin's progress line
    assert again["changed"] is False and again["status"] == "STOPPED"
    assert FLEET_STOP_TAG in head_node_tags(sandbox, name)

    started, = playbook(Step("hpc.pcluster.compute_fleet", dict(args, state="started"))).results

    assert started["changed"] is True and started["status"] == "RUNNING"
    assert FLEET_STOP_TAG not in head_node_tags(sandbox, name)
    assert fleet_transitions(sandbox, LIFECYCLE_REGION, name) == ["STOPPING", "STOPPED", "STARTING", "RUNNING"]


def test_delete_of_a_registered_cluster(sandbox, playbook, throwaway_cluster):
    name, _config = throwaway_cluster()
    args = {"name": name, "region": LIFECYCLE_REGION, "state": "absent"}

    run = playbook(
        Step("hpc.pcluster.cluster", args, check=True),
        Step("hpc.pcluster.cluster", args),
        Step("hpc.pcluster.cluster", args),
    )
    planned, deleted, again = run.results

    assert planned["changed"] is True and planned["exists"] is True, run
    assert not deleted.get("failed"), run
    assert deleted["changed"] is True and deleted["exists"] is False
    assert name not in stack_names(sandbox, LIFECYCLE_REGION)
    assert "cluster not found (deleted)" in run.stdout
    assert again["changed"] is False and again["exists"] is False


def test_the_next_run_starts_a_fleet_an_interrupted_update_left_stopped(sandbox, playbook, throwaway_cluster):
    # What an interrupted update leaves: the fleet STOPPED and the head node tagged. The real pcluster reads
    # the fleet from moto's DynamoDB; the sandbox moves it on as clusterstatusmgtd would (sandbox/headless_fleet.py).
    name, config = throwaway_cluster(fleet_status="STOPPED")
    ec2 = moto_cluster.client("ec2", sandbox.endpoint_url, LIFECYCLE_REGION)
    head = ec2.describe_instances(Filters=[{"Name": "tag:parallelcluster:cluster-name", "Values": [name]},
                                           {"Name": "tag:parallelcluster:node-type", "Values": ["HeadNode"]}])
    head_id = head["Reservations"][0]["Instances"][0]["InstanceId"]
    ec2.create_tags(Resources=[head_id], Tags=[{"Key": FLEET_STOP_TAG, "Value": "2026-11-30T23:00:00Z"}])
    args = {"name": name, "region": LIFECYCLE_REGION, "config": config}

    run = playbook(Step("hpc.pcluster.cluster", args, check=True), Step("hpc.pcluster.cluster", args),
                   Step("hpc.pcluster.cluster", args))
    planned, started, again = run.results

    assert planned["changed"] is True and planned["actions"] == ["start compute fleet"], run
    assert not started.get("failed"), run
    assert started["changed"] is True and started["actions"] == ["start compute fleet"]
    assert started["compute_fleet_status"] == "RUNNING" and "[%s] start compute fleet" % name in run.stdout
    assert "by an earlier run (an update that did not finish, or hpc.pcluster.compute_fleet)" in run.stdout + run.stderr
    assert again["changed"] is False and again["actions"] == []
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [head_id]}])["Tags"]
    assert FLEET_STOP_TAG not in [t["Key"] for t in tags]
    assert fleet_transitions(sandbox, LIFECYCLE_REGION, name)[-2:] == ["STARTING", "RUNNING"]


def test_no_credentials_is_one_clear_message(sandbox, tmp_path, monkeypatch):
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delitem(sandbox.env, variable)
    monkeypatch.setitem(sandbox.env, "AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setitem(sandbox.env, "AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setitem(sandbox.env, "AWS_EC2_METADATA_DISABLED", "true")

    run = run_playbook(sandbox, tmp_path, [Step("hpc.pcluster.cluster_info", {"name": sandbox.cluster_name})])

    assert run.results[0]["failed"] is True and "No AWS credentials found" in run.results[0]["msg"], run
