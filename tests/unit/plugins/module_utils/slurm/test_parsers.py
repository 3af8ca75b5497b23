"""Parsers of Slurm's and a node's output, on recorded output of Slurm 22.05 and ParallelCluster nodes."""

import pathlib

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.slurm import parsers as sp

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures" / "slurm"
# Recorded from the sandbox's Slurm 22.05 (a node set DRAIN then DOWN with a reason).
NODE_LINE = (FIXTURES / "scontrol_show_node_down_drain.txt").read_text().splitlines()[0]
SHOW_CONFIG = (FIXTURES / "scontrol_show_config.txt").read_text()


def test_scontrol_record_keeps_values_with_spaces():
    record = sp.parse_scontrol_record(NODE_LINE)
    assert record["NodeName"] == "compute-gpu-st-distributed-ml-1"
    assert record["State"] == "DOWN+DRAIN"
    assert record["OS"] == "Linux 6.18.44-fc-v657 #1 SMP PREEMPT_DYNAMIC @0"
    assert record["Reason"] == "test run [root@2026-11-30T23:25:34]"
    assert record["CfgTRES"] == "cpu=2,mem=1M,billing=2"
    assert record["Gres"] == "gpu:1"
    assert record["AllocTRES"] == ""


def test_scontrol_records_by_name():
    text = NODE_LINE + "\n" + NODE_LINE.replace("ml-1", "ml-2").replace("State=DOWN+DRAIN", "State=IDLE") + "\n"
    records = sp.parse_scontrol_records(text, "NodeName")
    assert sorted(records) == ["compute-gpu-st-distributed-ml-1", "compute-gpu-st-distributed-ml-2"]
    assert records["compute-gpu-st-distributed-ml-2"]["State"] == "IDLE"


def test_partition_records():
    partitions = sp.parse_scontrol_records((FIXTURES / "scontrol_show_partition.txt").read_text(), "PartitionName")
    assert list(partitions) == ["compute-gpu"]
    assert partitions["compute-gpu"]["OverSubscribe"] == "EXCLUSIVE"
    assert partitions["compute-gpu"]["State"] == "UP"
    assert partitions["compute-gpu"]["Nodes"] == "compute-gpu-st-distributed-ml-[1-2]"


@pytest.mark.parametrize("state,parsed", [
    ("DOWN*+DRAIN", ("DOWN", {"NOT_RESPONDING", "DRAIN"})),
    ("idle~", ("IDLE", {"POWERED_DOWN"})),
    ("idle#", ("IDLE", {"POWERING_UP"})),
    ("IDLE+CLOUD+POWERED_DOWN", ("IDLE", {"CLOUD", "POWERED_DOWN"})),
    ("comp", ("COMPLETING", set())),
    ("drng", ("ALLOCATED", {"DRAIN"})),
    ("", ("UNKNOWN", set())),
])
def test_node_state_flags(state, parsed):
    assert sp.parse_node_state(state) == parsed


@pytest.mark.parametrize("gres,count", [
    ("gpu:1", 1), ("gpu:a10g:4(S:0-1)", 4), ("gpu:a10g:2,gpu:t4:1", 3), ("(null)", 0), ("", 0),
    ("gpu:8(S:0-1),shard:8", 8), ("gpu", 1)])
def test_gres_gpus(gres, count):
    assert sp.parse_gres_gpus(gres) == count


def test_os_release_mounts_and_ping():
    assert sp.parse_os_release('ID=ubuntu\nVERSION_ID="22.04"\n# c\n')["VERSION_ID"] == "22.04"
    assert sp.parse_mounts("fs@tcp:/x /lustre lustre rw,flock 0 0\nsrv:/ /my\\040dir nfs4 ro 0 0\n") == {
        "/lustre": sp.Mount("lustre", ["rw", "flock"]), "/my dir": sp.Mount("nfs4", ["ro"])}
    assert sp.parse_scontrol_ping("Slurmctld(primary) at head-node is UP\n") == [("primary", "head-node", "UP")]


def test_show_config():
    config = sp.parse_scontrol_config(SHOW_CONFIG)
    assert config["JobCompLoc"] == "/home/slurm/slurm-job-completions.txt"
    assert config["JobAcctGatherType"] == "jobacct_gather/linux"
    assert config["SlurmdTimeout"] == "1000 sec"
    assert config["SuspendTime"] == "4294967236 sec"
    assert config["SlurmctldParameters"] == "(null)"
    assert len(config) > 150 and not any(key.startswith("Configuration") for key in config)


@pytest.mark.parametrize("name,config_value,shown,same", [
    ("SlurmdTimeout", "1000", "1000 sec", True),
    ("SlurmdTimeout", "1000", "300 sec", False),
    ("OverTimeLimit", "5", "5 min", True),
    ("JobCompType", "jobcomp/filetxt", "jobcomp/filetxt", True),
    ("JobAcctGatherType", "jobacct_gather/linux", "jobacct_gather/none", False),
    ("OverSubscribe", "EXCLUSIVE", "EXCLUSIVE", True),
    ("OverSubscribe", "EXCLUSIVE", "NO", False),
    ("JobCompLoc", "/home/slurm/x.txt", "/home/slurm/X.txt", False),
    # ScaledownIdletime -1: ParallelCluster writes SuspendTime=-60; Slurm 22.05 shows it unsigned.
    ("SuspendTime", "-60", "4294967236 sec", True),
    ("SuspendTime", "-60", "NONE", True),
    ("SuspendTime", "-60", "INFINITE", True),
    ("SuspendTime", "600", "600 sec", True),
    ("SuspendTime", "600", "NONE", False),
    ("SuspendTime", "-60", "600 sec", False),
])
def test_setting_values_compare_as_slurm_means_them(name, config_value, shown, same):
    assert (sp.setting_value(name, config_value) == sp.setting_value(name, shown)) is same


def test_versions_devices_and_plugstack():
    assert sp.docker_version("Docker version 24.0.7, build afdd53b") == "24.0.7"
    assert sp.enroot_version("3.4.1") == "3.4.1"
    assert sp.count_visible_devices("0,1") == 2 and sp.count_visible_devices("") == 0
    assert sp.count_visible_devices("NoDevFiles") == 0
    assert sp.plugstack_includes("# include /x/*\ninclude /opt/slurm/etc/plugstack.conf.d/*\n") == [
        "/opt/slurm/etc/plugstack.conf.d/*"]
    assert sp.plugstack_references("# required /x.so\nrequired /usr/local/lib/slurm/spank_pyxis.so runtime_path=/run/pyxis",
                                   "/usr/local/lib/slurm/spank_pyxis.so")
    assert not sp.plugstack_references("# required /usr/local/lib/slurm/spank_pyxis.so", "/usr/local/lib/slurm/spank_pyxis.so")
