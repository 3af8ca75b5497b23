"""hpc.pcluster.image and image_info with the real pcluster.lib against a private moto server.

pcluster's build-image runs for real up to its build stack (the Image Builder template synthesized with the AWS CDK,
the config and template uploaded to its bucket, the stack created; moto completes it at once with placeholder
resources). What Image Builder and ParallelCluster's cleanup function then do on AWS - the AMI registered and tagged
available, the stack deleted - sandbox/moto_image.finish_build does.
"""

from __future__ import annotations

import copy
import json

import boto3
import moto_cluster  # sandbox/ (pytest's pythonpath)
import moto_image
import pytest

from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster import fake_pcluster
from ansible_collections.hpc.pcluster.tests.unit.plugins.inventory import pcluster_moto

REGION = "us-east-1"
NAME = "nodes-image-0123456789ab"


def start_moto(tmp_path):
    """A moto server that knows ParallelCluster's ubuntu2204 AMI, with pcluster's bucket set up as the sandbox does
    (pcluster's own set-up adds a policy refusing plain http, which moto enforces)."""
    amis = tmp_path / "amis.json"
    amis.write_text(json.dumps([moto_cluster.official_ami_record()]))
    server = pcluster_moto.MotoServer(env={"MOTO_AMIS_PATH": str(amis), "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"})
    server.__enter__()
    s3 = moto_cluster.client("s3", server.endpoint_url, REGION)
    moto_cluster._ensure_pcluster_bucket(s3, REGION)  # pylint: disable=protected-access
    s3.create_bucket(Bucket="ml-bootstrap")
    return server


def config(instance_type="c5.xlarge"):
    return {"Build": {"InstanceType": instance_type, "ParentImage": moto_cluster.OFFICIAL_AMI_ID,
                      "Components": [{"Type": "script", "Value": "s3://ml-bootstrap/hpc-pcluster-node-bake.sh"}]}}


@pytest.fixture(name="aws_env")
def aws_env_fixture(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(name="moto", scope="module")
def moto_fixture(tmp_path_factory):
    server = start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.__exit__(None, None, None)


def run(module, endpoint_url, args, **kwargs):
    return fake_pcluster.run_module(fake_pcluster.plugin("modules." + module), dict(
        {"region": REGION, "endpoint_url": endpoint_url}, **args), **kwargs)


def iam_client(endpoint_url):
    return boto3.client("iam", endpoint_url=endpoint_url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def cleanup_roles(endpoint_url):
    return [r["RoleName"] for r in iam_client(endpoint_url).list_roles()["Roles"]
            if r["RoleName"].startswith("PClusterBuildImageCleanupRole")]


def remove_cleanup_roles(endpoint_url):
    """The account as it is before its first build: no build-image cleanup role."""
    iam = iam_client(endpoint_url)
    for name in cleanup_roles(endpoint_url):
        for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        iam.delete_role(RoleName=name)


def test_check_mode_in_a_fresh_account_creates_no_role(aws_env, moto):
    """pcluster's build-image dryrun would create the account's cleanup role: check mode must not run it there."""
    remove_cleanup_roles(moto.endpoint_url)

    result = run("image", moto.endpoint_url, {"name": NAME, "config": config()}, check_mode=True)

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True and result["msg"] == "image %s would be built" % NAME
    assert result["dryrun"].startswith("skipped: it creates the account's build-image cleanup role")
    assert cleanup_roles(moto.endpoint_url) == []
    assert run("image_info", moto.endpoint_url, {"name": NAME})["exists"] is False


def test_build_find_compare_and_delete_with_the_real_pcluster(aws_env, moto):
    endpoint = moto.endpoint_url

    started = run("image", endpoint, {"name": NAME, "config": config(), "wait": False})

    assert not started.get("failed"), started["msg"]
    assert started["changed"] is True and started["actions"] == ["build image"]
    # moto completed the build stack; the AMI is what Image Builder and pcluster's cleanup function add.
    assert started["status"] == "BUILD_COMPLETE" and started["stack_status"] == "CREATE_COMPLETE"
    assert started["ami_id"] is None
    assert cleanup_roles(endpoint)  # the real build set the account's role up, as on AWS
    ami = moto_image.finish_build(endpoint, REGION, NAME, "ubuntu2204")

    again = run("image", endpoint, {"name": NAME, "config": copy.deepcopy(config())})

    assert not again.get("failed"), again["msg"]
    assert again["changed"] is False and again["ami_id"] == ami and again["status"] == "BUILD_COMPLETE"
    info = run("image_info", endpoint, {"name": NAME, "stored_config": True})
    assert info["ami_id"] == ami and info["stored_config"] == config()
    listed = run("image_info", endpoint, {})["images"]
    assert [(i["imageId"], i["ec2AmiInfo"]["amiId"]) for i in listed] == [(NAME, ami)]

    other = run("image", endpoint, {"name": NAME, "config": config("c5.2xlarge")})

    assert other["failed"] is True and "Build.InstanceType: c5.xlarge -> c5.2xlarge" in other["msg"]
    planned = run("image", endpoint, {"name": NAME + "-new", "config": config()}, check_mode=True)
    assert planned["dryrun"] == "ParallelCluster's dryrun passed"  # the role is set up: the dryrun writes nothing

    gone = run("image", endpoint, {"name": NAME, "state": "absent"})

    assert not gone.get("failed"), gone["msg"]
    assert gone["changed"] is True and gone["exists"] is False
    ec2 = moto_cluster.client("ec2", endpoint, REGION)
    assert ec2.describe_images(Owners=["self"])["Images"] == []
    assert run("image", endpoint, {"name": NAME, "state": "absent"})["changed"] is False


def test_image_info_lists_parallelclusters_own_ami(aws_env, moto):
    result = run("image_info", moto.endpoint_url, {"official": True, "os": "ubuntu2204", "architecture": "x86_64"})

    assert [(i["amiId"], i["os"], i["architecture"]) for i in result["images"]] == [
        (moto_cluster.OFFICIAL_AMI_ID, "ubuntu2204", "x86_64")]
    assert run("image_info", moto.endpoint_url, {"official": True, "os": "rocky9"})["images"] == []
