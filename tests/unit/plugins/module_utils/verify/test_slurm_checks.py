"""The checks of Slurm itself, on recorded scontrol output."""

from ansible_collections.hpc.pcluster.plugins.module_utils.verify import slurm_checks as sc
from ansible_collections.hpc.pcluster.plugins.module_utils.slurm.parsers import parse_scontrol_config
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.check_report import CheckReport

SHOW_CONFIG = parse_scontrol_config("""Configuration data as of 2026-11-30T23:16:11
JobAcctGatherType       = jobacct_gather/none
JobCompLoc              = /home/slurm/slurm-job-completions.txt
JobCompType             = jobcomp/filetxt
SlurmdTimeout           = 300 sec
SuspendTime             = 4294967236 sec
""")
CUSTOM = "Scheduling.SlurmSettings.CustomSlurmSettings"


def by_expected(report):
    return dict((c["expected"].split(" = ")[0], c) for c in report.checks)


def test_settings_the_config_asks_for_are_compared_with_what_slurm_runs():
    report = CheckReport({})
    expected = [{"name": "SuspendTime", "value": "-60", "source": "Scheduling.SlurmSettings.ScaledownIdletime: -1"},
                {"name": "JobCompType", "value": "jobcomp/filetxt", "source": CUSTOM},
                {"name": "jobacctgathertype", "value": "jobacct_gather/linux", "source": CUSTOM},
                {"name": "SlurmdTimeout", "value": "1000", "source": CUSTOM},
                {"name": "PrivateData", "value": "jobs", "source": CUSTOM}]
    sc.check_slurm_settings(report, "head", expected, SHOW_CONFIG, 0, "")
    checks = by_expected(report)
    assert checks["SuspendTime"]["status"] == "passed"
    assert checks["SuspendTime"]["expected"] == (
        "SuspendTime = -60 (power saving off) (Scheduling.SlurmSettings.ScaledownIdletime: -1)")
    assert checks["SuspendTime"]["seen"] == "4294967236 sec (power saving off)"
    assert checks["JobCompType"]["status"] == "passed"
    assert checks["jobacctgathertype"]["status"] == "failed"
    assert checks["jobacctgathertype"]["seen"] == "jobacct_gather/none"
    assert checks["SlurmdTimeout"]["status"] == "failed"
    assert checks["SlurmdTimeout"]["expected"] == "SlurmdTimeout = 1000 (%s)" % CUSTOM
    assert checks["SlurmdTimeout"]["hint"].startswith("Slurm runs SlurmdTimeout=300 sec but the config asks for 1000")
    assert checks["PrivateData"]["status"] == "not_available"
    assert checks["PrivateData"]["hint"] == "scontrol show config does not list PrivateData"


def test_settings_fail_when_scontrol_fails():
    report = CheckReport({})
    sc.check_slurm_settings(report, "head", [{"name": "SlurmdTimeout", "value": "1000"}], {}, 1, "Unable to contact")
    assert report.checks[0]["status"] == "failed"
    assert report.checks[0]["seen"] == "scontrol show config failed: Unable to contact"


def test_partition_settings():
    partitions = {"gpu": {"PartitionName": "gpu", "OverSubscribe": "EXCLUSIVE"},
                  "cpu": {"PartitionName": "cpu", "OverSubscribe": "NO"}}
    expected = [{"partition": "gpu", "name": "OverSubscribe", "value": "EXCLUSIVE", "source": "x"},
                {"partition": "cpu", "name": "OverSubscribe", "value": "EXCLUSIVE", "source": "y"},
                {"partition": "gone", "name": "OverSubscribe", "value": "NO", "source": "z"}]
    report = CheckReport({})
    sc.check_partition_settings(report, expected, partitions, 0)
    assert [(c["node"], c["status"], c["seen"]) for c in report.checks] == [
        ("gpu", "passed", "EXCLUSIVE"), ("cpu", "failed", "NO")]


def test_usable_nodes_for_the_test_job():
    nodes = [{"name": "st-1", "partition": "q", "static": True}, {"name": "st-2", "partition": "q", "static": True},
             {"name": "dy-1", "partition": "q", "static": False}, {"name": "dy-2", "partition": "q", "static": False}]
    slurm = {"st-1": {"State": "IDLE"}, "st-2": {"State": "IDLE+CLOUD+POWERING_UP"},
             "dy-1": {"State": "IDLE+CLOUD+POWERED_DOWN"}, "dy-2": {"State": "IDLE+CLOUD"}}
    report = CheckReport({})
    assert sc.check_nodes(report, nodes, slurm, 0, "") == ["st-1", "dy-2"]
    assert [c["status"] for c in report.checks] == ["passed", "failed", "passed", "passed"]
    assert "static node is still powering up" in report.checks[1]["hint"]
    assert sc.check_nodes(CheckReport({}), nodes, slurm, 0, "", run_dynamic=True) == ["st-1", "dy-1", "dy-2"]


def test_a_node_held_for_its_setup_fails_with_where_to_look_and_what_to_run():
    nodes = [{"name": "st-1", "partition": "q", "static": True}, {"name": "dy-1", "partition": "q", "static": False}]
    slurm = {"st-1": {"State": "IDLE+MAINTENANCE+RESERVED"}, "dy-1": {"State": "IDLE+CLOUD+POWERED_DOWN"}}
    holds = {"st-1": "hpc-pcluster-node-setup-st-1", "dy-1": "hpc-pcluster-node-setup-dy-1"}
    report = CheckReport({})
    assert sc.check_nodes(report, nodes, slurm, 0, "", holds=holds) == []
    assert [c["status"] for c in report.checks] == ["failed", "failed"]
    assert report.checks[0]["seen"] == ("IDLE+MAINTENANCE+RESERVED, held for its node setup (Slurm reservation "
                                        "hpc-pcluster-node-setup-st-1)")
    assert "/var/log/hpc-pcluster/node-setup.log" in report.checks[0]["hint"]
    assert "playbooks/containers.yml" in report.checks[0]["hint"]


def test_os_and_partitions():
    report = CheckReport({})
    sc.check_os(report, "head", {"id": "ubuntu", "version": "22.04", "label": "ubuntu2204"},
                'ID=ubuntu\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.5 LTS"\n')
    sc.check_os(report, "head", {"id": "amzn", "version": "2023"}, 'ID=ubuntu\nVERSION_ID="22.04"\n')
    sc.check_partitions(report, ["q", "other"], {"q": {"State": "INACTIVE", "Nodes": "q-st-cr-1"}}, 0, "")
    assert [(c["check"], c["status"]) for c in report.checks] == [
        ("os_release", "passed"), ("os_release", "failed"), ("partition", "failed"), ("partition", "failed")]
    assert report.checks[2]["hint"] == "bring it up: scontrol update partitionname=q state=up"
    assert report.checks[3]["seen"] == "missing (have: q)"


def test_job_completion_log_waits_for_the_record(tmp_path):
    log = tmp_path / "jobcomp.txt"
    log.write_text("")
    reads = []

    def read_file(path):
        reads.append(path)
        if len(reads) == 3:
            log.write_text("JobId=42 UserId=root(0) Name=hpc-pcluster-verify-1 JobState=COMPLETED\n")
        return log.read_text()

    clock = iter(range(100)).__next__
    report = CheckReport({})
    sc.check_job_completion(report, "head", str(log), {"JobCompLoc": str(log), "JobCompType": "jobcomp/filetxt"},
                            [{"job_id": "42", "job_name": "hpc-pcluster-verify-1"}], False, read_file,
                            clock=clock, sleep=lambda s: None)
    assert report.checks[0]["status"] == "passed" and len(reads) == 3
    report = CheckReport({})
    sc.check_job_completion(report, "head", str(log), {"JobCompLoc": "/elsewhere"}, [], False, read_file)
    assert report.checks[0]["seen"] == "Slurm writes /elsewhere (JobCompType=)"


def test_find_slurm_bin(tmp_path):
    assert sc.find_slurm_bin("/opt/x", "") == "/opt/x"
    (tmp_path / "scontrol").write_text("#!/bin/sh\n")
    (tmp_path / "scontrol").chmod(0o755)
    assert sc.find_slurm_bin("", str(tmp_path)) == str(tmp_path)
