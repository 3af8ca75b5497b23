"""hpc.pcluster.image run in-process against recorded pcluster response shapes on a fake clock."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster import fake_pcluster

NAME = "ml-training-cluster-nodes-3f2a9c01b7de"
CONFIG = {
    "Build": {
        "InstanceType": "c5.2xlarge",
        "ParentImage": "ami-0a9c3a1e5c16f0b01",
        "SubnetId": "subnet-0123456789abcdef0",
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Components": [{"Type": "script", "Value": "s3://ml-bootstrap/hpc-pcluster-node-bake-0123456789abcdef.sh"}],
    },
    "Image": {"Name": NAME},
}


class FakeAccount:
    """sts and iam for dryrun_account_writes: the build-image cleanup role as the test sets it."""

    def __init__(self, fake, role=None):
        self.fake = fake
        self.role = role  # None: absent; else the tags as {key: value}

    def client(self, service, _settings):
        return self if service in ("sts", "iam") else None

    def get_caller_identity(self):
        self.fake._call("sts.get_caller_identity", {})  # pylint: disable=protected-access
        return {"Account": "123456789012"}

    def get_role(self, RoleName):  # noqa: N803  pylint: disable=invalid-name
        self.fake._call("iam.get_role", {"RoleName": RoleName})  # pylint: disable=protected-access
        if self.role is None:
            from botocore.exceptions import ClientError  # pylint: disable=import-outside-toplevel

            raise ClientError({"Error": {"Code": "NoSuchEntity", "Message": "Role %s not found" % RoleName}}, "GetRole")
        return {"Role": {"RoleName": RoleName, "Tags": [{"Key": k, "Value": v} for k, v in self.role.items()]}}


@pytest.fixture(name="fake")
def fake_fixture(monkeypatch):
    fake = fake_pcluster.install(monkeypatch)
    lifecycle = fake_pcluster.plugin("module_utils.image.lifecycle")
    account = FakeAccount(fake, role={"parallelcluster:build-image-cleanup-role-bootstrapped": "true"})
    monkeypatch.setattr(lifecycle, "boto3_client", account.client)
    fake.account = account
    return fake


def run(args, **kwargs):
    return fake_pcluster.run_module(fake_pcluster.plugin("modules.image"), dict(
        {"name": NAME, "region": "us-east-1", "endpoint_url": fake_pcluster.stored_endpoint()}, **args), **kwargs)


def built(fake, config=None, describe="describe_image_available_moto"):
    """An image built from ``config`` (CONFIG), its AMI available."""
    return fake.add_image(NAME, fake_pcluster.load(describe),
                          stored_config_url=fake_pcluster.stored_config_url(config=config or CONFIG))


def writes(fake):
    return [(op, kw.get("dryrun")) for op, kw in fake.calls if op in ("build_image", "delete_image")]


# --------------------------------------------------------------------------- build


def test_a_build_waits_through_image_builder_until_the_ami_is_available(fake, tmp_path):
    progress = tmp_path / "progress"

    result = run({"config": CONFIG, "progress_file": str(progress)})

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True and result["actions"] == ["build image"]
    assert result["status"] == "BUILD_COMPLETE" and result["ami_id"] == "ami-0f9e8d7c6b5a43210"
    assert result["stack_status"] is None  # ParallelCluster's cleanup function deleted the build stack
    assert writes(fake) == [("build_image", None)]
    build = [kw for op, kw in fake.calls if op == "build_image"][0]
    assert build["image_configuration"] == CONFIG and build["rollback_on_failure"] is False
    assert result["waited"] >= 3150
    lines = progress.read_text().splitlines()
    assert lines[0] == "[%s] build image" % NAME
    assert any("BUILD_IN_PROGRESS (stack CREATE_IN_PROGRESS, Image Builder BUILDING)" in line for line in lines)
    assert any("/14 resources complete" in line for line in lines)
    # The stack completes before the AMI is tagged: that is not the end of the wait.
    assert any("BUILD_COMPLETE (stack CREATE_COMPLETE, Image Builder AVAILABLE, AMI not tagged available yet)" in line
               for line in lines)
    assert lines[-1].startswith("[%s] BUILD_COMPLETE (AMI ami-0f9e8d7c6b5a43210)" % NAME) and lines[-1].endswith(", done")
    # A line at least every 55 s of the 52-minute build, with polls far fewer than every 5 s.
    assert len(lines) >= 3150 / 55
    assert fake.count("describe_image") < 3150 / 5 / 4


def test_a_failed_build_is_explained_from_image_builder_the_stack_and_the_build_log(fake):
    fake.build_scenario = "build_image_failed_timeline"

    result = run({"config": CONFIG})

    assert result["failed"] is True and result["changed"] is True
    message = result["msg"]
    assert message.startswith("The build of image %s failed.\n" % NAME)
    assert "is BUILD_FAILED (CloudFormation stack CREATE_FAILED, Image Builder FAILED) in us-east-1" in message
    assert "component/parallelclusterimage-script-0-" in message
    assert "What to check: Build.Components[0] (a script) exited non-zero on the build instance" in message
    failure = result["failure"]
    assert failure["failed_events"][0]["logical_resource_id"] == "ParallelClusterImage"
    assert "HandlerErrorCode: GeneralServiceException" in failure["failed_events"][0]["resource_status_reason"]
    assert failure["log_streams"] == ["3.16.1/1"]
    assert "Stdout: ERROR - Script execution failure. Exit code != 0" in failure["build_log"]
    assert any("No package matching 'docker-ce" in line for line in failure["build_log"])
    assert "pcluster get-image-log-events --image-id %s --region us-east-1 --log-stream-name 3.16.1/1" % NAME in message
    assert failure["log_group"] == "/aws/imagebuilder/ParallelClusterImage-%s" % NAME
    assert "replace: true" in message


def test_wait_false_starts_the_build_and_returns(fake):
    result = run({"config": CONFIG, "wait": False})

    assert result["changed"] is True and result["status"] == "BUILD_IN_PROGRESS" and result["ami_id"] is None
    assert fake.clock.sleeps == []


def test_a_timeout_says_where_the_build_got(fake):
    result = run({"config": CONFIG, "wait_timeout": 900})

    assert result["failed"] is True
    assert result["msg"].startswith("Timed out after 15m00s waiting for image %s to be built: it is BUILD_IN_PROGRESS "
                                    "(stack CREATE_IN_PROGRESS, Image Builder BUILDING)" % NAME)
    assert "/14 resources complete" in result["msg"] and "run the task again to keep waiting" in result["msg"]


def test_a_build_request_whose_answer_was_lost_is_not_sent_again(fake):
    error = fake_pcluster.recorded_error(fake_pcluster.load("connect_timeout"))
    fake.raise_after["build_image"] = [error]

    result = run({"config": CONFIG})

    assert not result.get("failed"), result["msg"]
    assert writes(fake) == [("build_image", None)]
    assert any("went through" in w for w in result["warnings"])


# --------------------------------------------------------------------------- an image of that name exists


def test_the_same_image_is_not_built_again(fake):
    built(fake)

    result = run({"config": copy.deepcopy(CONFIG)}, diff=True)

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is False and writes(fake) == []
    assert result["msg"] == "image %s already has the desired configuration" % NAME
    assert result["ami_id"] == "ami-97072f37f2f87fb29"
    assert "diff" not in result
    # The presigned URL of the stored config never reaches the result.
    assert "url" not in result["image"]["imageConfiguration"] and "Signature" not in str(result)


def test_another_configuration_under_the_same_name_fails_and_says_what_differs(fake):
    built(fake)
    desired = copy.deepcopy(CONFIG)
    desired["Build"]["InstanceType"] = "c5.4xlarge"

    result = run({"config": desired}, diff=True)

    assert result["failed"] is True and writes(fake) == []
    assert "Build.InstanceType: c5.2xlarge -> c5.4xlarge" in result["msg"]
    assert "replace: true" in result["msg"] and "another name" in result["msg"]
    assert result["config_changes"] == ["Build.InstanceType: c5.2xlarge -> c5.4xlarge"]


def test_replace_deletes_the_other_image_and_builds_again(fake):
    built(fake)
    desired = copy.deepcopy(CONFIG)
    desired["Build"]["InstanceType"] = "c5.4xlarge"

    result = run({"config": desired, "replace": True})

    assert not result.get("failed"), result["msg"]
    assert writes(fake) == [("delete_image", None), ("build_image", None)]
    assert result["actions"] == ["delete image", "build image"]
    assert result["status"] == "BUILD_COMPLETE" and result["ami_id"] == "ami-0f9e8d7c6b5a43210"
    assert any("deleted and built again" in w for w in result["warnings"])


def test_a_failed_image_is_reported_and_not_built_again(fake):
    fake.add_image_timeline(NAME, "build_image_failed_timeline", start=-2000)

    result = run({"config": CONFIG})

    assert result["failed"] is True and writes(fake) == []
    assert result["msg"].startswith("Image %s cannot be used.\n" % NAME)
    assert "Build.Components[0] (a script) exited non-zero" in result["msg"]


def test_a_build_under_way_is_waited_for_then_compared(fake):
    fake.add_image_timeline(NAME, "build_image_complete_timeline", start=-600,
                            stored_config_url=fake_pcluster.stored_config_url(config=CONFIG))

    result = run({"config": CONFIG})

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is False and writes(fake) == []
    assert result["actions"] == ["wait for BUILD_IN_PROGRESS"] and result["ami_id"] == "ami-0f9e8d7c6b5a43210"


def test_an_unreadable_stored_config_takes_the_image_by_its_name(fake):
    fake.add_image(NAME, fake_pcluster.load("describe_image_available_moto"))  # its URL points at a moto long gone

    result = run({"config": CONFIG})

    assert not result.get("failed") and result["changed"] is False
    assert "could not download the stored config" in result["stored_config_error"]
    assert any("cannot be read" in w for w in result["warnings"])


# --------------------------------------------------------------------------- check mode


def test_check_mode_runs_the_dryrun_when_it_changes_nothing_in_the_account(fake):
    result = run({"config": CONFIG}, check_mode=True, diff=True)

    assert result["changed"] is True and result["actions"] == ["dryrun build image", "build image"]
    assert writes(fake) == [("build_image", True)]
    assert result["dryrun"] == "ParallelCluster's dryrun passed"
    assert result["diff"]["before"] == "" and "c5.2xlarge" in result["diff"]["after"]


def test_check_mode_skips_the_dryrun_that_would_create_the_cleanup_role(fake):
    fake.account.role = None

    result = run({"config": CONFIG}, check_mode=True)

    assert result["changed"] is True and not result.get("failed")
    assert writes(fake) == []
    assert result["dryrun"].startswith("skipped: it creates the account's build-image cleanup role PClusterBuildImageCleanupRole-")
    assert any("did not run ParallelCluster's build-image dryrun" in w for w in result["warnings"])


def test_check_mode_without_the_dryrun_still_checks_the_config_offline(fake):
    fake.account.role = None
    desired = copy.deepcopy(CONFIG)
    desired["Build"]["ParentImage"] = "ubuntu2204"
    desired["Build"]["Components"][0]["Value"] = "http://example.com/bake.sh"

    result = run({"config": desired}, check_mode=True)

    assert result["failed"] is True and writes(fake) == []
    assert "has 2 problems" in result["msg"]
    assert "Build.ParentImage: 'ubuntu2204' is not an AMI id" in result["msg"]
    assert "Build.Components[0].Value" in result["msg"]


def test_check_mode_with_a_cleanup_role_of_its_own_runs_the_dryrun(fake):
    fake.account.role = None
    desired = copy.deepcopy(CONFIG)
    desired["Build"]["Iam"] = {"CleanupLambdaRole": "arn:aws:iam::123456789012:role/my-cleanup"}

    result = run({"config": desired}, check_mode=True)

    assert writes(fake) == [("build_image", True)] and fake.count("iam.get_role") == 0


def test_check_mode_reports_a_dryrun_refusal(fake):
    fake.build_dryrun = fake_pcluster.load("build_image_bad_config")

    result = run({"config": CONFIG}, check_mode=True)

    assert result["failed"] is True
    assert result["msg"].startswith("ParallelCluster would refuse to build image %s: Invalid image configuration." % NAME)
    assert "ImageSchemaValidator" in result["msg"]


# --------------------------------------------------------------------------- absent


def test_absent_deletes_and_waits_until_the_image_is_gone(fake):
    built(fake)

    result = run({"state": "absent"})

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True and result["exists"] is False
    assert writes(fake) == [("delete_image", None)]
    assert [kw["force"] for op, kw in fake.calls if op == "delete_image"] == [False]


def test_absent_of_a_missing_image_changes_nothing(fake):
    result = run({"state": "absent"})

    assert result["changed"] is False and result["msg"] == "image %s does not exist" % NAME


def test_check_mode_absent_deletes_nothing(fake):
    built(fake)

    result = run({"state": "absent"}, check_mode=True)

    assert result["changed"] is True and writes(fake) == [] and result["msg"] == "image %s would be deleted" % NAME


def test_absent_refused_while_instances_use_the_ami_says_so(fake):
    built(fake)
    fake.raise_before["delete_image"] = [fake_pcluster.recorded_error(fake_pcluster.load("delete_image_in_use"))]

    result = run({"state": "absent"})

    assert result["failed"] is True
    assert "Image %s (state=absent): Bad Request: Unable to delete image and stack" % NAME in result["msg"]
    assert "is used by instances" in result["msg"]


def test_a_bad_image_id_is_refused_before_any_call(fake):
    result = run({"name": "1st_image", "config": CONFIG})

    assert result["failed"] is True and "must start with a letter" in result["msg"] and fake.calls == []
