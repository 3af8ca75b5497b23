"""The real pcluster.lib create_cluster, update_cluster and delete_cluster with the sandbox's cluster
config, against a moto server the test starts (the sandbox's, with its CloudFormation engine):
ParallelCluster's own template, stack statuses, resources, and describe-cluster's view at each step.

The test plays the head node's part: it writes the compute fleet's status and signals the stack's
wait condition (or signals a failure), as the head node's bootstrap does.
"""

from __future__ import annotations

import copy
import urllib.request

import yaml

import moto_cluster
from ansible_collections.hpc.pcluster.tests.integration.moto_cfn.cfn_helpers import (
    FIXTURES,
    REGION,
    events,
    initialize_fleet_status,
    pcluster,
    resources,
    signal,
    stack,
    wait_for,
)

CLUSTER = "ml-training-cluster"
SUPPRESS = ["type:HeadNodeLaunchTemplateValidator", "type:ComputeResourceLaunchTemplateValidator",
            "type:AsyncTimedUrlValidator"]


def sandbox_config() -> dict:
    # Rendered by role cluster_config for the ids prepare_account's seeding creates (capture_templates.py).
    return yaml.safe_load((FIXTURES / "sandbox" / "cluster-config.yaml").read_text())


def describe(moto, name=CLUSTER) -> dict:
    out = pcluster(moto, "describe_cluster", cluster_name=name)
    assert "returned" in out, out
    return out["returned"]


def stored_config(moto, name=CLUSTER) -> dict:
    with urllib.request.urlopen(describe(moto, name)["clusterConfiguration"]["url"], timeout=30) as response:
        return yaml.safe_load(response.read())


def head_node_done(moto, name=CLUSTER, success=True, reason=""):
    """The head node's bootstrap: the fleet's status (on create), then its signal."""
    if success and stack(moto, name)["StackStatus"] == "CREATE_IN_PROGRESS":
        moto_cluster.pending_wait_condition_url(moto.endpoint_url, REGION, name)
        initialize_fleet_status(moto, name)
    signal(moto, name, success, reason)
    return wait_for(moto, name)["StackStatus"]


def ssh_rules(moto, name=CLUSTER) -> list:
    group = resources(moto, name)["HeadNodeSecurityGroup"][2]
    permissions = moto.client("ec2").describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["IpPermissions"]
    return group, sorted(r["CidrIp"] for p in permissions if p.get("FromPort") == 22 for r in p["IpRanges"])


def test_create_update_and_delete_through_pcluster(moto, cleanup):  # pylint: disable=unused-argument,too-many-statements
    config = sandbox_config()

    created = pcluster(moto, "create_cluster", cluster_name=CLUSTER, cluster_configuration=config,
                       suppress_validators=SUPPRESS)
    assert created["returned"]["cluster"]["clusterStatus"] == "CREATE_IN_PROGRESS", created
    moto_cluster.pending_wait_condition_url(moto.endpoint_url, REGION, CLUSTER)
    creating = describe(moto)
    assert creating["clusterStatus"] == "CREATE_IN_PROGRESS" and creating["headNode"]["state"] == "running"

    assert head_node_done(moto) == "CREATE_COMPLETE", events(moto, CLUSTER)
    complete = describe(moto)
    assert complete["clusterStatus"] == "CREATE_COMPLETE" and complete["computeFleetStatus"] == "RUNNING"
    head = complete["headNode"]
    listed = resources(moto, CLUSTER)
    assert head["instanceId"] == listed["HeadNode"][2] and head["instanceType"] == "m5.8xlarge"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack(moto, CLUSTER)["Outputs"]}
    assert head["privateIpAddress"] == outputs["HeadNodePrivateIP"]
    clusters = pcluster(moto, "list_clusters")["returned"]["clusters"]
    assert [c["clusterName"] for c in clusters] == [CLUSTER]  # not its nested stack
    instances = pcluster(moto, "describe_cluster_instances", cluster_name=CLUSTER)["returned"]["instances"]
    assert [(i["nodeType"], i["instanceId"]) for i in instances] == [("HeadNode", head["instanceId"])]
    assert stored_config(moto) == config
    group, cidrs = ssh_rules(moto)
    assert cidrs == ["10.100.0.0/16"]

    more = copy.deepcopy(config)
    more["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MaxCount"] = 3
    updated = pcluster(moto, "update_cluster", cluster_name=CLUSTER, cluster_configuration=more,
                       suppress_validators=["ALL"])
    assert updated["returned"]["changeSet"] == [{
        "parameter": "Scheduling.SlurmQueues[compute-gpu].ComputeResources[distributed-ml].MaxCount",
        "currentValue": "2", "requestedValue": "3"}], updated
    assert describe(moto)["clusterStatus"] == "UPDATE_IN_PROGRESS"
    assert head_node_done(moto) == "UPDATE_COMPLETE", events(moto, CLUSTER)
    assert describe(moto)["clusterStatus"] == "UPDATE_COMPLETE"
    assert stored_config(moto) == more
    assert resources(moto, CLUSTER)["HeadNode"][2] == head["instanceId"]

    # A value of the user's own, unlike anything the sandbox seeded: who may reach SSH.
    own_cidr = copy.deepcopy(more)
    own_cidr["HeadNode"]["Ssh"]["AllowedIps"] = "203.0.113.0/24"
    updated = pcluster(moto, "update_cluster", cluster_name=CLUSTER, cluster_configuration=own_cidr,
                       suppress_validators=["ALL"])
    assert [c["parameter"] for c in updated["returned"]["changeSet"]] == ["HeadNode.Ssh.AllowedIps"], updated
    assert head_node_done(moto) == "UPDATE_COMPLETE", events(moto, CLUSTER)
    assert ssh_rules(moto) == (group, ["203.0.113.0/24"])  # the same group, its rule replaced

    other_type = copy.deepcopy(own_cidr)
    other_type["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["InstanceType"] = "g5.12xlarge"
    refused = pcluster(moto, "update_cluster", cluster_name=CLUSTER, cluster_configuration=other_type,
                       suppress_validators=["ALL"])
    assert refused["exception"] == "UpdateClusterBadRequestException", refused
    assert "All compute nodes must be stopped" in str(refused["content"])

    stack_id = stack(moto, CLUSTER)["StackId"]
    deleting = pcluster(moto, "delete_cluster", cluster_name=CLUSTER)
    assert deleting["returned"]["cluster"]["clusterStatus"] == "DELETE_IN_PROGRESS", deleting
    assert wait_for(moto, stack_id)["StackStatus"] == "DELETE_COMPLETE", events(moto, stack_id)
    assert pcluster(moto, "describe_cluster", cluster_name=CLUSTER)["exception"] == "NotFoundException"
    reservations = moto.client("ec2").describe_instances(InstanceIds=[head["instanceId"]])["Reservations"]
    assert reservations[0]["Instances"][0]["State"]["Name"] == "terminated"


def test_a_failing_head_node_script_reads_as_on_aws(moto, cleanup):  # pylint: disable=unused-argument
    name = "failing-cluster"
    config = sandbox_config()
    reason = ("Failed to execute OnNodeConfigured script 1 s3://ml-training-bootstrap-123456789012-us-east-1/"
              "bootstrap/head-node-bootstrap.sh, return code: 1. Please check /var/log/cfn-init.log in the head node")

    pcluster(moto, "create_cluster", cluster_name=name, cluster_configuration=config, suppress_validators=SUPPRESS)
    status = head_node_done(moto, name, success=False, reason=reason)

    assert status == "ROLLBACK_COMPLETE"
    failed = describe(moto, name)
    assert failed["clusterStatus"] == "CREATE_FAILED" and failed["cloudFormationStackStatus"] == "ROLLBACK_COMPLETE"
    assert failed["failures"] == [{"failureCode": "OnNodeConfiguredExecutionFailure",
                                   "failureReason": "Failed to execute OnNodeConfigured script."}]
    stack_events = pcluster(moto, "get_cluster_stack_events", cluster_name=name)["returned"]["events"]
    wait_failed = [e for e in stack_events if e["resourceType"] == "AWS::CloudFormation::WaitCondition"
                   and e["resourceStatus"] == "CREATE_FAILED"]
    assert [e["resourceStatusReason"] for e in wait_failed] == [
        f"WaitCondition received failed message: '{reason}' for uniqueId: i-0123456789abcdef0"]
    # The stack stays (ROLLBACK_COMPLETE) until it is deleted, as on AWS.
    assert pcluster(moto, "delete_cluster", cluster_name=name)["returned"]["cluster"]["clusterStatus"] == \
        "DELETE_IN_PROGRESS"


def test_an_update_of_a_registered_cluster_is_refused_and_changes_nothing(moto, cleanup):  # pylint: disable=unused-argument
    # `sandbox.py up` registers its cluster without ParallelCluster's template: pcluster's update cannot apply
    # the template to it. It fails with what to do, and the cluster keeps its stack and its stored config.
    name = "registered-cluster"
    config = dict(sandbox_config(), Region=REGION)
    moto_cluster.register_cluster(moto.endpoint_url, REGION, name, "10.100.0.10", ["10.100.16.11"],
                                  config=yaml.safe_dump(config), public_subnet_id=moto.seed["public_subnet_id"],
                                  private_subnet_id=moto.seed["private_subnet_id"],
                                  security_group_ids=[moto.seed["security_group_id"]])
    own_cidr = copy.deepcopy(config)
    own_cidr["HeadNode"]["Ssh"]["AllowedIps"] = "203.0.113.0/24"

    refused = pcluster(moto, "update_cluster", cluster_name=name, cluster_configuration=own_cidr,
                       suppress_validators=["ALL"])

    assert refused["exception"] == "InternalServiceException", refused
    assert "registered by the sandbox" in str(refused["content"]) and "--no-cluster" in str(refused["content"])
    after = describe(moto, name)
    assert after["clusterStatus"] == "CREATE_COMPLETE" and stored_config(moto, name) == config
    assert list(resources(moto, name)) == ["HeadNodeSecurityGroup"]
    moto_cluster.deregister_cluster(moto.endpoint_url, REGION, name)
