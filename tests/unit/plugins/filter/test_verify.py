"""Expectations derived from a cluster config, and the report formats of the verify role."""


import pytest

from ansible_collections.hpc.pcluster.plugins.filter import verify as v
from ansible_collections.hpc.pcluster.plugins.module_utils import instance_types

GUIDE_CONFIG = {
    "Region": "us-east-1",
    "Image": {"Os": "ubuntu2204"},
    "Scheduling": {
        "Scheduler": "slurm",
        "SlurmSettings": {
            "CustomSlurmSettings": [
                {"JobCompType": "jobcomp/filetxt"},
                {"JobCompLoc": "/home/slurm/slurm-job-completions.txt"},
                {"SlurmdTimeout": 1000},
            ],
        },
        "SlurmQueues": [{
            "Name": "compute-gpu",
            "ComputeResources": [{"Name": "distributed-ml", "InstanceType": "g5.8xlarge", "MinCount": 2,
                                  "MaxCount": 4, "Efa": {"Enabled": True}}],
        }],
    },
    "SharedStorage": [
        {"Name": "shared-workspace-zfs", "StorageType": "FsxOpenZfs", "MountDir": "/fsx"},
        {"Name": "fsx-lustre", "StorageType": "FsxLustre", "MountDir": "/lustre"},
    ],
}


def test_os_from_image():
    assert v.verify_os(GUIDE_CONFIG) == {"id": "ubuntu", "version": "22.04", "label": "ubuntu2204"}
    assert v.verify_os({"Image": {"Os": "alinux2023"}})["id"] == "amzn"
    assert v.verify_os({}) is None


def test_nodes_are_named_like_parallelcluster_names_them():
    nodes = v.verify_nodes(GUIDE_CONFIG, {"g5.8xlarge": {"count": 1}})
    assert [n["name"] for n in nodes] == [
        "compute-gpu-st-distributed-ml-1", "compute-gpu-st-distributed-ml-2",
        "compute-gpu-dy-distributed-ml-1", "compute-gpu-dy-distributed-ml-2"]
    assert [n["static"] for n in nodes] == [True, True, False, False]
    assert all(n["gpus"] == 1 and n["efa"] and n["partition"] == "compute-gpu" for n in nodes)


def test_node_gpus_unknown_without_a_count():
    nodes = v.verify_nodes(GUIDE_CONFIG, {})
    assert nodes[0]["gpus"] == -1


def test_flexible_compute_resource_takes_the_smallest_gpu_count():
    config = {"Scheduling": {"SlurmQueues": [{"Name": "q", "ComputeResources": [{
        "Name": "flex", "Instances": [{"InstanceType": "g5.12xlarge"}, {"InstanceType": "g5.24xlarge"}],
        "MinCount": 1, "MaxCount": 1}]}]}}
    counts = v.verify_gpu_counts([], v.verify_instance_types(config))
    nodes = v.verify_nodes(config, counts)
    assert nodes == [{"name": "q-st-flex-1", "partition": "q", "instance_type": "g5.12xlarge,g5.24xlarge",
                      "gpus": 4, "efa": False, "static": True}]


def test_partitions_storage_and_job_comp_loc():
    assert v.verify_partitions(GUIDE_CONFIG) == ["compute-gpu"]
    assert v.verify_storage(GUIDE_CONFIG) == [
        {"name": "shared-workspace-zfs", "mount": "/fsx", "storage_type": "FsxOpenZfs", "fstypes": ["nfs", "nfs4"]},
        {"name": "fsx-lustre", "mount": "/lustre", "storage_type": "FsxLustre", "fstypes": ["lustre"]},
    ]
    assert v.verify_job_comp_loc(GUIDE_CONFIG) == "/home/slurm/slurm-job-completions.txt"
    assert v.verify_job_comp_loc({"Scheduling": {"SlurmSettings": {"CustomSlurmSettings": [
        {"JobCompType": "jobcomp/elasticsearch"}, {"JobCompLoc": "http://es:9200"}]}}}) == ""


def test_gpu_counts_prefer_ec2_then_table():
    ec2 = [{"instance_type": "g5.8xlarge",
            "gpu_info": {"gpus": [{"count": 1, "manufacturer": "NVIDIA", "name": "A10G"}]}},
           {"InstanceType": "m5.8xlarge"}]
    counts = v.verify_gpu_counts(ec2, ["g5.8xlarge", "m5.8xlarge", "p5.48xlarge", "x9.huge"])
    assert counts["g5.8xlarge"] == {"count": 1, "model": "NVIDIA A10G", "source": "EC2 DescribeInstanceTypes"}
    assert counts["m5.8xlarge"]["count"] == 0 and counts["m5.8xlarge"]["source"].startswith("EC2")
    assert counts["p5.48xlarge"] == {"count": 8, "model": "NVIDIA H100", "source": "built-in table"}
    assert counts["x9.huge"]["count"] == 0  # not a GPU family
    assert v.verify_gpu_counts([], ["g5.8xlarge"], {"g5.8xlarge": 2})["g5.8xlarge"]["count"] == 2


@pytest.mark.parametrize("itype,count", [
    ("g4dn.xlarge", 1), ("g4dn.12xlarge", 4), ("g5.48xlarge", 8), ("g6.8xlarge", 1), ("p4d.24xlarge", 8),
    ("p4de.24xlarge", 8), ("p5.48xlarge", 8), ("p5e.48xlarge", 8), ("g5.99xlarge", -1), ("p9.48xlarge", -1)])
def test_builtin_table(itype, count):
    assert instance_types.builtin_gpu_info(itype)["count"] == count


def test_not_available_lines_name_the_subject_of_a_check():
    # Two storage_type checks per node (one per mount) with the same reason are two lines, each naming its mount.
    checks = [dict(check="storage_type", node=node, subject=mount, status="not_available", expected="", seen="",
                   hint="not an FSx file system") for mount in ("/fsx", "/lustre") for node in ("head", "c-1")]
    assert v.verify_not_available_lines(checks) == [
        "not available: storage_type /fsx on head, c-1 (not an FSx file system)",
        "not available: storage_type /lustre on head, c-1 (not an FSx file system)"]


def test_slurm_settings_the_config_sets():
    settings = v.verify_slurm_settings(GUIDE_CONFIG)
    custom = "Scheduling.SlurmSettings.CustomSlurmSettings"
    assert settings == [
        {"name": "SuspendTime", "value": "600", "source": "Scheduling.SlurmSettings.ScaledownIdletime: 10 (default)"},
        {"name": "JobCompType", "value": "jobcomp/filetxt", "source": custom},
        {"name": "JobCompLoc", "value": "/home/slurm/slurm-job-completions.txt", "source": custom},
        {"name": "SlurmdTimeout", "value": "1000", "source": custom},
    ]
    config = {"Scheduling": {"Scheduler": "slurm", "SlurmSettings": {"ScaledownIdletime": -1}}}
    assert v.verify_slurm_settings(config) == [
        {"name": "SuspendTime", "value": "-60", "source": "Scheduling.SlurmSettings.ScaledownIdletime: -1"}]
    assert v.verify_slurm_settings({"Scheduling": {"Scheduler": "awsbatch"}}) == []
    assert v.verify_slurm_settings({}) == []


def test_partition_settings_the_config_sets():
    config = {"Scheduling": {"Scheduler": "slurm", "SlurmQueues": [
        {"Name": "gpu", "JobExclusiveAllocation": True}, {"Name": "cpu"}]}}
    assert v.verify_partition_settings(config) == [
        {"partition": "gpu", "name": "OverSubscribe", "value": "EXCLUSIVE",
         "source": "SlurmQueues[gpu].JobExclusiveAllocation: true"},
        {"partition": "cpu", "name": "OverSubscribe", "value": "NO", "source": "SlurmQueues[cpu].JobExclusiveAllocation: false"}]


def test_group_data_keeps_what_a_group_returned_besides_its_checks():
    groups = {"slurm": {"checks": [{"check": "x"}], "jobs": [{"job_id": "1"}], "elapsed": 1.5, "changed": False,
                        "failed": False, "failed_checks": 0, "invocation": {"module_args": {}}}}
    assert v.verify_group_data(groups) == {"slurm": {"jobs": [{"job_id": "1"}], "elapsed": 1.5}}
