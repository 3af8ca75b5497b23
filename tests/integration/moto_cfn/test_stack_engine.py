"""ParallelCluster's own templates (captured from pcluster 3.16.1 in fixtures/) run by the sandbox's moto
server: what each resource becomes in moto, the wait for the head node, updates, deletes, failures and
rollbacks, as CloudFormation runs them. The test sends the head node's signals, as the head node sends
them (cfn-signal's PUT to the handle its launch template's metadata names).
"""

from __future__ import annotations

import copy
import json
import time

import botocore.exceptions
import pytest
import yaml

import moto_cluster
from ansible_collections.hpc.pcluster.plugins.module_utils.config.rules import check_rules
from ansible_collections.hpc.pcluster.tests.integration.moto_cfn.cfn_helpers import (
    FIXTURES,
    REGION,
    create_stack,
    events,
    fixture,
    resources,
    signal,
    stack,
    update_stack,
    upload_artifacts,
    wait_for,
)

FAILED_SCRIPT = "Failed to execute OnNodeConfigured script 1 s3://bucket/head.sh, return code: 1"


def by_type(listed: dict, resource_type: str) -> dict:
    return {lid: value for lid, value in listed.items() if value[0] == resource_type}


def instances(moto, cluster, node_type=None, states=("pending", "running")):
    filters = [{"Name": "tag:parallelcluster:cluster-name", "Values": [cluster]},
               {"Name": "instance-state-name", "Values": list(states)}]
    if node_type:
        filters.append({"Name": "tag:parallelcluster:node-type", "Values": [node_type]})
    reservations = moto.client("ec2").describe_instances(Filters=filters)["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def failed_events(moto, name):
    return [(lid, status, reason) for lid, status, reason in events(moto, name) if status.endswith("FAILED")]


def current_template(moto, name):
    body = moto.client("cloudformation").get_template(StackName=name)["TemplateBody"]
    return json.loads(json.dumps(body)) if isinstance(body, dict) else json.loads(body)  # botocore parses JSON


def the_wait_condition(listed):
    """The wait condition's logical id, in resources() or a template's Resources."""
    return next(lid for lid, value in listed.items()
                if (value["Type"] if isinstance(value, dict) else value[0]) == "AWS::CloudFormation::WaitCondition")


@pytest.fixture(name="created")
def created_fixture(moto, cleanup):  # pylint: disable=unused-argument
    """The sandbox's template created and complete (the head node signalled); its name."""
    name = create_stack(moto, fixture("sandbox"))
    signal(moto, name)
    assert wait_for(moto, name)["StackStatus"] == "CREATE_COMPLETE", failed_events(moto, name)
    return name


def test_create_waits_for_the_head_node_with_every_resource_real_in_moto(moto, cleanup):  # pylint: disable=unused-argument
    captured = fixture("sandbox")
    name = create_stack(moto, captured)

    handle = moto_cluster.pending_wait_condition_url(moto.endpoint_url, REGION, name)
    time.sleep(0.5)
    assert stack(moto, name)["StackStatus"] == "CREATE_IN_PROGRESS"
    listed = resources(moto, name)
    assert [value[0] for value in listed.values() if value[1] != "CREATE_COMPLETE"] == [
        "AWS::CloudFormation::WaitCondition"]
    assert not by_type(listed, "AWS::CloudWatch::Alarm")  # they depend on the wait condition
    assert handle.startswith(moto.endpoint_url + "/cloudformation_us-east-1/waitcondition/")

    ec2 = moto.client("ec2")
    head = instances(moto, name, "HeadNode")[0]
    tags = {t["Key"]: t["Value"] for t in head["Tags"]}
    assert tags["aws:cloudformation:logical-id"] == "HeadNode" and tags["aws:cloudformation:stack-name"] == name
    assert tags["parallelcluster:version"] == "3.16.1" and head["InstanceType"] == "m5.8xlarge"
    assert head["NetworkInterfaces"][0]["NetworkInterfaceId"] == listed["HeadNodeENI"][2]
    assert head["SubnetId"] == moto.seed["public_subnet_id"]
    assert head["IamInstanceProfile"]["Arn"].endswith("/" + listed["InstanceProfileHeadNode"][2])
    role = listed["RoleHeadNode"][2]
    attached = moto.client("iam").list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert sorted(p["PolicyArn"] for p in attached) == sorted(
        captured["template"]["Resources"]["RoleHeadNode"]["Properties"]["ManagedPolicyArns"])
    group = ec2.describe_security_groups(GroupIds=[listed["HeadNodeSecurityGroup"][2]])["SecurityGroups"][0]
    assert [(p["IpProtocol"], p.get("FromPort"), [r["CidrIp"] for r in p["IpRanges"]])
            for p in group["IpPermissions"] if p["IpRanges"]] == [("tcp", 22, ["10.100.0.0/16"])]
    compute = listed["ComputeSecurityGroup"][2]
    egress = ec2.describe_security_groups(GroupIds=[compute])["SecurityGroups"][0]["IpPermissionsEgress"]
    assert sorted([r["CidrIp"] for p in egress for r in p["IpRanges"]]
                  + [g["GroupId"] for p in egress for g in p["UserIdGroupPairs"]]) == sorted(["0.0.0.0/0", compute])
    tables = moto.client("dynamodb").list_tables()["TableNames"]
    assert {f"parallelcluster-{name}", f"parallelcluster-slurm-{name}"} <= set(tables)
    zone = moto.client("route53").get_hosted_zone(Id=listed["Route53HostedZone"][2])["HostedZone"]
    assert zone["Config"]["PrivateZone"] and zone["Name"] == f"{name}.pcluster."
    functions = {f["FunctionName"] for f in moto.client("lambda").list_functions()["Functions"]}
    assert {listed["CleanupResourcesFunction"][2], listed["CleanupRoute53Function"][2]} <= functions
    log_group = captured["template"]["Resources"]["CloudWatchLogGroup"]["Properties"]["LogGroupName"]
    filters = moto.client("logs").describe_metric_filters(logGroupName=log_group)["metricFilters"]
    assert len(filters) == len(by_type(listed, "AWS::Logs::MetricFilter")) == 16
    nested_id = listed["ComputeFleetQueuesNestedStackQueuesNestedStackResource4C142E85"][2]
    nested = stack(moto, nested_id)
    assert nested["ParentId"] == stack(moto, name)["StackId"] and nested["StackStatus"] == "CREATE_COMPLETE"
    assert {"AWS::EC2::LaunchTemplate", "AWS::EC2::PlacementGroup", "AWS::IAM::Role"} <= {
        value[0] for value in resources(moto, nested_id).values()}

    moto_cluster.signal_wait_condition(handle, unique_id=head["InstanceId"])
    done = wait_for(moto, name)

    assert done["StackStatus"] == "CREATE_COMPLETE", failed_events(moto, name)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in done["Outputs"]}
    assert outputs["HeadNodePrivateIP"] == head["PrivateIpAddress"] and outputs["HeadNodeInstanceID"] == head["InstanceId"]
    alarms = moto.client("cloudwatch").describe_alarms()
    assert len(alarms["MetricAlarms"]) == 5 and len(alarms["CompositeAlarms"]) == 1
    assert alarms["CompositeAlarms"][0]["AlarmRule"].count("ALARM(") == 5
    assert {value[1] for value in resources(moto, name).values()} == {"CREATE_COMPLETE"}
    assert len(resources(moto, name)) == len(captured["template"]["Resources"]) == 55
    assert events(moto, name)[-1] == (name, "CREATE_COMPLETE", None)


def test_update_waits_for_the_head_node_again_and_keeps_it(moto, created):
    before = resources(moto, created)
    old_handle = moto_cluster.wait_condition_url(moto.endpoint_url, REGION, created)
    head = instances(moto, created, "HeadNode")[0]["InstanceId"]
    captured = fixture("sandbox", "update")

    update_stack(moto, created, captured)
    new_handle = moto_cluster.pending_wait_condition_url(moto.endpoint_url, REGION, created)
    moto_cluster.signal_wait_condition(old_handle, unique_id=head)  # the old handle's signal is not the update's
    time.sleep(0.5)
    assert stack(moto, created)["StackStatus"] == "UPDATE_IN_PROGRESS"
    moto_cluster.signal_wait_condition(new_handle, unique_id=head)
    done = wait_for(moto, created)

    assert done["StackStatus"] == "UPDATE_COMPLETE", failed_events(moto, created)
    after = resources(moto, created)
    assert the_wait_condition(after) != the_wait_condition(before) and new_handle != old_handle
    assert the_wait_condition(after) in captured["template"]["Resources"]
    assert after["HeadNode"][2] == head  # not replaced: its launch template only got new metadata
    assert [i["InstanceId"] for i in instances(moto, created, "HeadNode")] == [head]
    versions = moto.client("ec2").describe_launch_template_versions(LaunchTemplateId=after["HeadNodeLaunchTemplate"][2])
    assert len(versions["LaunchTemplateVersions"]) == 1
    cleanup = [lid for lid, status, _r in events(moto, created) if status == "DELETE_COMPLETE"]
    assert sorted(cleanup) == sorted([the_wait_condition(before), the_wait_condition(before).replace(
        "WaitCondition", "WaitConditionHandle")])
    assert current_template(moto, created) == captured["template"]


def test_delete_runs_parallelclusters_cleanup_and_keeps_the_log_groups(moto, created):
    listed = resources(moto, created)
    template = fixture("sandbox")["template"]
    ec2, s3 = moto.client("ec2"), moto.client("s3")
    # What the cluster adds beside its stack: a compute node slurm_resume launched, its DNS record, artifacts.
    compute = ec2.run_instances(ImageId=moto_cluster.OFFICIAL_AMI_ID, MinCount=1, MaxCount=1,
                                SubnetId=moto.seed["private_subnet_id"], TagSpecifications=[{
                                    "ResourceType": "instance", "Tags": [
                                        {"Key": "parallelcluster:cluster-name", "Value": created},
                                        {"Key": "parallelcluster:node-type", "Value": "Compute"}]}])["Instances"][0]
    zone = listed["Route53HostedZone"][2]
    moto.client("route53").change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{
        "Action": "CREATE", "ResourceRecordSet": {"Name": f"compute-gpu-st-distributed-ml-1.{created}.pcluster.",
                                                  "Type": "A", "TTL": 120,
                                                  "ResourceRecords": [{"Value": compute["PrivateIpAddress"]}]}}]})
    bucket = moto.seed["pcluster_bucket"]
    artifacts = template["Parameters"]["ArtifactS3RootDirectory"]["Default"]
    for body in (b"first", b"second"):
        s3.put_object(Bucket=bucket, Key=f"{artifacts}/configs/cluster-config.yaml", Body=body)

    moto.client("cloudformation").delete_stack(StackName=created)
    deleting = stack(moto, created)
    done = wait_for(moto, deleting["StackId"])

    assert deleting["StackStatus"] == "DELETE_IN_PROGRESS"
    assert done["StackStatus"] == "DELETE_COMPLETE", failed_events(moto, deleting["StackId"])
    with pytest.raises(botocore.exceptions.ClientError, match="does not exist"):
        stack(moto, created)
    assert instances(moto, created, states=("pending", "running", "stopping", "stopped", "shutting-down")) == []
    versions = s3.list_object_versions(Bucket=bucket, Prefix=artifacts + "/")
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")
    assert s3.head_object(Bucket=bucket, Key="parallelcluster/.bootstrapped")  # outside the cluster's directory
    assert zone not in [z["Id"].split("/")[-1] for z in moto.client("route53").list_hosted_zones()["HostedZones"]]
    assert f"parallelcluster-{created}" not in moto.client("dynamodb").list_tables()["TableNames"]
    assert not moto.client("cloudwatch").describe_alarms()["MetricAlarms"]
    roles = [r["RoleName"] for r in moto.client("iam").list_roles()["Roles"]]
    assert listed["RoleHeadNode"][2] not in roles  # its managed policies detached first, as CloudFormation does
    retained = sorted(lid for lid, value in template["Resources"].items() if value.get("DeletionPolicy") == "Retain")
    skipped = sorted(lid for lid, status, _r in events(moto, deleting["StackId"]) if status == "DELETE_SKIPPED")
    assert skipped == retained == ["CleanupResourcesFunctionLogGroup", "CleanupRoute53FunctionLogGroup",
                                   "CloudWatchLogGroup"]
    groups = [g["logGroupName"] for g in moto.client("logs").describe_log_groups()["logGroups"]]
    assert template["Resources"]["CloudWatchLogGroup"]["Properties"]["LogGroupName"] in groups
    nested = [s for s in moto.client("cloudformation").list_stacks()["StackSummaries"]
              if s.get("ParentId") == deleting["StackId"]]
    assert [s["StackStatus"] for s in nested] == ["DELETE_COMPLETE"]


def test_a_failure_signal_rolls_the_create_back_with_cloudformations_reason(moto, cleanup):  # pylint: disable=unused-argument
    name = create_stack(moto, fixture("sandbox"))
    signal(moto, name, success=False, reason=FAILED_SCRIPT)
    done = wait_for(moto, name)

    assert done["StackStatus"] == "ROLLBACK_COMPLETE"
    wait_condition = the_wait_condition(fixture("sandbox")["template"]["Resources"])
    assert failed_events(moto, name) == [(wait_condition, "CREATE_FAILED", (
        f"WaitCondition received failed message: '{FAILED_SCRIPT}' for uniqueId: i-0123456789abcdef0"))]
    assert (name, "ROLLBACK_IN_PROGRESS", f"The following resource(s) failed to create: [{wait_condition}]. "
            "Rollback requested by user.") in events(moto, name)
    assert instances(moto, name) == []
    assert f"parallelcluster-{name}" not in moto.client("dynamodb").list_tables()["TableNames"]
    assert {value[1] for value in resources(moto, name).values()} == {"DELETE_SKIPPED"}  # the log groups


def test_without_rollback_a_failed_create_keeps_its_resources(moto, cleanup):  # pylint: disable=unused-argument
    name = create_stack(moto, fixture("sandbox"), DisableRollback=True)
    signal(moto, name, success=False, reason=FAILED_SCRIPT)
    done = wait_for(moto, name)

    assert done["StackStatus"] == "CREATE_FAILED"
    assert done["StackStatusReason"].startswith("The following resource(s) failed to create: [HeadNodeWaitCondition")
    assert len(instances(moto, name, "HeadNode")) == 1


def test_a_head_node_that_never_signals_times_the_create_out(moto, cleanup):  # pylint: disable=unused-argument
    captured = copy.deepcopy(fixture("sandbox"))
    wait_condition = the_wait_condition(captured["template"]["Resources"])
    captured["template"]["Resources"][wait_condition]["Properties"]["Timeout"] = "1"
    name = create_stack(moto, captured)
    done = wait_for(moto, name)

    assert done["StackStatus"] == "ROLLBACK_COMPLETE"
    assert failed_events(moto, name) == [(wait_condition, "CREATE_FAILED",
                                          "WaitCondition timed out. Received 0 conditions when expecting 1")]


def test_a_failed_update_rolls_back_to_the_previous_template(moto, created):
    before = resources(moto, created)
    old_handle = moto_cluster.wait_condition_url(moto.endpoint_url, REGION, created)

    update_stack(moto, created, fixture("sandbox", "update"))
    signal(moto, created, success=False, reason="Update failed")
    done = wait_for(moto, created)

    assert done["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE", failed_events(moto, created)
    after = resources(moto, created)
    assert sorted(after) == sorted(before) and after["HeadNode"][2] == before["HeadNode"][2]
    assert moto_cluster.wait_condition_url(moto.endpoint_url, REGION, created) == old_handle
    assert current_template(moto, created) == fixture("sandbox")["template"]
    statuses = [status for lid, status, _r in events(moto, created) if lid == created]
    assert statuses[-4:] == ["UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS",
                             "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"]


def test_deleting_a_stack_being_created_cancels_the_create(moto, cleanup):  # pylint: disable=unused-argument
    name = create_stack(moto, fixture("sandbox"))
    moto_cluster.pending_wait_condition_url(moto.endpoint_url, REGION, name)
    stack_id = stack(moto, name)["StackId"]

    moto.client("cloudformation").delete_stack(StackName=name)
    done = wait_for(moto, stack_id)

    assert done["StackStatus"] == "DELETE_COMPLETE"
    assert ("CREATE_FAILED", "Resource creation cancelled") in [(s, r) for _l, s, r in events(moto, stack_id)]
    assert instances(moto, name) == []


def test_an_update_change_set_lists_the_changes_and_runs_the_update(moto, created):
    before = resources(moto, created)
    captured = fixture("sandbox", "update")
    cfn = moto.client("cloudformation")
    upload_artifacts(moto, captured)

    cfn.create_change_set(StackName=created, ChangeSetName="update", ChangeSetType="UPDATE",
                          TemplateBody=json.dumps(captured["template"]), Parameters=captured["parameters"],
                          Capabilities=["CAPABILITY_IAM"])
    changes = {(c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"])
               for c in cfn.describe_change_set(StackName=created, ChangeSetName="update")["Changes"]}
    cfn.execute_change_set(StackName=created, ChangeSetName="update")
    signal(moto, created)

    old, new = the_wait_condition(before), the_wait_condition(captured["template"]["Resources"])
    assert {("Add", new), ("Remove", old), ("Modify", "HeadNodeLaunchTemplate")} <= changes
    assert wait_for(moto, created)["StackStatus"] == "UPDATE_COMPLETE"
    assert the_wait_condition(resources(moto, created)) == new


@pytest.mark.parametrize("variant", sorted(path.name for path in FIXTURES.iterdir() if path.is_dir()))
def test_every_captured_config_is_one_the_collection_accepts(variant):
    config = yaml.safe_load((FIXTURES / variant / "cluster-config.yaml").read_text())
    assert check_rules(config) == []


@pytest.mark.parametrize("variant", ["login-nodes", "two-queues", "dynamic"])
def test_other_shapes_of_cluster_create_and_delete(moto, cleanup, variant):  # pylint: disable=unused-argument
    captured = fixture(variant)
    name = create_stack(moto, captured)
    signal(moto, name)
    done = wait_for(moto, name)

    assert done["StackStatus"] == "CREATE_COMPLETE", failed_events(moto, name)
    nested = [s for s in moto.client("cloudformation").list_stacks()["StackSummaries"]
              if s.get("ParentId") == done["StackId"]]
    assert len(nested) == len(captured["nested"]) and {s["StackStatus"] for s in nested} == {"CREATE_COMPLETE"}
    if variant == "login-nodes":
        login = instances(moto, name, "LoginNode")
        assert len(login) == 1 and login[0]["SubnetId"] == moto.seed["public_subnet_id"]
        balancers = moto.client("elbv2").describe_load_balancers()["LoadBalancers"]
        assert [b["Type"] for b in balancers] == ["network"]
    if variant == "two-queues":
        templates = moto.client("ec2").describe_launch_templates()["LaunchTemplates"]
        wanted = {f"{name}-compute-gpu-distributed-ml", f"{name}-compute-cpu-cpu"}
        assert {t["LaunchTemplateName"] for t in templates} >= wanted

    moto.client("cloudformation").delete_stack(StackName=name)

    assert wait_for(moto, done["StackId"])["StackStatus"] == "DELETE_COMPLETE", failed_events(moto, done["StackId"])
    assert instances(moto, name) == []
    assert {s["StackStatus"] for s in moto.client("cloudformation").list_stacks()["StackSummaries"]
            if s.get("ParentId") == done["StackId"]} == {"DELETE_COMPLETE"}


def test_what_the_sandbox_cannot_create_is_refused_and_no_change_is_no_update(moto, created):
    cfn = moto.client("cloudformation")
    template = {"Resources": {"Storage": {"Type": "AWS::FSx::FileSystem", "Properties": {}}}}

    with pytest.raises(botocore.exceptions.ClientError, match=r"Unrecognized resource types: \['AWS::FSx::FileSystem'\]"):
        cfn.create_stack(StackName="fsx", TemplateBody=json.dumps(template))
    captured = fixture("sandbox")
    with pytest.raises(botocore.exceptions.ClientError, match="No updates are to be performed"):
        update_stack(moto, created, captured)
