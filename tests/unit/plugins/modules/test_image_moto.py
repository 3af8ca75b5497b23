"""hpc.pcluster.image and image_info with the real pcluster.lib against the sandbox's moto server.

pcluster's build-image runs for real: its Image Builder template synthesized with the AWS CDK, the config and the
template uploaded to its bucket, the stack created and run by the sandbox's CloudFormation (moto_cfn), whose image
resource the sandbox's image builder (sandbox/image_builder.py) builds - here on a ScriptHost, which runs the
component scripts in a directory of this machine - and fails or completes, AMI and build log included.
"""

from __future__ import annotations

import copy
import threading

import boto3
import image_builder  # sandbox/ (pytest's pythonpath)
import moto_cluster
import pytest

from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster import fake_pcluster

REGION = "us-east-1"
NAME = "nodes-image-0123456789ab"
BUCKET = "ml-bootstrap"
SCRIPTS = {"bake.sh": b"#!/bin/bash\necho baking the node setup\n", "broken.sh": b"#!/bin/bash\necho cannot >&2\nexit 3\n"}


@pytest.fixture(name="aws_env")
def aws_env_fixture(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(name="moto", scope="module")
def moto_fixture(tmp_path_factory):
    """The sandbox's moto server with an image builder answering its builds (until the module's tests end)."""
    work = tmp_path_factory.mktemp("moto")
    builds = work / "image-builds"
    proc, url = moto_cluster.start_moto_server(work, env={"SANDBOX_IMAGE_BUILDS": str(builds),
                                                          "SANDBOX_CFN_DELETE_START_SECONDS": "0.2"})
    done = threading.Event()
    try:
        moto_cluster.prepare_account(url, REGION, work)
        s3 = moto_cluster.client("s3", url, REGION)
        s3.create_bucket(Bucket=BUCKET)
        for key, body in SCRIPTS.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        builds.mkdir()
        builder = image_builder.ImageBuilder(url, REGION, builds)
        threading.Thread(target=builder.run, args=(lambda: not done.is_set(),), daemon=True).start()
        yield url
    finally:
        done.set()
        moto_cluster.stop_moto_server(proc)


def config(instance_type="c5.xlarge", script="bake.sh"):
    return {"Build": {"InstanceType": instance_type, "ParentImage": moto_cluster.OFFICIAL_AMI_ID,
                      "Components": [{"Type": "script", "Value": "s3://%s/%s" % (BUCKET, script)}]}}


def run(module, endpoint_url, args, **kwargs):
    return fake_pcluster.run_module(fake_pcluster.plugin("modules." + module), dict(
        {"region": REGION, "endpoint_url": endpoint_url}, **args), **kwargs)


def iam_client(endpoint_url):
    return boto3.client("iam", endpoint_url=endpoint_url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def cleanup_roles(endpoint_url):
    return [r["RoleName"] for r in iam_client(endpoint_url).list_roles()["Roles"]
            if r["RoleName"].startswith("PClusterBuildImageCleanupRole")]


def test_check_mode_in_a_fresh_account_creates_no_role(aws_env, moto):
    """pcluster's build-image dryrun would create the account's cleanup role: check mode must not run it there."""
    assert cleanup_roles(moto) == []  # the first test of the module: no build has run in this account

    result = run("image", moto, {"name": NAME, "config": config()}, check_mode=True)

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True and result["msg"] == "image %s would be built" % NAME
    assert result["dryrun"].startswith("skipped: it creates the account's build-image cleanup role")
    assert cleanup_roles(moto) == []
    assert run("image_info", moto, {"name": NAME})["exists"] is False


def test_build_find_compare_and_delete_with_the_real_pcluster(aws_env, moto):
    built = run("image", moto, {"name": NAME, "config": config()})

    assert not built.get("failed"), built["msg"]
    assert built["changed"] is True and built["actions"] == ["build image"]
    assert built["status"] == "BUILD_COMPLETE" and built["ami_id"].startswith("ami-")
    assert built["stack_status"] is None  # the cleanup function deleted the build stack, as on AWS
    # The AMI has the parent's architecture, which pcluster's InstanceTypeBaseAMICompatibleValidator checks.
    ami = moto_cluster.client("ec2", moto, REGION).describe_images(ImageIds=[built["ami_id"]])["Images"][0]
    assert ami["Architecture"] == "x86_64" and ami["RootDeviceName"], ami
    assert cleanup_roles(moto)  # the real build set the account's role up, as on AWS
    info = run("image_info", moto, {"name": NAME, "stored_config": True})
    assert info["ami_id"] == built["ami_id"] and info["stored_config"] == config()
    assert info["ami_name"].startswith(NAME + " ")
    tags = {t["key"]: t["value"] for t in info["image"]["ec2AmiInfo"]["tags"]}
    assert tags["parallelcluster:os"] == "ubuntu2204" and tags["parallelcluster:build_status"] == "available"
    log = boto3.client("logs", endpoint_url=moto, region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t")
    events = log.get_log_events(logGroupName="/aws/imagebuilder/ParallelClusterImage-%s" % NAME,
                                logStreamName="3.16.1/1")["events"]
    assert "Stdout: baking the node setup" in [e["message"] for e in events]

    again = run("image", moto, {"name": NAME, "config": copy.deepcopy(config())})
    other = run("image", moto, {"name": NAME, "config": config("c5.2xlarge")})
    planned = run("image", moto, {"name": NAME + "-new", "config": config()}, check_mode=True)

    assert again["changed"] is False and again["ami_id"] == built["ami_id"]
    assert other["failed"] is True and "Build.InstanceType: c5.xlarge -> c5.2xlarge" in other["msg"]
    assert planned["dryrun"] == "ParallelCluster's dryrun passed"  # the role is set up: the dryrun writes nothing

    gone = run("image", moto, {"name": NAME, "state": "absent"})

    assert not gone.get("failed"), gone["msg"]
    assert gone["changed"] is True and gone["exists"] is False
    assert moto_cluster.client("ec2", moto, REGION).describe_images(Owners=["self"])["Images"] == []
    assert run("image", moto, {"name": NAME, "state": "absent"})["changed"] is False


def test_a_failed_component_is_explained_from_the_stack_and_the_build_log(aws_env, moto):
    failed = run("image", moto, {"name": NAME + "-broken", "config": config(script="broken.sh")})

    assert failed["failed"] is True and failed["status"] == "BUILD_FAILED" and failed["stack_status"] == "CREATE_FAILED"
    report = failed["failure"]
    assert report["failed_events"][0]["logical_resource_id"] == "ParallelClusterImage"
    assert "component/parallelclusterimage-script-0-" in report["failed_events"][0]["resource_status_reason"]
    assert report["hint"].startswith("Build.Components[0] (a script) exited non-zero on the build instance")
    assert "Stderr: cannot" in report["build_log"] and "ERROR - Script execution failure. Exit code != 0" in report["build_log"]
    assert "ExitCode 3" in report["build_log"]
    assert "pcluster get-image-log-events --image-id %s-broken" % NAME in failed["msg"]

    gone = run("image", moto, {"name": NAME + "-broken", "state": "absent"})

    assert not gone.get("failed"), gone["msg"]
    assert gone["exists"] is False


def test_image_info_lists_parallelclusters_own_ami(aws_env, moto):
    result = run("image_info", moto, {"official": True, "os": "ubuntu2204", "architecture": "x86_64"})

    assert [(i["amiId"], i["os"], i["architecture"]) for i in result["images"]] == [
        (moto_cluster.OFFICIAL_AMI_ID, "ubuntu2204", "x86_64")]
    assert run("image_info", moto, {"official": True, "os": "rocky9"})["images"] == []
