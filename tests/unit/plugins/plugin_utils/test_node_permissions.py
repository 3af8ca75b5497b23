"""IAM policies, S3 access and SSH ingress of the nodes (plugins/plugin_utils/node_permissions.py)."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.plugin_utils import node_permissions
from ansible_collections.hpc.pcluster.plugins.plugin_utils.role_variables import RoleVariables, Sources
from ansible_collections.hpc.pcluster.tests.unit.fixtures.guide.guide import ROLE_OPTIONS


def test_script_bucket_is_read_from_s3_urls_only():
    assert node_permissions.script_bucket("s3://my-bucket/path/to/script.sh") == "my-bucket"
    assert node_permissions.script_bucket("s3://bucket-only") == "bucket-only"
    assert node_permissions.script_bucket("https://my-bucket.s3.amazonaws.com/script.sh") is None
    assert node_permissions.script_bucket(None) is None


def test_full_access_adds_the_guides_policies_and_replaces_read_only_ecr():
    arns = ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore", node_permissions.ECR_READ_ONLY]
    assert [p["Policy"] for p in node_permissions.policies(arns)] == arns
    assert [p["Policy"] for p in node_permissions.policies(arns, full_access=True)] == [
        arns[0]] + list(node_permissions.GUIDE_FULL_ACCESS_POLICIES)


def test_script_buckets_are_added_per_node_and_sourced_to_their_script_variable():
    config = {
        "HeadNode": {"Iam": {"AdditionalIamPolicies": []},
                     "CustomActions": {"OnNodeStart": {"Script": "s3://start/x.sh"},
                                       "OnNodeConfigured": {"Sequence": [{"Script": "s3://conf/y.sh"},
                                                                         {"Script": "s3://start/z.sh"}]}}},
        "Scheduling": {"SlurmQueues": [
            {"Iam": {"AdditionalIamPolicies": [{"Policy": node_permissions.S3_FULL_ACCESS}]},
             "CustomActions": {"OnNodeConfigured": {"Script": "s3://conf/q.sh"}}},
            {"CustomActions": {"OnNodeConfigured": {"Script": "s3://other/q.sh"}}},
        ]},
    }
    sources = Sources()
    sources.add(("HeadNode", "CustomActions", "OnNodeStart"), "cluster_config_overrides")
    node_permissions.add_script_buckets(config, sources)
    assert config["HeadNode"]["Iam"]["S3Access"] == [{"BucketName": "start"}, {"BucketName": "conf"}]
    assert "S3Access" not in config["Scheduling"]["SlurmQueues"][0]["Iam"]  # AmazonS3FullAccess covers it
    assert config["Scheduling"]["SlurmQueues"][1]["Iam"] == {"S3Access": [{"BucketName": "other"}]}
    assert sources.paths["HeadNode.Iam.S3Access[0]"] == "cluster_config_overrides"


def test_s3_access_entries_are_converted_and_checked():
    variables = RoleVariables({}, ROLE_OPTIONS)
    entries = node_permissions.s3_access(variables, ["a", {"bucket_name": "b", "enable_write_access": "yes"},
                                                     {"key_name": "x"}, 5], "cluster_config_s3_access")
    assert entries == [{"BucketName": "a"}, {"BucketName": "b", "EnableWriteAccess": True}, {"KeyName": "x"}]
    assert [p["message"] for p in variables.problems] == [
        "cluster_config_s3_access[2].bucket_name is required",
        "cluster_config_s3_access[3] must be a bucket name or a mapping"]


def test_warnings_for_full_access_an_open_ssh_port_and_an_unpinned_script():
    variables = RoleVariables({"cluster_config_docker_postinstall_enabled": True,
                               "cluster_config_docker_postinstall_url":
                               "https://raw.githubusercontent.com/o/r/v1.0/docker/postinstall.sh"}, ROLE_OPTIONS)
    config = {"HeadNode": {"Ssh": {"AllowedIps": "::/0"}, "Iam": {"AdditionalIamPolicies": [
        {"Policy": node_permissions.S3_FULL_ACCESS}]}},
        "LoginNodes": {"Pools": [{"Iam": {"AdditionalIamPolicies": [{"Policy": node_permissions.S3_FULL_ACCESS}]}}]}}
    iam, ssh, docker = node_permissions.warnings(config, variables)
    assert iam.startswith("HeadNode, LoginNodes.Pools[0] get AmazonS3FullAccess:")
    assert "(cluster_config_ssh_allowed_ips: ::/0)" in ssh
    assert "'v1.0'" in docker
    assert node_permissions.warnings({"HeadNode": {"Ssh": {"AllowedIps": "10.0.0.0/8"}}}, RoleVariables({}, ROLE_OPTIONS)) == []
