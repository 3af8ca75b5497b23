"""The account checks: which ids a config references, the key pair (against moto's EC2), a dryrun's answer as
problems."""

from __future__ import annotations

import subprocess

from moto import mock_aws

from ansible_collections.hpc.pcluster.plugins.module_utils.config import aws_checks as config_aws_checks

CONFIG = {
    "HeadNode": {"Networking": {"SubnetId": "subnet-0aaa1111", "AdditionalSecurityGroups": ["sg-0bbb2222"]}},
    "Scheduling": {"SlurmQueues": [
        {"Name": "gpu", "Networking": {"SubnetIds": ["subnet-0aaa1111", "subnet-0ccc3333"],
                                       "SecurityGroups": ["sg-0bbb2222"]}},
    ]},
    "Tags": [{"Key": "note", "Value": "subnet-0ddd4444"}],
}


class Paginator:
    def __init__(self, pages):
        self.pages = pages
        self.filters = None

    def paginate(self, Filters):  # noqa: N803 - boto3's argument name
        self.filters = Filters
        return self.pages


class Ec2:
    """Answers like EC2 for the subnets and security groups it holds."""

    def __init__(self, subnets, groups):
        self.paginators = {
            "describe_subnets": Paginator([{"Subnets": [{"SubnetId": s} for s in subnets]}]),
            "describe_security_groups": Paginator([{"SecurityGroups": [{"GroupId": g} for g in groups]}]),
        }

    def get_paginator(self, operation):
        return self.paginators[operation]


def test_referenced_ids_with_every_path_that_names_them():
    found = config_aws_checks.referenced_network_ids(CONFIG)
    assert found["subnet"] == {
        "subnet-0aaa1111": ["HeadNode.Networking.SubnetId", "Scheduling.SlurmQueues[0].Networking.SubnetIds[0]"],
        "subnet-0ccc3333": ["Scheduling.SlurmQueues[0].Networking.SubnetIds[1]"],
    }
    assert sorted(found["security_group"]) == ["sg-0bbb2222"]
    assert len(found["security_group"]["sg-0bbb2222"]) == 2


def test_every_missing_id_is_a_problem_at_each_of_its_paths():
    ec2 = Ec2(subnets=["subnet-0aaa1111"], groups=[])
    problems = config_aws_checks.missing_network_problems(CONFIG, ec2, region="us-east-1")
    by_path = {p["path"]: p for p in problems}
    assert sorted(by_path) == [
        "HeadNode.Networking.AdditionalSecurityGroups[0]",
        "Scheduling.SlurmQueues[0].Networking.SecurityGroups[0]",
        "Scheduling.SlurmQueues[0].Networking.SubnetIds[1]",
    ]
    assert "does not exist in us-east-1" in by_path["Scheduling.SlurmQueues[0].Networking.SubnetIds[1]"]["message"]
    # One filtered call per kind: a missing id does not hide the others.
    assert ec2.paginators["describe_subnets"].filters == [
        {"Name": "subnet-id", "Values": ["subnet-0aaa1111", "subnet-0ccc3333"]}]


def test_dryrun_messages_at_or_above_the_level_are_problems():
    dryrun = {"success": True, "validation_messages": {
        "WARNING": [{"type": "KeyPairValidator", "message": "no key pair"}],
        "ERROR": [{"type": "SubnetsValidator", "message": "bad subnet"}],
    }}
    errors = config_aws_checks.dryrun_problems(CONFIG, dryrun)
    assert [p["message"] for p in errors] == ["[ERROR SubnetsValidator] bad subnet"]
    assert "type:SubnetsValidator" in errors[0]["fix"]
    warnings = config_aws_checks.dryrun_problems(CONFIG, dryrun, failure_level="WARNING")
    assert len(warnings) == 2


def test_a_failed_dryrun_without_validators_points_at_the_values_it_names():
    dryrun = {"success": False, "message": "Subnet subnet-0ccc3333 is in another VPC."}
    problems = config_aws_checks.dryrun_problems(CONFIG, dryrun)
    assert [p["path"] for p in problems] == ["Scheduling.SlurmQueues[0].Networking.SubnetIds[1]"]
    assert problems[0]["value"] == "subnet-0ccc3333"


def test_a_failed_dryrun_naming_nothing_is_one_problem_at_the_top():
    problems = config_aws_checks.dryrun_problems(CONFIG, {"success": False, "message": "Throttled."})
    assert len(problems) == 1 and problems[0]["path"] == ""


def imported_key_pairs(tmp_path, monkeypatch):
    """moto's EC2 (in-process) holding an ed25519 and an RSA key pair imported as users import theirs."""
    import boto3  # pylint: disable=import-outside-toplevel

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    ec2 = boto3.client("ec2", region_name="us-east-1")
    for name, kind in (("ed-key", "ed25519"), ("rsa-key", "rsa")):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(tmp_path / name)], check=True)
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=(tmp_path / (name + ".pub")).read_bytes())
    return ec2


def with_key(name, os_name="ubuntu2204"):
    return {"Image": {"Os": os_name}, "HeadNode": {"Ssh": {"KeyName": name}}}


def test_the_key_pair_must_exist_and_be_ed25519_where_parallelcluster_refuses_rsa(tmp_path, monkeypatch):
    with mock_aws():
        ec2 = imported_key_pairs(tmp_path, monkeypatch)
        assert config_aws_checks.key_pair_problems(with_key("ed-key"), ec2, "us-east-1") == []
        assert config_aws_checks.key_pair_problems(with_key("rsa-key", "alinux2023"), ec2) == []
        assert config_aws_checks.key_pair_problems({"HeadNode": {}}, ec2) == []
        for os_name in ("ubuntu2204", "ubuntu2404"):
            (rsa,) = config_aws_checks.key_pair_problems(with_key("rsa-key", os_name), ec2, "us-east-1")
            assert (rsa["path"], rsa["value"]) == ("HeadNode.Ssh.KeyName", "rsa-key")
            assert "is RSA, which ParallelCluster refuses on %s" % os_name in rsa["message"]
            assert "--key-type ed25519" in rsa["fix"]
        (missing,) = config_aws_checks.key_pair_problems(with_key("nobody-s-key"), ec2, "us-east-1")
        assert missing["message"] == "The key pair nobody-s-key does not exist in us-east-1"
