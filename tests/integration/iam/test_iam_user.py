"""The controller's identity against the sandbox's moto, which enforces IAM: the pcluster user with ParallelCluster's
documented user policies (what env.sh exports), what the collection does with them, and the error an action the
credentials do not allow gives - naming the action and the principal, never a traceback."""

from __future__ import annotations

import json
import secrets
import subprocess

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

# sandbox/iam_identities.py, sandbox/moto_cluster.py
import iam_identities
import moto_cluster

from ansible_collections.hpc.pcluster.tests.integration.lifecycle.lifecycle_helpers import Step

# Throwaway clusters of these tests live in a region of their own.
REGION = "ca-central-1"


def client_as(env, service, region=None):
    return boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                 aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                 region_name=region or env["AWS_REGION"]).client(service,
                                                                                 endpoint_url=env["AWS_ENDPOINT_URL"])


def inventory_list(sandbox, env, tmp_path, *extra):
    """ansible-inventory --list of the sandbox's inventory with env: (process, the listing's JSON or None)."""
    output = tmp_path / ("inventory-%s.json" % secrets.token_hex(3))
    proc = subprocess.run(["ansible-inventory", "-i", str(sandbox.inventory_dir), "--list", "--output", str(output),
                           *extra], env=dict(env, ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="true", ANSIBLE_NOCOLOR="1"),
                          capture_output=True, text=True, timeout=300, check=False)
    return proc, (output.read_text() if output.exists() else None)


def compute_hosts(listing_json: str) -> list:
    data = json.loads(listing_json)
    hostvars = data["_meta"]["hostvars"]
    return sorted(h for h, v in hostvars.items()
                  if (v.get("pcluster_node_type") or {}).get("__ansible_unsafe", v.get("pcluster_node_type")) == "Compute")


@pytest.fixture(scope="module", name="small_cluster")
def small_cluster_fixture(sandbox):
    """A cluster registered (with the admin identity) in REGION for these tests: its name."""
    name = "iam-%s" % secrets.token_hex(3)
    ec2 = moto_cluster.client("ec2", sandbox.endpoint_url, REGION)
    subnets = {}
    for subnet in ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["iam-public", "iam-private"]}])["Subnets"]:
        subnets.update({tag["Value"]: subnet["SubnetId"] for tag in subnet["Tags"] if tag["Key"] == "Name"})
    if len(subnets) < 2:  # the first run on this sandbox
        seed = moto_cluster.seed_environment(sandbox.endpoint_url, REGION, "10.220.0.0/16", "10.220.0.0/24",
                                             "10.220.16.0/20", name_prefix="iam")
        subnets = {"iam-public": seed["public_subnet_id"], "iam-private": seed["private_subnet_id"]}
    used = {i.get("PrivateIpAddress") for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    octet = min(n for n in range(10, 250) if "10.220.0.%d" % n not in used and "10.220.16.%d" % n not in used)
    moto_cluster.register_cluster(sandbox.endpoint_url, REGION, name, "10.220.0.%d" % octet, ["10.220.16.%d" % octet],
                                  config=yaml.safe_dump({"Region": REGION}), public_subnet_id=subnets["iam-public"],
                                  private_subnet_id=subnets["iam-private"])
    yield name
    moto_cluster.deregister_cluster(sandbox.endpoint_url, REGION, name)


def test_the_controller_signs_as_the_pcluster_user_with_the_documented_policies(sandbox, pcluster_user_policies):
    identity = client_as(sandbox.env, "sts").get_caller_identity()
    assert identity["Arn"] == sandbox.state["iam"]["user"]["arn"]
    assert identity["Arn"].endswith(":user/%s" % iam_identities.USER_NAME)
    admin_iam = moto_cluster.client("iam", sandbox.endpoint_url, sandbox.region)
    attached = admin_iam.list_attached_user_policies(UserName=iam_identities.USER_NAME)["AttachedPolicies"]
    assert sorted(p["PolicyName"] for p in attached) == sorted(
        "%s-%s" % (iam_identities.USER_NAME, p["name"]) for p in pcluster_user_policies)
    assert not admin_iam.list_user_policies(UserName=iam_identities.USER_NAME)["PolicyNames"]
    # ParallelCluster's user policies do not allow a Scan of the node table (the inventory queries its index instead).
    with pytest.raises(ClientError) as denied:
        client_as(sandbox.env, "dynamodb").scan(TableName="parallelcluster-slurm-%s" % sandbox.cluster_name)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:Scan" in denied.value.response["Error"]["Message"]


def test_inventory_under_the_user_policy_names_every_node_as_slurm_does(sandbox, tmp_path):
    slurm_names = sorted(sandbox.ssh("sinfo --noheader --Node --format=%N").stdout.split())
    listed, listing = inventory_list(sandbox, sandbox.env, tmp_path, "-v")
    assert listed.returncode == 0, listed.stderr
    assert compute_hosts(listing) == slurm_names
    assert slurm_names == sorted(sandbox.compute_nodes)
    # Named through one Query of the node table's InstanceId index per node, since the Scan is not allowed.
    assert "no dynamodb:Scan on parallelcluster-slurm-%s" % sandbox.cluster_name in listed.stdout + listed.stderr


def test_inventory_without_describe_instances_fails_naming_it(sandbox, limited_user, tmp_path):
    user = limited_user(deny=["ec2:DescribeInstances"])
    listed, _listing = inventory_list(sandbox, user.env, tmp_path)
    assert listed.returncode != 0
    text = " ".join((listed.stdout + listed.stderr).split())
    assert "is not authorized to perform: ec2:DescribeInstances" in text, text[-2000:]
    assert user.arn in text
    assert "Traceback" not in text


def test_inventory_without_query_names_nodes_by_instance_id_and_says_why(sandbox, limited_user, tmp_path):
    user = limited_user(without=["dynamodb:Query"])
    listed, listing = inventory_list(sandbox, user.env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    hosts = compute_hosts(listing)
    assert hosts and all(h.startswith("i-") for h in hosts)
    warning = " ".join(listed.stderr.split())
    assert "cannot read the node table parallelcluster-slurm-%s" % sandbox.cluster_name in warning, warning
    assert "is not authorized to perform: dynamodb:Query" in warning and user.arn in warning


def test_a_denied_read_names_the_action_and_the_principal(sandbox, limited_user, playbook_as):
    user = limited_user(without=["cloudformation:*"])
    run = playbook_as(user.env, Step("hpc.pcluster.cluster_info", {"name": sandbox.cluster_name}))
    result = run.results[0]
    assert result.get("failed"), run
    assert "is not authorized to perform: cloudformation:DescribeStacks" in result["msg"], result["msg"]
    assert user.arn in result["msg"], result["msg"]
    assert result["error"]["kind"] == "denied", result
    assert "Traceback" not in run.stdout + json.dumps(result) and "module_stderr" not in result


def test_the_boot_script_upload_names_what_it_needs_beyond_pclusters_policies(sandbox, limited_user, playbook_as,
                                                                              tmp_path):
    # ParallelCluster's documented policies alone: S3 only on ParallelCluster's buckets, not the bootstrap bucket.
    user = limited_user()
    only_pcluster = iam_identities.user_policies({"BootstrapBucket": "x"}, ("pcluster-user.yaml",))
    iam = moto_cluster.client("iam", sandbox.endpoint_url, sandbox.region)
    attached = [p["PolicyName"] for p in iam.list_attached_user_policies(UserName=user.name)["AttachedPolicies"]]
    for policy in iam.list_attached_user_policies(UserName=user.name)["AttachedPolicies"]:
        if not any(policy["PolicyName"].endswith("-" + p["name"]) for p in only_pcluster):
            iam.detach_user_policy(UserName=user.name, PolicyArn=policy["PolicyArn"])
    assert len(attached) == len(only_pcluster) + 1
    script = tmp_path / "boot.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    url = "s3://%s/bootstrap/iam-test-%s.sh" % (sandbox.state["aws"]["bootstrap_bucket"], secrets.token_hex(3))
    run = playbook_as(user.env, Step("hpc.pcluster.node_setup_script", {"src": str(script), "url": url}))
    result = run.results[0]
    assert result.get("failed"), run
    assert "S3 refused HeadObject (authorized as s3:GetObject)" in result["msg"] and user.arn in result["msg"], result
    assert "s3:PutObject" in result["msg"]
    assert "Traceback" not in run.stdout + json.dumps(result) and "module_stderr" not in result


def test_a_denial_pcluster_goes_past_is_a_warning_naming_it(sandbox, limited_user, playbook_as):
    # pcluster reports the compute fleet status UNKNOWN when it may not read the cluster's table, and only logs why.
    user = limited_user(without=["dynamodb:GetItem"])
    run = playbook_as(user.env, Step("hpc.pcluster.cluster_info", {"name": sandbox.cluster_name}))
    result = run.results[0]
    assert not result.get("failed"), run
    assert result["compute_fleet_status"] == "UNKNOWN"
    warnings = " ".join(result.get("warnings") or [])
    assert "AWS denied dynamodb:GetItem to %s and ParallelCluster went on without it" % user.arn in warnings, run


def test_a_denied_fleet_change_names_the_action_and_changes_nothing(sandbox, small_cluster, limited_user, playbook_as):
    user = limited_user(without=["dynamodb:UpdateItem", "dynamodb:PutItem"])
    env = dict(user.env, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION)
    run = playbook_as(env, Step("hpc.pcluster.compute_fleet",
                                {"name": small_cluster, "state": "stopped", "wait": False, "unfinished_jobs": 0}))
    result = run.results[0]
    assert result.get("failed"), run
    assert "is not authorized to perform: dynamodb:" in result["msg"] and user.arn in result["msg"], result["msg"]
    assert "Traceback" not in run.stdout + json.dumps(result) and "module_stderr" not in result
    table = moto_cluster.client("dynamodb", sandbox.endpoint_url, REGION)
    item = table.get_item(TableName="parallelcluster-%s" % small_cluster, Key={"Id": {"S": "COMPUTE_FLEET"}})["Item"]
    assert item["Data"]["M"]["status"]["S"] == "RUNNING"
