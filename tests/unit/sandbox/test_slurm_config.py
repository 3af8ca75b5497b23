"""sandbox/cookbook/slurm_config.py writes what ParallelCluster's cookbook generators write (fixtures/slurm_config)."""

import copy
import json
import pathlib

import pytest
import yaml

import slurm_config

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "slurm_config"
HEAD = ("ip-1-0-0-0", "ip.1.0.0.0")
OUTPUT_DIR = "/opt/slurm/etc"


def load_case(name):
    case = FIXTURES / name
    config = yaml.safe_load((case / "input.json").read_text())
    types_file = case / "instance_types.json"
    types = json.loads((types_file if types_file.exists() else FIXTURES / "three_queues" / "instance_types.json").read_text())
    return config, types


def expected_files(name):
    root = FIXTURES / name / "expected"
    return {str(path.relative_to(root)): path.read_text() for path in root.rglob("*") if path.is_file()}


def test_three_queues_as_the_cookbook_writes_them():
    config, types = load_case("three_queues")
    files = slurm_config.generate(config, types, HEAD, OUTPUT_DIR, bootstrap_timeout=1600)
    expected = expected_files("three_queues")
    assert {name: files[name] for name in expected} == expected


def test_job_exclusive_allocation_makes_the_partition_exclusive():
    config, types = load_case("job_exclusive")
    files = slurm_config.generate(config, types, HEAD, OUTPUT_DIR)
    expected = expected_files("job_exclusive")
    assert {name: files[name] for name in expected} == expected


def test_the_sandbox_config_with_scaledown_idletime_minus_one_turns_power_saving_off():
    config, types = load_case("guide")
    assert config["Scheduling"]["SlurmSettings"]["ScaledownIdletime"] == -1
    files = slurm_config.generate(config, types, ("ip-10-100-0-10", "10.100.0.10"), OUTPUT_DIR,
                                  bootstrap_timeout=config["DevSettings"]["Timeouts"]["ComputeNodeBootstrapTimeout"])
    expected = expected_files("guide")
    assert {name: files[name] for name in expected} == expected
    assert "SuspendTime=-1\n" in files["slurm_parallelcluster.conf"]


@pytest.mark.parametrize("idletime, suspend_time", [(-1, "-1"), (1, "60"), (10, "600"), (45, "2700")])
def test_suspend_time_is_minus_one_or_minutes_times_sixty(idletime, suspend_time):
    config, types = load_case("guide")
    config["Scheduling"]["SlurmSettings"]["ScaledownIdletime"] = idletime
    text = slurm_config.generate(config, types, HEAD, OUTPUT_DIR)["slurm_parallelcluster.conf"]
    assert [line for line in text.splitlines() if line.startswith("SuspendTime=")] == ["SuspendTime=%s" % suspend_time]


def test_without_static_nodes_there_is_no_suspend_exc_nodes():
    config, types = load_case("guide")
    config["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MinCount"] = 0
    files = slurm_config.generate(config, types, HEAD, OUTPUT_DIR)
    assert "SuspendExcNodes" not in files["slurm_parallelcluster.conf"]
    assert files["slurm_parallelcluster.conf"].endswith("_partition.conf\n\n")
    partition = files["pcluster/slurm_parallelcluster_compute-gpu_partition.conf"]
    assert "-st-" not in partition and "NodeName=compute-gpu-dy-distributed-ml-[1-4] " in partition


def test_without_gpus_in_the_instance_data_nodes_have_no_gres():
    config, types = load_case("guide")
    types = copy.deepcopy(types)
    del types["g5.8xlarge"]["GpuInfo"]
    files = slurm_config.generate(config, types, HEAD, OUTPUT_DIR)
    partition = files["pcluster/slurm_parallelcluster_compute-gpu_partition.conf"]
    assert "Gres=" not in partition and "Feature=static,g5.8xlarge,distributed-ml,efa Weight=1\n" in partition
    assert files["pcluster/slurm_parallelcluster_compute-gpu_gres.conf"] == slurm_config.CONFIG_HEADER + "\n"


def test_a_slurm_database_adds_the_accounting_lines():
    config, types = load_case("guide")
    config["Scheduling"]["SlurmSettings"]["Database"] = {"Uri": "db.example.com:3306"}
    text = slurm_config.generate(config, types, HEAD, OUTPUT_DIR)["slurm_parallelcluster.conf"]
    assert ("SelectTypeParameters=CR_CPU\nAccountingStorageType=accounting_storage/slurmdbd\n"
            "AccountingStorageHost=ip-1-0-0-0\nAccountingStoragePort=6819\nAccountingStorageUser=slurm\n"
            "JobAcctGatherType=jobacct_gather/cgroup\n\ninclude ") in text


def test_custom_slurm_settings_include_file():
    config = yaml.safe_load((FIXTURES / "custom_settings" / "input.json").read_text())
    expected = (FIXTURES / "custom_settings" / "expected.conf").read_text()
    assert slurm_config.custom_settings_include(config["Scheduling"]["SlurmSettings"]) == expected
    assert slurm_config.custom_settings_include({}) == slurm_config.CONFIG_HEADER + "\n\n"


def test_fleet_config():
    config = yaml.safe_load((FIXTURES / "fleet" / "input.json").read_text())
    assert slurm_config.fleet_config(config) == json.loads((FIXTURES / "fleet" / "expected.json").read_text())
    guide, _types = load_case("guide")
    assert slurm_config.fleet_config(guide) == {"compute-gpu": {"distributed-ml": {
        "CapacityType": "on-demand", "Api": "run-instances", "Instances": [{"InstanceType": "g5.8xlarge"}]}}}


def test_a_compute_resource_without_instance_types_is_refused():
    guide, _types = load_case("guide")
    del guide["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["InstanceType"]
    with pytest.raises(ValueError, match="queue: compute-gpu, compute resource: distributed-ml"):
        slurm_config.fleet_config(guide)
