"""hpc.pcluster.config_validate run in-process (offline check; the checks against AWS with stand-ins)."""

from __future__ import annotations

import json

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster import errors as pcluster_errors
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.client import PclusterApi
from ansible_collections.hpc.pcluster.plugins.modules import config_validate
from ansible_collections.hpc.pcluster.tests.unit.fixtures.guide.guide import GUIDE_ENV, guide_text, valid_guide_config as valid_config
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import install, load


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch):
    """The module exports region/endpoint settings to os.environ; keep each test's environment its own."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


def run(capsys, **args):
    """Run the module; returns (failed, result)."""
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            config_validate.main()
    result = json.loads(capsys.readouterr().out)
    return exit_info.value.code != 0, result


def test_guide_config_file_fails_with_the_fsx_path(capsys, tmp_path):
    path = tmp_path / "cluster-config.yaml"
    path.write_text(guide_text())
    failed, result = run(capsys, config_file=str(path), name="ml-training-cluster")
    assert failed and result["changed"] is False and result["valid"] is False
    assert [e["path"] for e in result["errors"]] == ["SharedStorage[1].FsxLustreSettings.DeploymentType"]
    assert result["errors"][0]["value"] == "PERSISTENT_1"
    assert result["schema_checked"] is True and result["full_checked"] is False
    assert "SharedStorage[1].FsxLustreSettings.DeploymentType" in result["msg"]


def test_valid_config_dict(capsys):
    failed, result = run(capsys, config=valid_config(), name="ml-training-cluster")
    assert not failed
    assert result == {**result, "changed": False, "valid": True, "errors": []}
    assert result["validation_messages"] == {"ERROR": [], "WARNING": [], "INFO": []}
    assert "valid" in result["msg"]


def test_fail_on_invalid_false_reports_without_failing(capsys):
    config = valid_config()
    config["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MinCount"] = 5
    config["Scheduling"]["SlurmSettings"]["CustomSlurmSettings"].append({"TaskPlugin": "task/none"})
    # cluster_name: the alias of name, as in the cluster module.
    failed, result = run(capsys, config=config, cluster_name="bad_name", fail_on_invalid=False)
    assert not failed and result["valid"] is False
    assert sorted(e["path"] for e in result["errors"]) == [
        "Scheduling.SlurmQueues[0].ComputeResources[0].MinCount",
        "Scheduling.SlurmSettings.CustomSlurmSettings[4].TaskPlugin",
        "cluster_name",
    ]
    assert all(set(e) == {"path", "value", "message", "fix"} for e in result["errors"])


def test_config_and_config_file_are_mutually_exclusive(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(guide_text())
    failed, result = run(capsys, config=valid_config(), config_file=str(path), name="c1")
    assert failed and "mutually exclusive" in result["msg"]


def test_unreadable_file_and_invalid_yaml(capsys, tmp_path):
    failed, result = run(capsys, config_file=str(tmp_path / "missing.yaml"), name="c1")
    assert failed and "Cannot read config_file" in result["msg"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("Region: [unclosed\n")
    failed, result = run(capsys, config_file=str(bad), name="c1")
    assert failed and "is not valid YAML" in result["errors"][0]["message"]


def test_check_mode_runs_the_same_checks(capsys):
    failed, result = run(capsys, config=yaml.safe_load(guide_text()), name="c1", _ansible_check_mode=True)
    assert failed and result["changed"] is False
    assert [e["path"] for e in result["errors"]] == ["SharedStorage[1].FsxLustreSettings.DeploymentType"]


class FakeEc2:
    """A boto3 EC2 client that knows some subnets and security groups."""

    def __init__(self, subnets=(), groups=()):
        self.known = {"describe_subnets": ("Subnets", "SubnetId", set(subnets)),
                      "describe_security_groups": ("SecurityGroups", "GroupId", set(groups))}
        self.calls = []

    def get_paginator(self, operation):
        key, label, known = self.known[operation]
        calls = self.calls

        class Paginator:
            def paginate(self, Filters):  # noqa: N803 - boto3's argument name
                calls.append((operation, Filters))
                yield {key: [{label: i} for i in Filters[0]["Values"] if i in known]}

        return Paginator()


KNOWN_EC2 = FakeEc2(subnets=[GUIDE_ENV["PUBLIC_SUBNET_ID"], GUIDE_ENV["PRIVATE_SUBNET_ID"]],
                    groups=[GUIDE_ENV["SECURITY_GROUP_ID"]])


@pytest.fixture()
def ec2(monkeypatch):
    monkeypatch.setattr(config_validate, "boto3_client", lambda service, settings: KNOWN_EC2)
    return KNOWN_EC2


class FakeApi:
    """Stands in for config_validate.run_dryrun (a real dryrun runs in tests/integration/cluster_config)."""

    def __init__(self, result=None, error=None):
        self.result, self.error, self.calls = result, error, []

    def __call__(self, api, cluster_name, config, suppress_validators, validation_failure_level):
        self.calls.append(dict(cluster_name=cluster_name, config=config, region=api.region,
                               suppress_validators=suppress_validators,
                               validation_failure_level=validation_failure_level))
        if self.error:
            raise self.error
        return self.result


def dryrun_result(success, messages):
    return {"success": success, "message": "Request would have succeeded, but DryRun flag is set." if success
            else "Invalid cluster configuration.", "validation_messages": pcluster_errors.group_validation_messages(messages),
            "change_set": [], "update_errors": [], "no_change": False, "error": None}


def test_full_passes_dryrun_messages_by_level(capsys, monkeypatch, ec2):
    fake = FakeApi(dryrun_result(True, [{"id": "w", "type": "KeyPairValidator", "level": "WARNING",
                                         "message": "no key pair"}]))
    monkeypatch.setattr(config_validate, "run_dryrun", fake)
    failed, result = run(capsys, config=valid_config(), name="c1", full=True,
                         suppress_validators=["type:HeadNodeLaunchTemplateValidator"], region="eu-west-1")
    assert not failed and result["valid"] and result["full_checked"]
    assert result["validation_messages"]["WARNING"][0]["type"] == "KeyPairValidator"
    assert fake.calls[0]["region"] == "eu-west-1"
    assert fake.calls[0]["suppress_validators"] == ["type:HeadNodeLaunchTemplateValidator"]
    assert fake.calls[0]["cluster_name"] == "c1"


@pytest.mark.parametrize("update, valid, message", [
    ("update_dryrun_no_change", True, "No changes found"),
    ("update_dryrun_success", True, "DryRun flag is set"),
    ("update_dryrun_needs_fleet_stop", True, "needs the compute fleet stopped"),
])
def test_the_dryrun_of_an_existing_cluster_is_its_updates(monkeypatch, update, valid, message):
    # pcluster refuses a create dryrun of an existing cluster ("already exists"): the update's dryrun checks the config.
    fake = install(monkeypatch)
    fake.add_cluster("ml-training-cluster", load("describe_cluster_complete"))
    fake.create_dryrun = load("create_already_exists")
    fake.update_dryruns = [load(update)]

    dry = config_validate.run_dryrun(PclusterApi(region="us-east-1"), "ml-training-cluster", valid_config(), None,
                                     "ERROR")

    assert (dry["operation"], dry["success"]) == ("update", valid) and message in dry["message"], dry
    assert [(op, kw["dryrun"]) for op, kw in fake.calls if op.endswith("_cluster")] == [
        ("create_cluster", True), ("update_cluster", True)]


def test_the_dryrun_of_a_new_cluster_is_its_creates(monkeypatch):
    fake = install(monkeypatch)
    fake.create_dryrun = load("create_dryrun_invalid")

    dry = config_validate.run_dryrun(PclusterApi(region="us-east-1"), "other-cluster", valid_config(), None, "ERROR")

    assert (dry["operation"], dry["success"]) == ("create", False)
    assert [m["type"] for m in dry["validation_messages"]["ERROR"]] == [
        "HeadNodeLaunchTemplateValidator", "ComputeResourceLaunchTemplateValidator"]
    assert [op for op, _kw in fake.calls if op.endswith("_cluster")] == ["create_cluster"]


def test_full_error_messages_become_errors(capsys, monkeypatch, ec2):
    fake = FakeApi(dryrun_result(False, [{"id": "e", "type": "SubnetsValidator", "level": "ERROR",
                                          "message": "The subnet 'subnet-0123456789abcdef0' does not exist."}]))
    monkeypatch.setattr(config_validate, "run_dryrun", fake)
    failed, result = run(capsys, config=valid_config(), name="c1", full=True)
    assert failed and not result["valid"]
    assert "[ERROR SubnetsValidator] The subnet 'subnet-0123456789abcdef0' does not exist." in result["errors"][0]["message"]
    assert "'type:SubnetsValidator' to cluster_config_suppress_validators" in result["errors"][0]["fix"]
    assert fake.calls[0]["region"] == "us-east-1"  # from the config's Region


def test_full_warning_level_makes_warnings_blocking(capsys, monkeypatch, ec2):
    monkeypatch.setattr(config_validate, "run_dryrun", FakeApi(dryrun_result(True, [
        {"id": "w", "type": "KeyPairValidator", "level": "WARNING", "message": "no key pair"}])))
    failed, result = run(capsys, config=valid_config(), name="c1", full=True, validation_failure_level="WARNING")
    assert failed and "KeyPairValidator" in result["errors"][0]["message"]


def test_full_names_an_rsa_key_pair_on_ubuntu_before_the_dryrun(capsys, monkeypatch):
    class RsaKeyEc2(FakeEc2):
        def describe_key_pairs(self, Filters):  # noqa: N803 - boto3's argument name
            return {"KeyPairs": [{"KeyName": Filters[0]["Values"][0], "KeyType": "rsa"}]}

    monkeypatch.setattr(config_validate, "boto3_client", lambda service, settings: RsaKeyEc2(
        subnets=[GUIDE_ENV["PUBLIC_SUBNET_ID"], GUIDE_ENV["PRIVATE_SUBNET_ID"]], groups=[GUIDE_ENV["SECURITY_GROUP_ID"]]))
    fake = FakeApi(dryrun_result(True, []))
    monkeypatch.setattr(config_validate, "run_dryrun", fake)
    config = valid_config()
    config["HeadNode"]["Ssh"] = {"KeyName": "my-rsa-key", "AllowedIps": "10.0.0.0/16"}
    failed, result = run(capsys, config=config, name="c1", full=True)
    assert failed and fake.calls == [] and result["full_checked"]
    assert [(e["path"], e["value"]) for e in result["errors"]] == [("HeadNode.Ssh.KeyName", "my-rsa-key")]
    assert "ParallelCluster refuses on ubuntu2204" in result["errors"][0]["message"]


def test_full_is_skipped_when_offline_check_fails(capsys, monkeypatch, ec2):
    fake = FakeApi(dryrun_result(True, []))
    monkeypatch.setattr(config_validate, "run_dryrun", fake)
    failed, result = run(capsys, config=yaml.safe_load(guide_text()), name="c1", full=True)
    assert failed and fake.calls == [] and result["full_checked"] is False


def test_full_reports_an_api_failure(capsys, monkeypatch, ec2):
    error = pcluster_errors.PclusterApiError("Could not connect to the endpoint URL", code=None, error_type="EndpointError")
    monkeypatch.setattr(config_validate, "run_dryrun", FakeApi(error=error))
    failed, result = run(capsys, config=valid_config(), name="c1", full=True)
    assert failed and "could not run" in result["msg"] and "Could not connect" in result["msg"]
    assert result["error"]["type"] == "EndpointError"


def test_full_names_every_missing_subnet_and_security_group_by_path(capsys, monkeypatch):
    monkeypatch.setattr(config_validate, "boto3_client",
                        lambda service, settings: FakeEc2(subnets=[GUIDE_ENV["PRIVATE_SUBNET_ID"]]))
    fake = FakeApi(dryrun_result(True, []))
    monkeypatch.setattr(config_validate, "run_dryrun", fake)
    failed, result = run(capsys, config=valid_config(), name="c1", full=True)
    assert failed and fake.calls == [] and result["full_checked"]
    assert [(e["path"], e["message"]) for e in result["errors"]] == [
        ("HeadNode.Networking.SubnetId", "The subnet subnet-0123456789abcdef0 does not exist in us-east-1"),
        ("HeadNode.Networking.AdditionalSecurityGroups[0]",
         "The security group sg-0123456789abcdef0 does not exist in us-east-1"),
        ("Scheduling.SlurmQueues[0].Networking.AdditionalSecurityGroups[0]",
         "The security group sg-0123456789abcdef0 does not exist in us-east-1"),
    ]


def test_full_rejection_without_messages_points_at_the_named_value(capsys, monkeypatch, ec2):
    result = dryrun_result(False, [])
    result["message"] = "Invalid cluster configuration: The following supplied instance types do not exist: [g5.nope]"
    monkeypatch.setattr(config_validate, "run_dryrun", FakeApi(result))
    config = valid_config()
    config["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["InstanceType"] = "g5.nope"
    failed, result = run(capsys, config=config, name="c1", full=True)
    assert failed
    assert [(e["path"], e["value"]) for e in result["errors"]] == [
        ("Scheduling.SlurmQueues[0].ComputeResources[0].InstanceType", "g5.nope")]
    assert "do not exist: [g5.nope]" in result["errors"][0]["message"]


def test_offline_false_runs_only_the_checks_against_aws(capsys, monkeypatch, ec2):
    """The role checked offline already: the module must not repeat the rules or the schema."""
    offline_runs = []
    monkeypatch.setattr(config_validate, "validate_config", lambda *a, **k: offline_runs.append(a) or ([], True, ""))
    fake = FakeApi(dryrun_result(True, []))
    monkeypatch.setattr(config_validate, "run_dryrun", fake)
    failed, result = run(capsys, config=valid_config(), name="c1", offline=False, full=True)
    assert not failed and result["valid"] and result["full_checked"]
    assert offline_runs == [] and len(fake.calls) == 1
    assert result["offline_checked"] is False and result["schema_checked"] is False
    assert result["msg"] == "The cluster configuration is valid (subnets, security groups and ParallelCluster dryrun)."


def test_offline_false_without_full_is_refused(capsys):
    failed, result = run(capsys, config=valid_config(), name="c1", offline=False)
    assert failed and "leave nothing to check" in result["msg"]


def test_config_file_with_duplicate_keys_is_reported(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("Region: us-east-1\nImage:\n  Os: ubuntu2204\n  Os: alinux2023\n")
    failed, result = run(capsys, config_file=str(path), name="c1", fail_on_invalid=False)
    assert not failed and not result["valid"]
    duplicate = [e for e in result["errors"] if "appears twice" in e["message"]]
    assert len(duplicate) == 1 and "line 4" in duplicate[0]["message"]


def test_a_config_file_linked_to_a_secret_file_echoes_none_of_it(capsys, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$saltsalt$SECRETHASHOFROOT:19700:0:99999:7:::\nalice:$6$pep$SECRETOFALICE:19700::::::\n")
    link = tmp_path / "cluster-config.yaml"
    link.symlink_to(secret)

    failed, result = run(capsys, config_file=str(link), name="c1")

    assert failed and len(result["errors"]) == 1
    assert "is not a ParallelCluster cluster config" in result["msg"]
    assert "SECRET" not in json.dumps(result) and "alice" not in json.dumps(result)


def test_an_unknown_key_is_named_without_its_value_and_long_values_are_cut(capsys):
    config = valid_config()
    config["HeadNode"]["Passwords"] = "hunter2-" * 10
    config["HeadNode"]["InstanceType"] = "x" * 5000

    failed, result = run(capsys, config=config, name="c1", fail_on_invalid=False)

    assert not failed and not result["valid"]
    errors = {e["path"]: e for e in result["errors"]}
    assert errors["HeadNode.Passwords"]["message"] == "Unknown field." and errors["HeadNode.Passwords"]["value"] is None
    assert "hunter2" not in json.dumps(result)
    shown = errors["HeadNode.InstanceType"]["value"]
    assert shown == "x" * 300 + "... (5000 characters)"
    assert max(len(line) for line in result["msg"].splitlines()) < 600


def test_extra_chef_attributes_written_as_a_block_are_accepted(capsys, tmp_path):
    # As ParallelCluster's own full example writes it: one line of JSON in a "|" block, so with a line break.
    path = tmp_path / "cluster-config.yaml"
    config = valid_config()
    del config["DevSettings"]
    path.write_text(yaml.safe_dump(config) + "DevSettings:\n  Cookbook:\n    ExtraChefAttributes: |\n"
                    "      {\"cluster\": {\"nvidia\": {\"enabled\": true}}}\n")

    failed, result = run(capsys, config_file=str(path), name="ml-training-cluster")

    assert not failed and result["valid"], result["msg"]


def test_a_line_break_elsewhere_is_still_refused(capsys):
    config = valid_config()
    config["HeadNode"]["InstanceType"] = "m5.8xlarge\n"

    failed, result = run(capsys, config=config, name="ml-training-cluster", fail_on_invalid=False)

    assert not failed and [e["path"] for e in result["errors"]] == ["HeadNode.InstanceType"]


def test_full_without_any_region_fails_with_the_module_base_s_message(capsys, monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    config = valid_config()
    del config["Region"]
    failed, result = run(capsys, config=config, name="c1", full=True)
    assert failed and result["msg"].startswith("No AWS region: set the module's 'region' option")
