"""Building and validating cluster configs (plugins/module_utils/cluster_config.py)."""

from __future__ import annotations

import copy
import pathlib
import string

import pytest
import yaml

from ansible_collections.hpc.pcluster.plugins.module_utils import cluster_config as cc
from ansible_collections.hpc.pcluster.plugins.module_utils import config_file

ROOT = pathlib.Path(__file__).resolve().parents[4]
ROLE = ROOT / "roles" / "cluster_config"
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"

# Plausible values for the guide's ~/pcluster-env.sh.
GUIDE_ENV = {
    "AWS_REGION": "us-east-1",
    "PUBLIC_SUBNET_ID": "subnet-0123456789abcdef0",
    "PRIVATE_SUBNET_ID": "subnet-0fedcba9876543210",
    "SECURITY_GROUP_ID": "sg-0123456789abcdef0",
    "FSX_LUSTRE_ID": "fs-0123456789abcdef0",
    "FSX_OPENZFS_ROOT_VOLUME_ID": "fsvol-0123456789abcdef0",
    "HEAD_NODE_BOOTSTRAP_SCRIPT": "s3://my-bucket/head-node.sh",
    "COMPUTE_NODE_BOOTSTRAP_SCRIPT": "s3://my-bucket/compute-node.sh",
    "COMPUTE_INSTANCE_TYPE": "g5.8xlarge",
    "COMPUTE_MIN_COUNT": "2",
    "COMPUTE_MAX_COUNT": "2",
}

ENV_VARIABLES = {
    "cluster_config_region": "us-east-1",
    "cluster_config_public_subnet_id": "subnet-0123456789abcdef0",
    "cluster_config_private_subnet_id": "subnet-0fedcba9876543210",
    "cluster_config_security_group_id": "sg-0123456789abcdef0",
    "cluster_config_fsx_lustre_id": "fs-0123456789abcdef0",
    "cluster_config_fsx_openzfs_volume_id": "fsvol-0123456789abcdef0",
    "cluster_config_head_node_bootstrap_script": "s3://my-bucket/head-node.sh",
    "cluster_config_compute_node_bootstrap_script": "s3://my-bucket/compute-node.sh",
}


def guide_config():
    """The guide's template rendered the way its heredoc does, with plausible ids."""
    text = (FIXTURES / "seed-cluster-config.yaml.template").read_text()
    return yaml.safe_load(string.Template(text).substitute(GUIDE_ENV))


def role_variables(**overrides):
    """The role's defaults (templates resolved as Ansible would) plus the environment values."""
    variables = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    variables["cluster_config_cluster_name"] = "ml-training-cluster"
    variables["cluster_config_region"] = ""
    variables["cluster_config_output_path"] = "/tmp/ml-training-cluster/cluster-config.yaml"
    variables.update(ENV_VARIABLES)
    variables.update(overrides)
    return variables


def build(**overrides):
    return cc.build_cluster_config(role_variables(**overrides))


def default_config():
    result = build()
    assert result["problems"] == []
    return result["config"]


def paths(problems):
    return [p["path"] for p in problems]


# --------------------------------------------------------------------------- the guide and the defaults


def test_guide_config_fails_with_exactly_the_fsx_lustre_deployment_type_error():
    problems, schema_checked = cc.validate_config(guide_config(), "ml-training-cluster")
    assert schema_checked
    assert len(problems) == 1, problems
    (only,) = problems
    assert only["path"] == "SharedStorage[1].FsxLustreSettings.DeploymentType"
    assert only["value"] == "PERSISTENT_1"
    assert "cannot be specified when an existing Lustre file system is used" in only["message"]
    assert "Remove DeploymentType" in only["fix"]


def test_pcluster_schema_alone_names_the_same_path():
    problems = cc.schema_problems(guide_config(), "ml-training-cluster")
    assert paths(problems) == ["SharedStorage[1].FsxLustreSettings.DeploymentType"]
    assert problems[0]["message"].startswith("DeploymentType cannot be specified")


def test_role_defaults_pass_the_schema_and_the_rules():
    config = default_config()
    problems, schema_checked = cc.validate_config(config, "ml-training-cluster")
    assert schema_checked and problems == []


def test_role_defaults_are_the_guide_config_without_deployment_type():
    guide = guide_config()
    del guide["SharedStorage"][1]["FsxLustreSettings"]["DeploymentType"]
    assert default_config() == guide


def test_defaults_do_not_emit_deployment_type():
    lustre = [s for s in default_config()["SharedStorage"] if s["StorageType"] == "FsxLustre"][0]
    assert lustre["FsxLustreSettings"] == {"FileSystemId": "fs-0123456789abcdef0"}


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
    ("bad cluster name", {"cluster_config_cluster_name": "1st_cluster"},
     "cluster_name", "may hold only letters, digits and hyphens"),
    ("cluster name too long", {"cluster_config_cluster_name": "c" * 61},
     "cluster_name", "the limit is 60"),
    ("min above max", {"cluster_config_compute_min_count": 4, "cluster_config_compute_max_count": 2},
     "Scheduling.SlurmQueues[0].ComputeResources[0].MinCount", "MinCount (4) is greater than MaxCount (2)"),
    ("deny-listed slurm setting", {"cluster_config_custom_slurm_settings": [{"SlurmctldHost": "evil"}]},
     "Scheduling.SlurmSettings.CustomSlurmSettings[0].SlurmctldHost", "is managed by ParallelCluster"),
    ("deny-listed slurm setting, other case", {"cluster_config_custom_slurm_settings": [{"SUSPENDTIME": 5}]},
     "Scheduling.SlurmSettings.CustomSlurmSettings[0].SUSPENDTIME", "may not be set in CustomSlurmSettings"),
    ("unsubstituted shell variable", {"cluster_config_head_node_bootstrap_script": "${HEAD_NODE_BOOTSTRAP_SCRIPT}"},
     "HeadNode.CustomActions.OnNodeConfigured.Sequence[1].Script", "unsubstituted shell variable"),
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
     "Scheduling.SlurmQueues[0].CustomActions.OnNodeConfigured.Sequence[1].Script", "is not an s3:// or https:// URL"),
    ("bad queue name", {"cluster_config_queue_name": "Compute_GPU"},
     "Scheduling.SlurmQueues[0].Name", "must begin with a lowercase letter"),
    ("bad region", {"cluster_config_region": "us-east-1; rm -rf /"}, "Region", "is not an AWS region name"),
    ("bad capacity reservation", {"cluster_config_capacity_reservation_id": "cr-1"},
     "Scheduling.SlurmQueues[0].ComputeResources[0].CapacityReservationTarget.CapacityReservationId",
     "is not an EC2 capacity reservation id"),
    ("bad tag value", {"cluster_config_tags": {"owner": "a(b)"}}, "Tags[0].Value", "is not allowed"),
]


@pytest.mark.parametrize("name,overrides,path,message", BAD_VARIABLES, ids=[b[0] for b in BAD_VARIABLES])
def test_bad_variable_is_reported_with_path_and_message(name, overrides, path, message):
    variables = role_variables(**overrides)
    built = cc.build_cluster_config(variables)
    problems = built["problems"] + cc.check_rules(built["config"], variables["cluster_config_cluster_name"])
    problems = cc.merge_problems(problems, cc.schema_problems(built["config"], "ml-training-cluster"))
    matching = [p for p in problems if p["path"] == path]
    assert matching, "no problem at %s in %s" % (path, problems)
    assert any(message in p["message"] for p in matching), matching
    assert all(p["fix"] for p in problems)


def test_missing_required_variables_are_all_named_at_once():
    variables = role_variables()
    for name in ENV_VARIABLES:
        variables[name] = ""
    problems = cc.build_cluster_config(variables)["problems"]
    named = sorted(p["variable"] for p in problems)
    assert named == sorted(ENV_VARIABLES), problems
    report = cc.format_problems(problems, cluster_name="ml-training-cluster")
    for name in ENV_VARIABLES:
        assert name in report
    assert "has 8 problems" in report


def test_missing_fsx_ids_are_not_required_when_fsx_is_off():
    variables = role_variables(cluster_config_fsx_lustre_enabled=False, cluster_config_fsx_openzfs_enabled=False,
                               cluster_config_fsx_lustre_id="", cluster_config_fsx_openzfs_volume_id="")
    built = cc.build_cluster_config(variables)
    assert built["problems"] == []
    assert "SharedStorage" not in built["config"]
    assert cc.validate_config(built["config"], "ml-training-cluster")[0] == []


def test_fsx_lustre_file_system_id_with_other_keys_names_each_key():
    config = default_config()
    config["SharedStorage"][1]["FsxLustreSettings"].update(DeploymentType="PERSISTENT_2", StorageCapacity=1200)
    problems = cc.validate_config(config, "ml-training-cluster")[0]
    assert sorted(paths(problems)) == [
        "SharedStorage[1].FsxLustreSettings.DeploymentType",
        "SharedStorage[1].FsxLustreSettings.StorageCapacity",
    ]


def test_duplicate_queue_and_compute_resource_names():
    queues = [
        {"name": "gpu", "compute_resources": [
            {"name": "a", "instance_type": "g5.xlarge"},
            {"name": "a", "instance_type": "g5.2xlarge"},
        ]},
        {"name": "gpu", "compute_resources": [{"name": "b", "instance_type": "c5.xlarge"}]},
    ]
    built = build(cluster_config_queues=queues)
    problems = cc.check_rules(built["config"])
    assert "Scheduling.SlurmQueues[1].Name" in paths(problems)
    assert "Scheduling.SlurmQueues[0].ComputeResources[1].Name" in paths(problems)
    assert any("is used twice" in p["message"] for p in problems)


def test_unknown_variable_and_unknown_queue_key_suggest_the_right_name():
    built = build(cluster_config_compute_max_cout=3,
                  cluster_config_queues=[{"name": "q", "compute_resource": [], "compute_resources": [
                      {"name": "c", "instance_type": "c5.large", "max_count": 1}]}])
    messages = [p["message"] + " " + p["fix"] for p in built["problems"]]
    assert any("Unknown variable cluster_config_compute_max_cout" in m and "cluster_config_compute_max_count" in m
               for m in messages), messages
    assert any("unknown key 'compute_resource'" in m and "compute_resources" in m for m in messages), messages


def test_wrong_types_are_reported_and_strings_from_extra_vars_are_accepted():
    built = build(cluster_config_compute_max_count="4", cluster_config_efa_enabled="false",
                  cluster_config_head_node_root_volume_size="big")
    assert built["config"]["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MaxCount"] == 4
    assert built["config"]["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["Efa"] == {"Enabled": False}
    assert [p["variable"] for p in built["problems"]] == ["cluster_config_head_node_root_volume_size"]


def test_unknown_key_in_a_handwritten_config_is_caught_by_the_schema():
    config = default_config()
    config["HeadNode"]["InstanceTyp"] = "m5.large"
    problems = cc.validate_config(config, "ml-training-cluster")[0]
    assert [(p["path"], p["message"]) for p in problems] == [("HeadNode.InstanceTyp", "Unknown field.")]


def test_every_problem_is_reported_at_once():
    config = guide_config()
    config["HeadNode"]["Networking"]["SubnetId"] = "subnet-bad"
    config["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MinCount"] = 9
    config["Scheduling"]["SlurmSettings"]["CustomSlurmSettings"].append({"Prolog": "/bin/true"})
    config["Image"]["Os"] = "centos7"
    problems = cc.validate_config(config, "ml-training-cluster")[0]
    assert set(paths(problems)) >= {
        "HeadNode.Networking.SubnetId",
        "Scheduling.SlurmQueues[0].ComputeResources[0].MinCount",
        "Scheduling.SlurmSettings.CustomSlurmSettings[4].Prolog",
        "Image.Os",
        "SharedStorage[1].FsxLustreSettings.DeploymentType",
    }


def test_accounting_settings_are_denied_only_with_a_database():
    config = default_config()
    assert cc.check_rules(config) == []  # the guide's JobAcctGatherType is fine without a database
    config["Scheduling"]["SlurmSettings"]["Database"] = {
        "Uri": "db.example.com:3306", "UserName": "slurm",
        "PasswordSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:slurm"}
    assert "Scheduling.SlurmSettings.CustomSlurmSettings[2].JobAcctGatherType" in paths(cc.check_rules(config))


def test_queue_and_compute_resource_level_deny_lists():
    config = default_config()
    queue = config["Scheduling"]["SlurmQueues"][0]
    queue["CustomSlurmSettings"] = {"OverSubscribe": "YES", "MaxTime": "1-00:00:00"}
    queue["ComputeResources"][0]["CustomSlurmSettings"] = {"Weight": 5, "RealMemory": 1000}
    assert sorted(paths(cc.check_rules(config))) == [
        "Scheduling.SlurmQueues[0].ComputeResources[0].CustomSlurmSettings.Weight",
        "Scheduling.SlurmQueues[0].CustomSlurmSettings.OverSubscribe",
    ]


def test_deny_list_matches_pcluster():
    from pcluster.validators.slurm_settings_validator import SLURM_SETTINGS_DENY_LIST

    ours = {level: {ctx: sorted(v) for ctx, v in contexts.items()} for level, contexts in cc.SLURM_DENY_LIST.items()}
    theirs = {level: {ctx: sorted(v) for ctx, v in contexts.items()}
              for level, contexts in SLURM_SETTINGS_DENY_LIST.items()}
    assert ours == theirs


def test_supported_oses_match_pcluster():
    from pcluster.constants import SUPPORTED_OSES

    assert sorted(cc.SUPPORTED_OSES) == sorted(SUPPORTED_OSES)


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
             "docker_postinstall_enabled": False, "bootstrap_script": "",
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
    )
    assert built["problems"] == []
    config = built["config"]
    problems = cc.validate_config(config, "ml-training-cluster")[0]
    assert problems == []
    queues = config["Scheduling"]["SlurmQueues"]
    assert [q["Name"] for q in queues] == ["gpu-spot", "gpu-block", "cpu"]
    assert queues[0]["ComputeResources"][0]["SpotPrice"] == 3.5
    assert queues[1]["ComputeResources"][0]["Efa"] == {"Enabled": True, "GdrSupport": True}
    assert "CustomActions" not in queues[2]
    assert queues[2]["Networking"]["SubnetIds"] == ["subnet-0aaaaaaaaaaaaaaaa"]
    head_policies = [p["Policy"] for p in config["HeadNode"]["Iam"]["AdditionalIamPolicies"]]
    assert cc.S3_FULL_ACCESS_POLICY not in head_policies
    assert "arn:aws:iam::123456789012:policy/extra" in head_policies
    assert config["HeadNode"]["Iam"]["S3Access"] == [
        {"BucketName": "training-data"}, {"BucketName": "checkpoints", "EnableWriteAccess": True}]
    assert config["HeadNode"]["Ssh"] == {"KeyName": "my-key"}
    assert config["LoginNodes"]["Pools"][0]["Ssh"] == {"AllowedIps": "10.0.0.0/16"}
    assert config["Tags"] == [{"Key": "project", "Value": "llm"}, {"Key": "cost-center", "Value": "1234"}]


def test_capacity_block_needs_a_reservation_and_static_nodes():
    built = build(cluster_config_capacity_type="CAPACITY_BLOCK", cluster_config_compute_min_count=0)
    found = {p["path"]: p["message"] for p in cc.check_rules(built["config"])}
    base = "Scheduling.SlurmQueues[0].ComputeResources[0]"
    assert "reservation id" in found[base + ".CapacityReservationTarget"]
    assert "must equal MaxCount" in found[base + ".MaxCount"]


def test_docker_postinstall_script_can_be_turned_off():
    config = build(cluster_config_docker_postinstall_enabled=False)["config"]
    assert config["HeadNode"]["CustomActions"]["OnNodeConfigured"]["Sequence"] == [
        {"Script": "s3://my-bucket/head-node.sh"}]
    assert cc.GUIDE_DOCKER_POSTINSTALL_URL not in config_file.render_yaml(config)


def test_overrides_merge_and_are_validated():
    built = build(cluster_config_overrides={"DevSettings": {"AmiSearchFilters": {"Owner": "self"}},
                                            "HeadNode": {"Networking": {"ElasticIp": True}}})
    config = built["config"]
    assert config["DevSettings"] == {"Timeouts": {"HeadNodeBootstrapTimeout": 43200,
                                                  "ComputeNodeBootstrapTimeout": 7200},
                                     "AmiSearchFilters": {"Owner": "self"}}
    assert config["HeadNode"]["Networking"]["SubnetId"] == "subnet-0123456789abcdef0"
    assert cc.validate_config(config, "ml-training-cluster")[0] == []
    bad = build(cluster_config_overrides={"HeadNode": {"Bogus": 1}})
    problems = cc.validate_config(bad["config"], "ml-training-cluster")[0]
    assert paths(problems) == ["HeadNode.Bogus"]
    assert cc.variable_for("HeadNode.Bogus", bad["sources"]) == "cluster_config_overrides"


def test_problems_name_the_variable_they_came_from():
    built = build(cluster_config_compute_max_count=1, cluster_config_compute_min_count=3)
    problems = cc.check_rules(built["config"])
    assert cc.variable_for(problems[0]["path"], built["sources"]) == "cluster_config_compute_min_count"
    report = cc.format_problems(problems, built["sources"])
    assert "(from cluster_config_compute_min_count)" in report


# --------------------------------------------------------------------------- YAML output


def test_yaml_round_trips_hostile_strings_literally():
    hostile = ["a: b", "x\ty", "- item", "#comment", "'quoted'", '"dq"', "*alias", "&anchor", "!tag", "yes", "no",
               "1e3", "0777", "null", "~", "{a: 1}", "[1]", "%percent", "@at", "`tick`", "|", ">", "? q", "ünï"]
    config = default_config()
    config["Tags"] = [{"Key": "k%d" % i, "Value": v} for i, v in enumerate(hostile)]
    text = config_file.render_yaml(config)
    assert yaml.safe_load(text) == config


def test_yaml_is_deterministic_and_keeps_build_order():
    first = config_file.render_yaml(build()["config"])
    second = config_file.render_yaml(build()["config"])
    assert first == second
    top = [line.split(":")[0] for line in first.splitlines() if line and line[0].isalpha()]
    assert top == ["Region", "DevSettings", "Imds", "Image", "HeadNode", "Scheduling", "SharedStorage", "Monitoring"]


def test_config_file_with_duplicate_keys_is_reported(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("Region: us-east-1\nImage:\n  Os: ubuntu2204\n  Os: alinux2023\n")
    config, problems = config_file.load_config_file(str(path))
    assert config["Image"]["Os"] == "alinux2023"
    assert len(problems) == 1 and "appears twice" in problems[0]["message"] and "line 4" in problems[0]["message"]


# --------------------------------------------------------------------------- paths


def test_nested_marshmallow_messages_become_dotted_indexed_paths():
    messages = {"Scheduling": {"SlurmQueues": {0: {"ComputeResources": {1: {"MinCount": ["Not a valid integer."]}},
                                                   "Networking": {"SubnetIds": {0: ["String does not match."]}}}}},
                "_schema": ["top level"]}
    flat = [(cc.format_path(p), m) for p, m in cc._flatten_messages(messages)]  # pylint: disable=protected-access
    assert flat == [
        ("Scheduling.SlurmQueues[0].ComputeResources[1].MinCount", "Not a valid integer."),
        ("Scheduling.SlurmQueues[0].Networking.SubnetIds[0]", "String does not match."),
        ("", "top level"),
    ]
    assert cc.parse_path("SharedStorage[1].FsxLustreSettings.DeploymentType") == (
        "SharedStorage", 1, "FsxLustreSettings", "DeploymentType")


def test_schema_type_errors_are_reported_with_paths():
    config = copy.deepcopy(default_config())
    config["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MaxCount"] = "two"
    config["HeadNode"]["LocalStorage"]["RootVolume"]["DeleteOnTermination"] = "maybe"
    problems = cc.validate_config(config, "ml-training-cluster")[0]
    assert sorted(paths(problems)) == [
        "HeadNode.LocalStorage.RootVolume.DeleteOnTermination",
        "Scheduling.SlurmQueues[0].ComputeResources[0].MaxCount",
    ]


def test_non_mapping_config():
    assert cc.check_rules(["not", "a", "dict"])[0]["message"] == "The cluster config must be a mapping"


# --------------------------------------------------------------------------- role files agree with the code


def test_argument_specs_defaults_and_builder_agree():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    names = {cc.PREFIX + name for name in cc.VARIABLES}
    assert set(specs) == names
    assert set(defaults) <= names
    required = {name for name, spec in specs.items() if spec.get("required")}
    assert not required & set(defaults), "a required option has a role default"
    for name, value in defaults.items():
        if isinstance(value, str) and "{{" in value:
            continue
        assert specs[name].get("default") == value, name
    type_map = {"str": "str", "int": "int", "bool": "bool", "list": "list", "dict": "dict", "raw": "raw"}
    for name, (kind, _required) in cc.VARIABLES.items():
        assert specs[cc.PREFIX + name]["type"] in (type_map[kind], "raw"), name
    queue_options = specs["cluster_config_queues"]["options"]
    assert set(queue_options) == set(cc.QUEUE_KEYS)
    assert set(queue_options["compute_resources"]["options"]) == set(cc.COMPUTE_RESOURCE_KEYS)
    assert set(specs["cluster_config_login_nodes"]["options"]) == set(cc.LOGIN_POOL_KEYS)
