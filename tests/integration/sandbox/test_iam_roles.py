"""The instance roles the sandbox creates for its registered cluster (sandbox/iam_roles.py) are those ParallelCluster's
own CDK code writes into the cluster template for the same config: synthesized here with the installed
aws-parallelcluster and compared, role by role and policy by policy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

# sandbox/iam_identities.py, sandbox/iam_roles.py, sandbox/moto_cluster.py
import iam_identities
import iam_roles
import moto_cluster

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")

# Run in a process of its own: pcluster's CDK code (jsii, Node.js) takes seconds to import and keeps a Node.js child.
SYNTHESIZE = r"""
import json, os, sys, tempfile
from pcluster.models.s3_bucket import S3Bucket
from pcluster.schemas.cluster_schema import ClusterSchema
from pcluster.utils import load_yaml_dict
from aws_cdk.core import App
from pcluster.templates.cluster_stack import ClusterCdkStack

name, config_path, bucket, artifact_dir = sys.argv[1:5]
config = ClusterSchema(cluster_name=name).load(load_yaml_dict(config_path))
s3 = S3Bucket(service_name=name, stack_name=name, artifact_directory=artifact_dir, name=bucket)
with tempfile.TemporaryDirectory() as out:
    app = App(outdir=out)
    ClusterCdkStack(app, name, name, config, s3, None)
    app.synth()
    resources = {}
    for file in os.listdir(out):
        if file.endswith(".template.json"):
            for logical_id, resource in json.load(open(os.path.join(out, file)))["Resources"].items():
                if resource["Type"].startswith("AWS::IAM::"):
                    resources[logical_id] = resource
print("IAM-RESOURCES " + json.dumps(resources))
"""


def resolve(value, refs):
    """The template's intrinsics (Fn::Join, Ref) resolved with refs."""
    if isinstance(value, dict):
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(resolve(part, refs) for part in parts)
        if "Ref" in value:
            return refs[value["Ref"]]
        return {key: resolve(item, refs) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, refs) for item in value]
    return value


def as_set(value):
    return sorted(value) if isinstance(value, list) else [value]


def normalized(document):
    """A policy document with its statements' lists sorted (CDK keeps the order, IAM does not care)."""
    statements = []
    for statement in document["Statement"]:
        statements.append({key: (as_set(item) if key in ("Action", "Resource") else item)
                           for key, item in statement.items()})
    return sorted(statements, key=lambda s: s.get("Sid", ""))


@pytest.fixture(scope="module", name="template_iam")
def template_iam_fixture(sandbox):
    """{logical id: resource} of every IAM resource of the template pcluster 3.16.1 synthesizes for the registered
    config (signed as the sandbox's admin: pcluster looks up the AMI, subnets and instance types)."""
    reg = sandbox.state["registration"]
    env = dict(sandbox.env, **iam_identities.environment(iam_identities.ADMIN_CREDENTIALS))
    proc = subprocess.run([sys.executable, "-c", SYNTHESIZE, sandbox.cluster_name, sandbox.state["cluster_config_path"],
                           reg["bucket"], reg["artifact_dir"]], capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("IAM-RESOURCES ")), None)
    assert line, "pcluster's CDK did not synthesize the template:\n%s\n%s" % (proc.stdout[-3000:], proc.stderr[-3000:])
    return json.loads(line.split(" ", 1)[1])


def test_the_node_roles_are_those_of_parallelclusters_template(sandbox, template_iam):
    cluster, region = sandbox.cluster_name, sandbox.region
    refs = {"AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": iam_identities.ACCOUNT_ID,
            "AWS::URLSuffix": "amazonaws.com", "AWS::StackId": sandbox.state["registration"]["stack_id"]}
    iam = moto_cluster.client("iam", sandbox.endpoint_url, region)
    roles = sandbox.state["iam"]["node_roles"]
    assert sorted(roles) == ["HeadNode", sandbox.state["queue"]]
    for group, created in roles.items():
        suffix = "HeadNode" if group == "HeadNode" else iam_roles.queue_hash(group)
        refs.update({"Role" + suffix: created["role_name"], "InstanceProfile" + suffix: created["instance_profile_name"]})
        expected = resolve(template_iam["Role" + suffix]["Properties"], refs)
        role = iam.get_role(RoleName=created["role_name"])["Role"]
        assert role["Path"] == expected["Path"] == "/parallelcluster/%s/" % cluster
        assert role["AssumeRolePolicyDocument"] == expected["AssumeRolePolicyDocument"]
        attached = iam.list_attached_role_policies(RoleName=created["role_name"])["AttachedPolicies"]
        assert sorted(p["PolicyArn"] for p in attached) == sorted(expected["ManagedPolicyArns"])
        inline = {name: iam.get_role_policy(RoleName=created["role_name"], PolicyName=name)["PolicyDocument"]
                  for name in iam.list_role_policies(RoleName=created["role_name"])["PolicyNames"]}
        wanted = {}
        for logical_id, resource in template_iam.items():
            properties = resource["Properties"]
            if resource["Type"] == "AWS::IAM::Policy" and {"Ref": "Role" + suffix} in properties["Roles"]:
                if logical_id == "ParallelClusterSlurmRoute53Policies":
                    continue  # the registered cluster has no hosted zone (sandbox/README.md)
                wanted[properties["PolicyName"]] = resolve(properties["PolicyDocument"], refs)
        assert sorted(inline) == sorted(wanted)
        for name, document in wanted.items():
            assert normalized(inline[name]) == normalized(document), name
        profile = iam.get_instance_profile(InstanceProfileName=created["instance_profile_name"])["InstanceProfile"]
        assert profile["Path"] == resolve(template_iam["InstanceProfile" + suffix]["Properties"], refs)["Path"]
        assert [r["RoleName"] for r in profile["Roles"]] == [created["role_name"]]


def test_the_clusters_instances_carry_their_nodes_instance_profiles(sandbox):
    ec2 = moto_cluster.client("ec2", sandbox.endpoint_url, sandbox.region)
    reg = sandbox.state["registration"]
    roles = sandbox.state["iam"]["node_roles"]
    # The compute instances clustermgtd launched from the queue's launch template (the hypervisor's records).
    computes = [i for i, r in json.loads((sandbox.state_dir / "nodes.json").read_text()).items()
                if r.get("node_type") != "HeadNode"]
    assert len(computes) == len(sandbox.compute_nodes)
    described = {i["InstanceId"]: i for r in ec2.describe_instances(
        InstanceIds=[reg["head_instance_id"], *computes])["Reservations"] for i in r["Instances"]}
    assert described[reg["head_instance_id"]]["IamInstanceProfile"]["Arn"] == roles["HeadNode"]["instance_profile_arn"]
    for instance_id in computes:
        assert described[instance_id]["IamInstanceProfile"]["Arn"] == (
            roles[sandbox.state["queue"]]["instance_profile_arn"])
    assert re.fullmatch(r"%s-RoleHeadNode-[A-Z2-7]{13}" % sandbox.cluster_name, roles["HeadNode"]["role_name"])
