"""The cluster_config role's builder (plugins/plugin_utils/config_builder.py): variables -> config."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.hpc.pcluster.plugins.module_utils.config import rules as config_rules
from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import render_yaml
from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import merge_problems, variable_for
from ansible_collections.hpc.pcluster.plugins.module_utils.config.schema import schema_problems
from ansible_collections.hpc.pcluster.plugins.plugin_utils.config_builder import build_cluster_config
from ansible_collections.hpc.pcluster.tests.unit.fixtures.guide.guide import (
    ENV_VARIABLES,
    GUIDE_BEHAVIOUR,
    ROLE_OPTIONS,
    role_variables,
    valid_guide_config,
)

PINNED_DOCKER_SCRIPT = ("https://raw.githubusercontent.com/aws-samples/aws-parallelcluster-post-install-scripts/"
                        "66337fc41a05facf3d7bb732c80b4366c56b83c5/docker/postinstall.sh")
SSM = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
NODE_SETUP_URL = "s3://my-bucket/hpc-pcluster-node-setup-v1.sh"
NODE_SETUP_STEP = {"Script": NODE_SETUP_URL, "Args": ["--dir", "/opt/slurm/hpc-pcluster/node-setup", "--wait", "0"]}
ECR_READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"


def build(**overrides):
    return build_cluster_config(role_variables(**overrides), ROLE_OPTIONS)


def default_config():
    result = build()
    assert result["problems"] == [] and result["warnings"] == []
    return result["config"]


def paths(problems):
    return [p["path"] for p in problems]


def nodes(config):
    """The head node and the queues: what gets Iam and CustomActions."""
    return [config["HeadNode"]] + config["Scheduling"]["SlurmQueues"]


# --------------------------------------------------------------------------- the defaults


def test_role_defaults_pass_the_schema_and_the_rules():
    problems, schema_checked, _note = config_rules.validate_config(default_config(), "ml-training-cluster")
    assert schema_checked and problems == []


def test_defaults_differ_from_the_guide_only_where_it_is_wrong_or_too_open():
    config, guide = default_config(), valid_guide_config()
    head, queue = nodes(config)
    # The collection sets the compute nodes up itself (Docker included) instead of the aws-samples script.
    assert head["CustomActions"]["OnNodeConfigured"]["Sequence"] == [{"Script": "s3://my-bucket/head-node.sh"}]
    assert queue["CustomActions"]["OnNodeConfigured"]["Sequence"] == [
        NODE_SETUP_STEP, {"Script": "s3://my-bucket/compute-node.sh"}]
    for node, guide_node in zip(nodes(config), nodes(guide)):
        assert [p["Policy"] for p in node["Iam"]["AdditionalIamPolicies"]] == [SSM, ECR_READ_ONLY]
        assert node["Iam"]["S3Access"] == [{"BucketName": "my-bucket"}]
        node["Iam"] = guide_node["Iam"]
        node["CustomActions"] = guide_node["CustomActions"]
    assert config["HeadNode"].pop("Ssh") == {"KeyName": "pcluster", "AllowedIps": "10.0.0.0/16"}
    assert config == guide


def test_the_guide_behaviour_comes_back_with_its_variables_and_a_warning_for_each_wider_access():
    built = build(**GUIDE_BEHAVIOUR)
    assert built["problems"] == []
    config = built["config"]
    assert config["HeadNode"].pop("Ssh") == {"AllowedIps": "0.0.0.0/0"}
    assert config == valid_guide_config()
    assert len(built["warnings"]) == 3
    iam, ssh, docker = built["warnings"]
    assert iam.startswith("HeadNode, Scheduling.SlurmQueues[0] get AmazonS3FullAccess, "
                          "AmazonEC2ContainerRegistryFullAccess, AmazonElasticContainerRegistryPublicFullAccess")
    assert "cluster_config_iam_full_access: false" in iam
    assert "open to the whole internet" in ssh
    assert "'main'" in docker and "Pin a commit" in docker


def test_docker_script_is_off_by_default_and_pinned_to_a_commit_when_turned_back_on():
    assert "postinstall.sh" not in render_yaml(default_config())
    config = build(cluster_config_docker_postinstall_enabled=True)["config"]
    head, queue = nodes(config)
    assert head["CustomActions"]["OnNodeConfigured"]["Sequence"] == [
        {"Script": PINNED_DOCKER_SCRIPT}, {"Script": "s3://my-bucket/head-node.sh"}]
    # The docker role then adopts the engine the script installed: the script runs before the node setup.
    assert queue["CustomActions"]["OnNodeConfigured"]["Sequence"] == [
        {"Script": PINNED_DOCKER_SCRIPT}, NODE_SETUP_STEP, {"Script": "s3://my-bucket/compute-node.sh"}]


def test_the_pinned_docker_script_is_the_argument_specs_default():
    assert ROLE_OPTIONS["cluster_config_docker_postinstall_url"]["default"] == PINNED_DOCKER_SCRIPT


# --------------------------------------------------------------------------- IAM, S3, SSH


def test_each_node_reads_only_the_buckets_of_its_own_scripts():
    built = build(cluster_config_head_node_bootstrap_script="s3://head-scripts/setup/head.sh",
                  cluster_config_compute_node_bootstrap_script="s3://compute-scripts/compute.sh")
    head, queue = nodes(built["config"])
    assert head["Iam"]["S3Access"] == [{"BucketName": "head-scripts"}]
    assert queue["Iam"]["S3Access"] == [{"BucketName": "compute-scripts"}]
    assert built["sources"]["HeadNode.Iam.S3Access[0]"] == "cluster_config_head_node_bootstrap_script"


def test_user_named_buckets_keep_their_access_and_the_script_buckets_are_still_added():
    built = build(cluster_config_s3_access=["training-data", {"bucket_name": "checkpoints",
                                                              "enable_write_access": True},
                                            {"bucket_name": "my-bucket", "key_name": "models/*"}])
    assert built["problems"] == []
    for node in nodes(built["config"]):
        assert node["Iam"]["S3Access"] == [
            {"BucketName": "training-data"}, {"BucketName": "checkpoints", "EnableWriteAccess": True},
            {"BucketName": "my-bucket", "KeyName": "models/*"}, {"BucketName": "my-bucket"}]
    assert config_rules.validate_config(built["config"], "ml")[0] == []


def test_a_bucket_the_user_names_whole_is_not_added_twice():
    built = build(cluster_config_s3_access=[{"bucket_name": "my-bucket", "enable_write_access": True}])
    for node in nodes(built["config"]):
        assert node["Iam"]["S3Access"] == [{"BucketName": "my-bucket", "EnableWriteAccess": True}]


def test_scripts_added_by_overrides_and_s3_docker_scripts_are_readable_too():
    built = build(cluster_config_docker_postinstall_enabled=True,
                  cluster_config_docker_postinstall_url="s3://staged-scripts/docker/postinstall.sh",
                  cluster_config_overrides={"HeadNode": {"CustomActions": {"OnNodeStart": {
                      "Script": "s3://start-scripts/start.sh"}}}})
    assert built["config"]["HeadNode"]["Iam"]["S3Access"] == [
        {"BucketName": "staged-scripts"}, {"BucketName": "my-bucket"}, {"BucketName": "start-scripts"}]
    assert built["config"]["Scheduling"]["SlurmQueues"][0]["Iam"]["S3Access"] == [
        {"BucketName": "staged-scripts"}, {"BucketName": "my-bucket"}]
    assert built["warnings"] == []


def test_https_scripts_need_no_bucket_and_an_instance_role_takes_no_s3_access():
    built = build(cluster_config_head_node_bootstrap_script="https://example.com/head.sh",
                  cluster_config_overrides={"Scheduling": {"SlurmQueues": []}})
    assert "S3Access" not in built["config"]["HeadNode"]["Iam"]
    role = {"HeadNode": {"Iam": {"InstanceRole": "arn:aws:iam::123456789012:role/head"}}}
    head = build(cluster_config_overrides=role)["config"]["HeadNode"]["Iam"]
    assert head["InstanceRole"] and "S3Access" not in head


def test_ssh_is_required_and_its_problem_says_how_to_choose():
    built = build(cluster_config_ssh_allowed_ips="")
    (only,) = built["problems"]
    assert only["path"] == "HeadNode.Ssh.AllowedIps" and only["variable"] == "cluster_config_ssh_allowed_ips"
    assert "0.0.0.0/0" in only["message"]
    for choice in ("/32", "VPC's CIDR", "Session Manager", "pl-", "'0.0.0.0/0' opens it to the world"):
        assert choice in only["fix"], choice
    assert built["config"]["HeadNode"]["Ssh"] == {"KeyName": "pcluster"}


def test_a_key_pair_is_required_unless_the_nodes_are_reached_through_session_manager():
    built = build(cluster_config_ssh_key_name="")
    (only,) = built["problems"]
    assert (only["path"], only["variable"]) == ("HeadNode.Ssh.KeyName", "cluster_config_ssh_key_name")
    assert "nobody can log in" in only["message"]
    for choice in ("ed25519", "refuses RSA", "create-key-pair --key-type ed25519", "cluster_config_use_ssm: true"):
        assert choice in only["fix"], choice
    # Session Manager only: no key pair, and the nodes get the SSM policy (the default has it).
    built = build(cluster_config_ssh_key_name="", cluster_config_use_ssm=True)
    assert built["problems"] == [] and built["config"]["HeadNode"]["Ssh"] == {"AllowedIps": "10.0.0.0/16"}
    built = build(cluster_config_ssh_key_name="", cluster_config_use_ssm=True,
                  cluster_config_iam_policies=["arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"])
    (only,) = built["problems"]
    assert (only["path"], only["variable"]) == ("HeadNode.Iam.AdditionalIamPolicies", "cluster_config_iam_policies")
    assert "AmazonSSMManagedInstanceCore" in only["message"] and "Session Manager cannot reach them" in only["message"]


def test_ssh_from_a_prefix_list_and_a_key_pair():
    config = build(cluster_config_ssh_allowed_ips="pl-0123456789abcdef0", cluster_config_ssh_key_name="my-key")[
        "config"]
    assert config["HeadNode"]["Ssh"] == {"KeyName": "my-key", "AllowedIps": "pl-0123456789abcdef0"}
    assert config_rules.validate_config(config, "ml")[0] == []


# --------------------------------------------------------------------------- the cluster's name and the output


def test_cluster_name_and_output_path():
    built = build(pcluster_cluster_name="ml-training-cluster")
    assert built["cluster_name"] == "ml-training-cluster" and built["problems"] == []
    assert built["output_path"] == "~/.hpc-pcluster/ml-training-cluster/cluster-config.yaml"
    assert build(cluster_config_output_path="/tmp/x.yaml")["output_path"] == "/tmp/x.yaml"


def test_the_cluster_is_named_by_pcluster_cluster_name_only():
    built = build(pcluster_cluster_name="prod", cluster_config_cluster_name="staging")
    (only,) = built["problems"]
    assert built["cluster_name"] == "prod" and only["variable"] == "cluster_config_cluster_name"
    assert "cluster_config_cluster_name is gone" in only["message"] and only["fix"] == "Set pcluster_cluster_name instead."


def test_a_missing_cluster_name_is_a_problem_naming_the_variable():
    built = build(pcluster_cluster_name="")
    (only,) = built["problems"]
    assert built["cluster_name"] is None and only["variable"] == "pcluster_cluster_name"
    assert only["message"] == "pcluster_cluster_name is required and not set"


# --------------------------------------------------------------------------- bad inputs

# (id, variable overrides, expected path, expected message fragment)
BAD_VARIABLES = [
    ("malformed public subnet", {"cluster_config_public_subnet_id": "subnet-xyz"},
     "HeadNode.Networking.SubnetId", "is not a subnet id"),
    ("malformed private subnet", {"cluster_config_private_subnet_id": "sub-0fedcba9876543210"},
     "Scheduling.SlurmQueues[0].Networking.SubnetIds[0]", "is not a subnet id"),
    ("malformed security group", {"cluster_config_security_group_id": "sg_0123"},
     "HeadNode.Networking.AdditionalSecurityGroups[0]", "is not a security group id"),
    ("malformed lustre id", {"cluster_config_fsx_lustre_id": "fs-123"},
     "SharedStorage[1].FsxLustreSettings.FileSystemId", "is not an FSx for Lustre file system id"),
    ("malformed openzfs volume", {"cluster_config_fsx_openzfs_volume_id": "fsvol-XYZ0123456789abcd"},
     "SharedStorage[0].FsxOpenZfsSettings.VolumeId", "is not an FSx volume id"),
    ("bad cluster name", {"pcluster_cluster_name": "1st_cluster"},
     "cluster_name", "may hold only letters, digits and hyphens"),
    ("cluster name too long", {"pcluster_cluster_name": "c" * 61},
     "cluster_name", "the limit is 60"),
    ("min above max", {"cluster_config_compute_min_count": 4, "cluster_config_compute_max_count": 2},
     "Scheduling.SlurmQueues[0].ComputeResources[0].MinCount", "MinCount (4) is greater than MaxCount (2)"),
    ("deny-listed slurm setting", {"cluster_config_custom_slurm_settings": [{"SlurmctldHost": "evil"}]},
     "Scheduling.SlurmSettings.CustomSlurmSettings[0].SlurmctldHost", "is managed by ParallelCluster"),
    ("deny-listed slurm setting, other case", {"cluster_config_custom_slurm_settings": [{"SUSPENDTIME": 5}]},
     "Scheduling.SlurmSettings.CustomSlurmSettings[0].SUSPENDTIME", "may not be set in CustomSlurmSettings"),
    ("unsubstituted shell variable", {"cluster_config_head_node_bootstrap_script": "${HEAD_NODE_BOOTSTRAP_SCRIPT}"},
     "HeadNode.CustomActions.OnNodeConfigured.Sequence[0].Script", "unsubstituted shell variable"),
    ("value with ': '", {"cluster_config_security_group_id": "sg-0123456789abcdef0: {Injected: true}"},
     "HeadNode.Networking.AdditionalSecurityGroups[0]", "is not a security group id"),
    ("value with a newline", {"cluster_config_private_subnet_id": "subnet-0fedcba9876543210\nInjected: true"},
     "Scheduling.SlurmQueues[0].Networking.SubnetIds[0]", "line break"),
    ("value with jinja markup", {"cluster_config_tags": {"owner": "{{ lookup('pipe', 'id') }}"}},
     "Tags[0].Value", "Jinja2 template markup"),
    ("executed lookup output in an id", {"cluster_config_public_subnet_id": "uid=0(root) gid=0(root)"},
     "HeadNode.Networking.SubnetId", "is not a subnet id"),
    ("unknown os", {"cluster_config_os": "ubuntu1804"}, "Image.Os", "Unknown operating system"),
    ("negative head root volume", {"cluster_config_head_node_root_volume_size": -5},
     "HeadNode.LocalStorage.RootVolume.Size", "must be a positive number"),
    ("zero compute root volume", {"cluster_config_compute_root_volume_size": 0},
     "Scheduling.SlurmQueues[0].ComputeSettings.LocalStorage.RootVolume.Size", "must be a positive number"),
    ("script that is not a URL", {"cluster_config_compute_node_bootstrap_script": "/home/ubuntu/compute.sh"},
     "Scheduling.SlurmQueues[0].CustomActions.OnNodeConfigured.Sequence[0].Script", "is not an s3:// or https:// URL"),
    ("bad queue name", {"cluster_config_queue_name": "Compute_GPU"},
     "Scheduling.SlurmQueues[0].Name", "must begin with a lowercase letter"),
    ("bad region", {"cluster_config_region": "us-east-1; rm -rf /"}, "Region", "is not an AWS region name"),
    ("bad capacity reservation", {"cluster_config_capacity_reservation_id": "cr-1"},
     "Scheduling.SlurmQueues[0].ComputeResources[0].CapacityReservationTarget.CapacityReservationId",
     "is not an EC2 capacity reservation id"),
    ("bad tag value", {"cluster_config_tags": {"owner": "a(b)"}}, "Tags[0].Value", "is not allowed"),
    ("bad ssh cidr", {"cluster_config_ssh_allowed_ips": "anywhere"}, "HeadNode.Ssh.AllowedIps",
     "neither a valid CIDR nor a valid prefix-list"),
    ("bad bucket", {"cluster_config_s3_access": ["My_Bucket"]}, "HeadNode.Iam.S3Access[0].BucketName",
     "is not an S3 bucket name"),
]


@pytest.mark.parametrize("name,overrides,path,message", BAD_VARIABLES, ids=[b[0] for b in BAD_VARIABLES])
def test_bad_variable_is_reported_with_path_and_message(name, overrides, path, message):
    variables = role_variables(**overrides)
    built = build_cluster_config(variables, ROLE_OPTIONS)
    problems = built["problems"] + config_rules.check_rules(built["config"], built["cluster_name"])
    problems = merge_problems(problems, schema_problems(built["config"], "ml-training-cluster"))
    matching = [p for p in problems if p["path"] == path]
    assert matching, "no problem at %s in %s" % (path, problems)
    assert any(message in p["message"] for p in matching), matching
    assert all(p["fix"] for p in problems)


def test_missing_required_variables_are_all_named_at_once_with_what_to_set():
    variables = role_variables(**{name: "" for name in ENV_VARIABLES})
    problems = build_cluster_config(variables, ROLE_OPTIONS)["problems"]
    assert sorted(p["variable"] for p in problems) == sorted(ENV_VARIABLES), problems
    fixes = {p["variable"]: p["fix"] for p in problems}
    assert fixes["cluster_config_public_subnet_id"] == (
        "Set cluster_config_public_subnet_id: the head node's (public) subnet id (the guide's PUBLIC_SUBNET_ID), "
        "e.g. subnet-0123456789abcdef0.")
    assert "or set cluster_config_fsx_lustre_enabled=false" in fixes["cluster_config_fsx_lustre_id"]


def test_missing_fsx_ids_are_not_required_when_fsx_is_off():
    built = build(cluster_config_fsx_lustre_enabled=False, cluster_config_fsx_openzfs_enabled=False,
                  cluster_config_fsx_lustre_id="", cluster_config_fsx_openzfs_volume_id="")
    assert built["problems"] == []
    assert "SharedStorage" not in built["config"]


def test_unknown_variable_and_unknown_queue_key_suggest_the_right_name():
    built = build(cluster_config_compute_max_cout=3,
                  cluster_config_queues=[{"name": "q", "compute_resource": [], "compute_resources": [
                      {"name": "c", "instance_type": "c5.large", "max_count": 1}]}])
    messages = [p["message"] + " " + p["fix"] for p in built["problems"]]
    assert any("Unknown variable cluster_config_compute_max_cout" in m and "cluster_config_compute_max_count" in m
               for m in messages), messages
    assert any("unknown key 'compute_resource'" in m and "compute_resources" in m for m in messages), messages


def test_the_role_outputs_are_not_unknown_variables():
    built = build(cluster_config_data={"Region": "x"}, cluster_config_file="/x", cluster_config_validation={})
    assert built["problems"] == []


def test_wrong_types_are_reported_and_strings_from_extra_vars_are_accepted():
    built = build(cluster_config_compute_max_count="4", cluster_config_efa_enabled="false",
                  cluster_config_head_node_root_volume_size="big", cluster_config_head_node_elastic_ip="true")
    resource = built["config"]["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]
    assert resource["MaxCount"] == 4 and resource["Efa"] == {"Enabled": False}
    assert built["config"]["HeadNode"]["Networking"]["ElasticIp"] is True
    assert [p["variable"] for p in built["problems"]] == ["cluster_config_head_node_root_volume_size"]
    assert built["problems"][0]["message"] == "cluster_config_head_node_root_volume_size must be a whole number, not str"


# --------------------------------------------------------------------------- beyond the guide


def test_several_queues_spot_capacity_block_login_nodes_and_s3_access_pass():
    built = build(
        cluster_config_queues=[
            {"name": "gpu-spot", "capacity_type": "SPOT", "allocation_strategy": "capacity-optimized",
             "compute_resources": [
                 {"name": "g5", "instance_type": "g5.12xlarge", "max_count": 4, "spot_price": 3.5},
                 {"name": "flex", "instances": ["g5.xlarge", "g5.2xlarge"], "max_count": 8, "efa_enabled": False},
             ]},
            {"name": "gpu-block", "capacity_type": "CAPACITY_BLOCK", "placement_group_enabled": False,
             "compute_resources": [
                 {"name": "p5", "instance_type": "p5.48xlarge", "min_count": 2, "max_count": 2,
                  "capacity_reservation_id": "cr-0a1f6b92ded769450", "efa_gdr_support": True}]},
            {"name": "cpu", "subnet_ids": ["subnet-0aaaaaaaaaaaaaaaa"], "scratch_mount_dir": "",
             "docker_postinstall_enabled": False, "bootstrap_script": "", "node_setup_enabled": False,
             "compute_resources": [{"name": "c7i", "instance_type": "c7i.large", "max_count": 10}]},
        ],
        cluster_config_login_nodes=[{"name": "login", "instance_type": "t3.large", "count": 2,
                                     "ssh_allowed_ips": "10.0.0.0/16"}],
        cluster_config_ssh_key_name="my-key",
        cluster_config_s3_access=["training-data", {"bucket_name": "checkpoints", "enable_write_access": True}],
        cluster_config_tags={"project": "llm", "cost-center": 1234},
        cluster_config_custom_ami="ami-0123456789abcdef0",
        cluster_config_head_node_root_volume_size=200,
        cluster_config_head_node_bootstrap_timeout=3600,
        cluster_config_extra_iam_policies=["arn:aws:iam::123456789012:policy/extra"],
        cluster_config_scaledown_idletime=10,
    )
    assert built["problems"] == []
    config = built["config"]
    assert config_rules.validate_config(config, "ml-training-cluster")[0] == []
    queues = config["Scheduling"]["SlurmQueues"]
    assert [q["Name"] for q in queues] == ["gpu-spot", "gpu-block", "cpu"]
    assert queues[0]["ComputeResources"][0]["SpotPrice"] == 3.5
    assert queues[0]["ComputeResources"][1]["MinCount"] == 0
    assert queues[1]["ComputeResources"][0]["Efa"] == {"Enabled": True, "GdrSupport": True}
    assert "CustomActions" not in queues[2]
    for queue in queues[:2]:
        assert queue["CustomActions"]["OnNodeConfigured"]["Sequence"] == [
            NODE_SETUP_STEP, {"Script": "s3://my-bucket/compute-node.sh"}]
    assert queues[2]["Iam"]["S3Access"] == [{"BucketName": "training-data"},
                                            {"BucketName": "checkpoints", "EnableWriteAccess": True}]
    assert queues[2]["Networking"]["SubnetIds"] == ["subnet-0aaaaaaaaaaaaaaaa"]
    head_policies = [p["Policy"] for p in config["HeadNode"]["Iam"]["AdditionalIamPolicies"]]
    assert head_policies == [SSM, ECR_READ_ONLY, "arn:aws:iam::123456789012:policy/extra"]
    assert config["HeadNode"]["Iam"]["S3Access"] == [
        {"BucketName": "training-data"}, {"BucketName": "checkpoints", "EnableWriteAccess": True},
        {"BucketName": "my-bucket"}]
    assert config["HeadNode"]["Ssh"] == {"KeyName": "my-key", "AllowedIps": "10.0.0.0/16"}
    pool = config["LoginNodes"]["Pools"][0]
    assert pool["Ssh"] == {"AllowedIps": "10.0.0.0/16"} and pool["Count"] == 2
    assert [p["Policy"] for p in pool["Iam"]["AdditionalIamPolicies"]] == head_policies
    assert config["Tags"] == [{"Key": "project", "Value": "llm"}, {"Key": "cost-center", "Value": "1234"}]


def test_queue_items_name_their_variable_and_required_keys():
    built = build(cluster_config_queues=[{"name": "", "compute_resources": [{"instance_type": "c5.large"}]},
                                         "not-a-mapping"])
    found = {(p["path"], p["message"]) for p in built["problems"]}
    assert ("Scheduling.SlurmQueues[0].Name", "cluster_config_queues[0].name is required") in found
    assert ("", "cluster_config_queues[1] must be a mapping") in found


def test_overrides_merge_and_are_validated():
    built = build(cluster_config_overrides={"DevSettings": {"AmiSearchFilters": {"Owner": "self"}},
                                            "HeadNode": {"Networking": {"ElasticIp": True}}})
    config = built["config"]
    assert config["DevSettings"] == {"Timeouts": {"HeadNodeBootstrapTimeout": 43200,
                                                  "ComputeNodeBootstrapTimeout": 7200},
                                     "AmiSearchFilters": {"Owner": "self"}}
    assert config["HeadNode"]["Networking"]["SubnetId"] == "subnet-0123456789abcdef0"
    assert config_rules.validate_config(config, "ml-training-cluster")[0] == []
    bad = build(cluster_config_overrides={"HeadNode": {"Bogus": 1}})
    problems = config_rules.validate_config(bad["config"], "ml-training-cluster")[0]
    assert paths(problems) == ["HeadNode.Bogus"]
    assert variable_for("HeadNode.Bogus", bad["sources"]) == "cluster_config_overrides"


def test_problems_name_the_variable_they_came_from():
    built = build(cluster_config_compute_max_count=1, cluster_config_compute_min_count=3)
    problems = config_rules.check_rules(built["config"])
    assert variable_for(problems[0]["path"], built["sources"]) == "cluster_config_compute_min_count"


def test_every_declared_variable_is_read_by_the_builder():
    """A variable in argument_specs.yml that changes nothing would be a dead option."""
    base = build()
    # The Docker script's URL matters only with the script turned on; the built image's AMI only with build.
    needs = {"cluster_config_docker_postinstall_url": {"cluster_config_docker_postinstall_enabled": True},
             "cluster_config_custom_image_ami": {"cluster_config_custom_image": "build"}}
    changed = {
        "str": "changed-value", "int": 7, "bool": None, "list": ["x"], "dict": {"Changed": "x"}, "raw": "changed",
    }
    unused = []
    for name, spec in ROLE_OPTIONS.items():
        if name == "cluster_config_use_ssm":  # it changes what is required: a key pair
            if build(cluster_config_ssh_key_name="")["problems"] == build(
                    cluster_config_ssh_key_name="", cluster_config_use_ssm=True)["problems"]:
                unused.append(name)
            continue
        value = changed[spec["type"]] if spec["type"] != "bool" else not spec.get("default", False)
        if name == "cluster_config_queues":
            value = [{"name": "q", "compute_resources": [{"name": "c", "instance_type": "c5.large"}]}]
        elif name in ("cluster_config_login_nodes",):
            value = [{"name": "l", "instance_type": "t3.large"}]
        elif spec["type"] == "list" and spec.get("elements") == "dict":
            value = [{"Changed": "x"}]
        elif name in ("cluster_config_custom_image", "cluster_config_custom_image_ami"):
            value = "ami-0123456789abcdef0"
        context = needs.get(name, {})
        reference, other = (build(**context), build(**dict(context, **{name: value}))) if context else (
            base, build(**{name: value}))
        if {k: v for k, v in other.items() if k != "problems"} == {
                k: v for k, v in reference.items() if k != "problems"}:
            unused.append(name)
    assert unused == []


# --------------------------------------------------------------------------- YAML output


def test_yaml_round_trips_hostile_strings_literally():
    hostile = ["a: b", "x\ty", "- item", "#comment", "'quoted'", '"dq"', "*alias", "&anchor", "!tag", "yes", "no",
               "1e3", "0777", "null", "~", "{a: 1}", "[1]", "%percent", "@at", "`tick`", "|", ">", "? q", "ünï"]
    config = default_config()
    config["Tags"] = [{"Key": "k%d" % i, "Value": v} for i, v in enumerate(hostile)]
    assert yaml.safe_load(render_yaml(config)) == config


def test_yaml_is_deterministic_and_keeps_build_order():
    first = render_yaml(build()["config"])
    assert first == render_yaml(build()["config"])
    top = [line.split(":")[0] for line in first.splitlines() if line and line[0].isalpha()]
    assert top == ["Region", "DevSettings", "Imds", "Image", "HeadNode", "Scheduling", "SharedStorage", "Monitoring"]


# --------------------------------------------------------------------------- the compute queues' custom image


def test_a_custom_image_goes_to_every_queue_and_not_to_the_head_node():
    result = build(cluster_config_custom_image="ami-0123456789abcdef0")

    config = result["config"]
    assert result["problems"] == []
    assert [q["Image"] for q in config["Scheduling"]["SlurmQueues"]] == [{"CustomAmi": "ami-0123456789abcdef0"}]
    assert config["Image"] == {"Os": "ubuntu2204"}
    assert variable_for("Scheduling.SlurmQueues[0].Image.CustomAmi", result["sources"]) == "cluster_config_custom_image"


def test_build_takes_the_ami_deploy_built_and_a_queue_of_its_own_keeps_its_ami():
    queues = [{"name": "gpu", "compute_resources": [{"name": "g5", "instance_type": "g5.8xlarge"}]},
              {"name": "cpu", "custom_ami": "ami-0fedcba9876543210",
               "compute_resources": [{"name": "c5", "instance_type": "c5.xlarge"}]}]

    result = build(cluster_config_custom_image="build", cluster_config_custom_image_ami="ami-0123456789abcdef0",
                   cluster_config_queues=queues)

    assert result["problems"] == []
    assert [q["Image"]["CustomAmi"] for q in result["config"]["Scheduling"]["SlurmQueues"]] == [
        "ami-0123456789abcdef0", "ami-0fedcba9876543210"]


def test_build_without_a_built_image_or_a_bad_ami_says_what_to_do():
    unbuilt = build(cluster_config_custom_image="build")["problems"]
    bad = build(cluster_config_custom_image="ubuntu-nodes")["problems"]

    assert [p["variable"] for p in unbuilt] == ["cluster_config_custom_image"]
    assert "no image was built" in unbuilt[0]["message"] and "deploy.yml" in unbuilt[0]["fix"]
    assert [p["variable"] for p in bad] == ["cluster_config_custom_image"]
    assert "must be build or an AMI id, not 'ubuntu-nodes'" in bad[0]["message"]
