"""The collection's offline rules and validate_config (plugins/module_utils/config_rules.py)."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.module_utils.config import rules
from ansible_collections.hpc.pcluster.tests.unit.fixtures.guide.guide import guide_config, valid_guide_config


def paths(problems):
    return [p["path"] for p in problems]


def test_guide_config_fails_with_exactly_the_fsx_lustre_deployment_type_error():
    problems, schema_checked, note = rules.validate_config(guide_config(), "ml-training-cluster")
    assert schema_checked and note == ""
    assert len(problems) == 1, problems
    (only,) = problems
    assert only["path"] == "SharedStorage[1].FsxLustreSettings.DeploymentType"
    assert only["value"] == "PERSISTENT_1"
    assert "cannot be specified when an existing Lustre file system is used" in only["message"]
    assert "Remove DeploymentType" in only["fix"]


def test_guide_config_without_deployment_type_passes():
    assert rules.validate_config(valid_guide_config(), "ml-training-cluster")[:2] == ([], True)


def test_fsx_lustre_file_system_id_with_other_keys_names_each_key():
    config = valid_guide_config()
    config["SharedStorage"][1]["FsxLustreSettings"].update(DeploymentType="PERSISTENT_2", StorageCapacity=1200)
    problems = rules.validate_config(config, "ml-training-cluster")[0]
    assert sorted(paths(problems)) == [
        "SharedStorage[1].FsxLustreSettings.DeploymentType",
        "SharedStorage[1].FsxLustreSettings.StorageCapacity",
    ]


def test_every_problem_is_reported_at_once():
    config = guide_config()
    config["HeadNode"]["Networking"]["SubnetId"] = "subnet-bad"
    config["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MinCount"] = 9
    config["Scheduling"]["SlurmSettings"]["CustomSlurmSettings"].append({"Prolog": "/bin/true"})
    config["Image"]["Os"] = "centos7"
    problems = rules.validate_config(config, "ml-training-cluster")[0]
    assert set(paths(problems)) >= {
        "HeadNode.Networking.SubnetId",
        "Scheduling.SlurmQueues[0].ComputeResources[0].MinCount",
        "Scheduling.SlurmSettings.CustomSlurmSettings[4].Prolog",
        "Image.Os",
        "SharedStorage[1].FsxLustreSettings.DeploymentType",
    }
    assert all(p["fix"] for p in problems)


def test_unknown_key_in_a_handwritten_config_is_caught_by_the_schema():
    config = valid_guide_config()
    config["HeadNode"]["InstanceTyp"] = "m5.large"
    problems = rules.validate_config(config, "ml-training-cluster")[0]
    assert [(p["path"], p["message"]) for p in problems] == [("HeadNode.InstanceTyp", "Unknown field.")]


def test_duplicate_queue_and_compute_resource_names():
    config = valid_guide_config()
    queue = config["Scheduling"]["SlurmQueues"][0]
    queue["ComputeResources"].append(dict(queue["ComputeResources"][0]))
    config["Scheduling"]["SlurmQueues"].append(dict(queue, ComputeResources=[queue["ComputeResources"][0]]))
    problems = rules.check_rules(config)
    assert "Scheduling.SlurmQueues[1].Name" in paths(problems)
    assert "Scheduling.SlurmQueues[0].ComputeResources[1].Name" in paths(problems)
    assert any("is used twice" in p["message"] for p in problems)


def test_accounting_settings_are_denied_only_with_a_database():
    config = valid_guide_config()
    assert rules.check_rules(config) == []  # the guide's JobAcctGatherType is fine without a database
    config["Scheduling"]["SlurmSettings"]["Database"] = {
        "Uri": "db.example.com:3306", "UserName": "slurm",
        "PasswordSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:slurm"}
    assert "Scheduling.SlurmSettings.CustomSlurmSettings[2].JobAcctGatherType" in paths(rules.check_rules(config))
    assert "the limit is 40" in rules.check_rules(config, "c" * 41)[0]["message"]


def test_queue_and_compute_resource_level_deny_lists():
    config = valid_guide_config()
    queue = config["Scheduling"]["SlurmQueues"][0]
    queue["CustomSlurmSettings"] = {"OverSubscribe": "YES", "MaxTime": "1-00:00:00"}
    queue["ComputeResources"][0]["CustomSlurmSettings"] = {"Weight": 5, "RealMemory": 1000}
    assert sorted(paths(rules.check_rules(config))) == [
        "Scheduling.SlurmQueues[0].ComputeResources[0].CustomSlurmSettings.Weight",
        "Scheduling.SlurmQueues[0].CustomSlurmSettings.OverSubscribe",
    ]


def test_deny_list_matches_pcluster():
    from pcluster.validators.slurm_settings_validator import SLURM_SETTINGS_DENY_LIST

    ours = {level: {ctx: sorted(v) for ctx, v in contexts.items()} for level, contexts in rules.SLURM_DENY_LIST.items()}
    theirs = {level: {ctx: sorted(v) for ctx, v in contexts.items()}
              for level, contexts in SLURM_SETTINGS_DENY_LIST.items()}
    assert ours == theirs


def test_supported_oses_match_pcluster():
    from pcluster.constants import SUPPORTED_OSES

    assert sorted(rules.SUPPORTED_OSES) == sorted(SUPPORTED_OSES)


def test_capacity_block_needs_a_reservation_and_static_nodes():
    config = valid_guide_config()
    queue = config["Scheduling"]["SlurmQueues"][0]
    queue["CapacityType"] = "CAPACITY_BLOCK"
    queue["ComputeResources"][0]["MinCount"] = 0
    found = {p["path"]: p["message"] for p in rules.check_rules(config)}
    base = "Scheduling.SlurmQueues[0].ComputeResources[0]"
    assert "reservation id" in found[base + ".CapacityReservationTarget"]
    assert "must equal MaxCount" in found[base + ".MaxCount"]


def test_markup_and_control_characters_in_keys_and_values():
    config = valid_guide_config()
    config["Tags"] = [{"Key": "owner", "Value": "{{ lookup('pipe', 'id') }}"}, {"Key": "u", "Value": "${USER}"}]
    config["HeadNode"]["Networking"]["SubnetId"] = "subnet-0123456789abcdef0\nInjected: true"
    found = {(p["path"], p["message"].split(" (")[0].split(";")[0]) for p in rules.check_rules(config)}
    assert ("Tags[0].Value", "The value holds Jinja2 template markup") in found
    assert ("Tags[1].Value", "The value holds an unsubstituted shell variable") in found
    assert ("HeadNode.Networking.SubnetId", "The value holds a line break or control character") in found


def test_non_mapping_config():
    assert rules.check_rules(["not", "a", "dict"])[0]["message"] == "The cluster config must be a mapping"
    assert rules.validate_config(["not", "a", "dict"])[1] is False


def test_scaledown_idletime_minus_one_with_dynamic_nodes_is_a_problem():
    # ParallelCluster writes SuspendTime=-1 for -1, and slurmctld then never powers a dynamic node up.
    config = valid_guide_config()
    slurm = config["Scheduling"]["SlurmSettings"]
    assert slurm["ScaledownIdletime"] == -1
    queue = config["Scheduling"]["SlurmQueues"][0]
    queue["ComputeResources"][0].update(MinCount=2, MaxCount=4)
    queue["ComputeResources"].append({"Name": "spare", "InstanceType": "g5.8xlarge"})  # 0 to 10 when left out

    problems = rules.validate_config(config, "ml-training-cluster")[0]

    assert paths(problems) == ["Scheduling.SlurmSettings.ScaledownIdletime"]
    assert problems[0]["value"] == -1
    assert ("the dynamic nodes of Scheduling.SlurmQueues[0].ComputeResources[0], "
            "Scheduling.SlurmQueues[0].ComputeResources[1] (MinCount < MaxCount) would never be powered up"
            in problems[0]["message"])
    assert "ScaledownIdletime to 1 or more" in problems[0]["fix"] and "MinCount = MaxCount" in problems[0]["fix"]


def test_scaledown_idletime_minus_one_is_fine_with_static_nodes_and_any_positive_value_with_dynamic_ones():
    config = valid_guide_config()
    assert rules.check_rules(config, "ml-training-cluster") == []  # MinCount = MaxCount = 2
    config["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0].update(MinCount=0, MaxCount=4)
    config["Scheduling"]["SlurmSettings"]["ScaledownIdletime"] = 1
    assert rules.check_rules(config, "ml-training-cluster") == []
    del config["Scheduling"]["SlurmSettings"]["ScaledownIdletime"]  # ParallelCluster's default: 10
    assert rules.check_rules(config, "ml-training-cluster") == []
