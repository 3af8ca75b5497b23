"""The head-node probe of the verify role: parsers, and whole runs against a fake Slurm."""

import json
import os
import stat
import textwrap

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpc.pcluster.plugins.modules import slurm_verify as sv

NODE_LINE = (
    "NodeName=compute-gpu-st-distributed-ml-1 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUEfctv=2 CPUTot=2 "
    "CPULoad=0.10 AvailableFeatures=(null) ActiveFeatures=(null) Gres=gpu:1 NodeAddr=10.1.1.11 "
    "NodeHostName=compute-gpu-st-distributed-ml-1 Version=22.05.8 OS=Linux 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC "
    "Debian 6.1.76-1 (2024-02-01)  RealMemory=1 AllocMem=0 FreeMem=1000 Sockets=2 Boards=1 State=DOWN+DRAIN "
    "ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=compute-gpu "
    "CfgTRES=cpu=2,mem=1M,billing=2,gres/gpu=1 AllocTRES= CapWatts=n/a Reason=test run [root@2026-11-28T23:50:00]"
)


def test_scontrol_record_keeps_values_with_spaces():
    record = sv.parse_scontrol_record(NODE_LINE)
    assert record["NodeName"] == "compute-gpu-st-distributed-ml-1"
    assert record["State"] == "DOWN+DRAIN"
    assert record["OS"].startswith("Linux 6.1.0-18-amd64 #1 SMP")
    assert record["Reason"] == "test run [root@2026-11-28T23:50:00]"
    assert record["CfgTRES"] == "cpu=2,mem=1M,billing=2,gres/gpu=1"
    assert record["Gres"] == "gpu:1"
    assert record["AllocTRES"] == ""


def test_scontrol_records_by_name():
    text = NODE_LINE + "\n" + NODE_LINE.replace("ml-1", "ml-2").replace("State=DOWN+DRAIN", "State=IDLE") + "\n"
    records = sv.parse_scontrol_records(text, "NodeName")
    assert sorted(records) == ["compute-gpu-st-distributed-ml-1", "compute-gpu-st-distributed-ml-2"]
    assert records["compute-gpu-st-distributed-ml-2"]["State"] == "IDLE"


@pytest.mark.parametrize("state,static,ok", [
    ("IDLE", True, True), ("ALLOCATED", True, True), ("MIXED", True, True), ("mix", True, True),
    ("IDLE+DRAIN", True, False), ("DOWN", True, False), ("DOWN*", True, False), ("IDLE*", True, False),
    ("IDLE+CLOUD+POWERED_DOWN", True, False), ("idle~", True, False), ("drain", True, False),
    ("IDLE+CLOUD+POWERED_DOWN", False, True), ("idle~", False, True), ("idle#", False, True),
    ("IDLE", False, True), ("DOWN+CLOUD+POWERED_DOWN", False, True), ("DOWN*+CLOUD", False, False),
    ("IDLE+DRAIN+CLOUD+POWERED_DOWN", False, False), ("ALLOCATED+COMPLETING", True, True),
])
def test_node_states(state, static, ok):
    assert sv.judge_node_state(state, static)[0] is ok


def test_node_state_flags():
    assert sv.parse_node_state("DOWN*+DRAIN") == ("DOWN", {"NOT_RESPONDING", "DRAIN"})
    assert sv.parse_node_state("idle~") == ("IDLE", {"POWERED_DOWN"})


@pytest.mark.parametrize("gres,count", [
    ("gpu:1", 1), ("gpu:a10g:4(S:0-1)", 4), ("gpu:a10g:2,gpu:t4:1", 3), ("(null)", 0), ("", 0),
    ("gpu:8(S:0-1),shard:8", 8), ("gpu", 1)])
def test_gres_gpus(gres, count):
    assert sv.parse_gres_gpus(gres) == count


def test_small_parsers():
    assert sv.parse_os_release('ID=ubuntu\nVERSION_ID="22.04"\n# c\n')["VERSION_ID"] == "22.04"
    assert sv.parse_mounts("fs@tcp:/x /lustre lustre rw 0 0\nsrv:/ /my\\040dir nfs4 rw 0 0\n") == {
        "/lustre": "lustre", "/my dir": "nfs4"}
    assert sv.parse_scontrol_ping("Slurmctld(primary) at head-node is UP\n") == [("primary", "head-node", "UP")]
    assert sv.parse_scontrol_config("Configuration data as of x\nJobCompLoc              = /home/slurm/x.txt\n"
                                    "JobCompType             = jobcomp/filetxt\n") == {
        "JobCompLoc": "/home/slurm/x.txt", "JobCompType": "jobcomp/filetxt"}
    assert sv.docker_version("Docker version 24.0.7, build afdd53b") == "24.0.7"
    assert sv.enroot_version("3.4.1") == "3.4.1"
    assert sv.count_visible_devices("0,1") == 2 and sv.count_visible_devices("") == 0
    assert sv.plugstack_references("# required /x.so\nrequired /usr/local/lib/slurm/spank_pyxis.so runtime_path=/run/pyxis",
                                   "/usr/local/lib/slurm/spank_pyxis.so")
    assert not sv.plugstack_references("# required /usr/local/lib/slurm/spank_pyxis.so", "/usr/local/lib/slurm/spank_pyxis.so")


def test_probe_output_by_node():
    text = "noise\n@@hpc-pcluster-verify\tn1\thostname\tn1\n@@hpc-pcluster-verify\tn1\tnvidia_smi\tGPU 0: A10G\n" \
           "@@hpc-pcluster-verify\tn2\tfstype:/fsx\t\n"
    assert sv.parse_probe_output(text) == {"n1": {"hostname": ["n1"], "nvidia_smi": ["GPU 0: A10G"]},
                                           "n2": {"fstype:/fsx": [""]}}


def test_report_marks_not_available_never_passed():
    report = sv.Report({"efa": "not available in the sandbox"})
    report.add("efa", "n1", "x", "y", True)
    report.add("docker", "n1", "x", "y", False, "install it")
    report.add("nvidia_smi", "n1", "x", "y", False, "h", unavailable_reason="nvidia-smi not found on the node")
    assert [c["status"] for c in report.checks] == ["not_available", "failed", "not_available"]
    assert report.checks[0]["hint"] == "not available in the sandbox"


# ---------------------------------------------------------------------------
# Whole module runs against a fake Slurm (shell scripts standing in for scontrol/squeue/srun).
# ---------------------------------------------------------------------------

FAKE_SCONTROL = """#!/bin/sh
case "$*" in
  ping) echo "Slurmctld(primary) at head is UP" ;;
  "-o show partition") echo "PartitionName=compute-gpu AllowGroups=ALL Nodes=compute-gpu-st-distributed-ml-[1-2] State=UP TotalCPUs=4" ;;
  "-o show node") cat "$FAKE_DIR/nodes.txt" ;;
  "show config")
    printf 'JobCompLoc              = %s\\n' "$FAKE_DIR/jobcomp.txt"
    printf 'JobCompType             = jobcomp/filetxt\\nPlugStackConfig         = %s/plugstack.conf\\n' "$FAKE_DIR" ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""

FAKE_SQUEUE = """#!/bin/sh
echo "7|compute-gpu|RUNNING|compute-gpu-st-distributed-ml-1"
"""

# srun: runs the probe once per node of --nodelist with SLURMD_NODENAME set, like one task per node.
FAKE_SRUN = """#!/bin/sh
echo "$*" >> "$FAKE_DIR/srun.log"
if [ "$1" = "--help" ]; then echo "      --container-image=[USER@][REGISTRY#]IMAGE[:TAG]|PATH"; exit 0; fi
nodes=""; gpus=0; name=""
while [ $# -gt 0 ]; do
  case "$1" in
    --nodelist=*) nodes=$(echo "${1#--nodelist=}" | tr ',' ' ') ;;
    --gpus-per-node=*) gpus=${1#--gpus-per-node=} ;;
    --job-name=*) name=${1#--job-name=} ;;
    /bin/sh) shift; break ;;
  esac
  shift
done
[ "$1" = "-c" ] || exit 3
for n in $nodes; do
  cuda=""; i=0; while [ $i -lt $gpus ]; do cuda="$cuda${cuda:+,}$i"; i=$((i+1)); done
  SLURMD_NODENAME=$n SLURM_JOB_ID=42 CUDA_VISIBLE_DEVICES=$cuda /bin/sh -c "$2"
done
echo "JobId=42 UserId=root(0) Name=$name JobState=COMPLETED" >> "$FAKE_DIR/jobcomp.txt"
"""


def _exe(path, text):
    path.write_text(textwrap.dedent(text))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _exe(bindir / "scontrol", FAKE_SCONTROL)
    _exe(bindir / "squeue", FAKE_SQUEUE)
    _exe(bindir / "srun", FAKE_SRUN)
    line = NODE_LINE.replace("State=DOWN+DRAIN", "State=IDLE").replace(" Reason=test run [root@2026-11-28T23:50:00]", "")
    (tmp_path / "nodes.txt").write_text(line + "\n" + line.replace("ml-1", "ml-2") + "\n")
    (tmp_path / "plugstack.conf").write_text("include %s/plugstack.conf.d/*\n" % tmp_path)
    (tmp_path / "plugstack.conf.d").mkdir()
    (tmp_path / "shared").mkdir()
    monkeypatch.setenv("FAKE_DIR", str(tmp_path))
    return tmp_path


def run_module(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            sv.main()
    return json.loads(capsys.readouterr().out)


def base_args(fake, **extra):
    args = {
        "slurm_bin_dir": str(fake / "bin"),
        "head_node": "head",
        "partitions": ["compute-gpu"],
        "nodes": [{"name": "compute-gpu-st-distributed-ml-%d" % i, "partition": "compute-gpu",
                   "instance_type": "g5.8xlarge", "gpus": 1} for i in (1, 2)],
        "containers": False,
        "_ansible_check_mode": False,
    }
    args.update(extra)
    return args


def by_key(result):
    return dict(((c["check"], c["node"]), c) for c in result["checks"])


def test_healthy_fake_cluster(fake_slurm, capsys):
    result = run_module(capsys, base_args(fake_slurm, job_comp_loc=str(fake_slurm / "jobcomp.txt"),
                                          not_available={"nvidia_smi": "not available in the sandbox"}))
    checks = by_key(result)
    assert checks[("slurm_controller", "head")]["status"] == "passed"
    assert checks[("partition", "compute-gpu")]["status"] == "passed"
    for n in (1, 2):
        name = "compute-gpu-st-distributed-ml-%d" % n
        assert checks[("node_state", name)]["status"] == "passed"
        assert checks[("srun", name)]["status"] == "passed"
        assert checks[("gpu_count", name)]["status"] == "passed"
        assert "granted by Slurm" in checks[("gpu_count", name)]["seen"]
        assert checks[("nvidia_smi", name)]["status"] == "not_available"
    assert checks[("job_completion_log", "head")]["status"] == "passed"
    assert checks[("squeue", "head")]["seen"] == "1 job(s), 1 running"
    # One srun for both nodes, asking for the GPUs Slurm knows.
    sruns = [line for line in (fake_slurm / "srun.log").read_text().splitlines() if line.startswith("--partition")]
    assert len(sruns) == 1
    assert "--nodelist=compute-gpu-st-distributed-ml-1,compute-gpu-st-distributed-ml-2" in sruns[0]
    assert "--gpus-per-node=1" in sruns[0]
    assert result["failed_checks"] == 0 and result["changed"] is False


def test_down_node_is_named_and_left_out_of_the_job(fake_slurm, capsys):
    nodes = (fake_slurm / "nodes.txt").read_text().splitlines()
    nodes[0] = NODE_LINE
    (fake_slurm / "nodes.txt").write_text("\n".join(nodes) + "\n")
    result = run_module(capsys, base_args(fake_slurm, not_available={"nvidia_smi": "sandbox"}))
    checks = by_key(result)
    down = checks[("node_state", "compute-gpu-st-distributed-ml-1")]
    assert down["status"] == "failed"
    assert down["seen"] == "DOWN+DRAIN Reason=test run [root@2026-11-28T23:50:00]"
    assert "scontrol update nodename=compute-gpu-st-distributed-ml-1 state=resume" in down["hint"]
    assert checks[("srun", "compute-gpu-st-distributed-ml-1")]["status"] == "failed"
    assert checks[("srun", "compute-gpu-st-distributed-ml-2")]["status"] == "passed"
    assert "--nodelist=compute-gpu-st-distributed-ml-2 " in (fake_slurm / "srun.log").read_text()


def test_missing_nvidia_smi_fails_clearly_when_required(fake_slurm, capsys):
    result = run_module(capsys, base_args(fake_slurm, require_nvidia_smi=True))
    check = by_key(result)[("nvidia_smi", "compute-gpu-st-distributed-ml-1")]
    assert check["status"] == "failed"
    assert check["seen"] == "nvidia-smi not found"
    assert "should carry 1 GPU(s) but has no nvidia-smi" in check["hint"]
    result = run_module(capsys, base_args(fake_slurm, require_nvidia_smi=False))
    check = by_key(result)[("nvidia_smi", "compute-gpu-st-distributed-ml-1")]
    assert check["status"] == "not_available" and check["hint"] == "nvidia-smi not found on the node"


def test_gpu_count_mismatch(fake_slurm, capsys):
    args = base_args(fake_slurm, require_nvidia_smi=False)
    for node in args["nodes"]:
        node["gpus"] = 4
    check = by_key(run_module(capsys, args))[("gpu_count", "compute-gpu-st-distributed-ml-2")]
    assert check["status"] == "failed" and check["expected"] == "4 (g5.8xlarge)"
    assert check["seen"].startswith("1 granted by Slurm")


def test_storage_on_head_and_compute(fake_slurm, capsys):
    shared = str(fake_slurm / "shared")
    result = run_module(capsys, base_args(fake_slurm, not_available={"nvidia_smi": "sandbox"},
                                          storage=[{"mount": "/", "storage_type": "Ebs", "fstypes": ["no-such-fs"]},
                                                   {"mount": shared, "fstypes": []}]))
    root = dict(((c["check"], c["node"]), c) for c in result["checks"] if c["expected"].startswith(("/ ", "/:")))
    assert root[("storage_mount", "head")]["status"] == "passed"  # "/" is mounted and writable as root
    assert root[("storage_type", "head")]["status"] == "failed"
    assert "expected no-such-fs for Ebs" in root[("storage_type", "head")]["hint"]
    assert root[("storage_mount", "compute-gpu-st-distributed-ml-1")]["status"] == "passed"
    # A directory that is not a mount point is reported as not mounted.
    missing = [c for c in result["checks"] if c["check"] == "storage_mount" and "shared" in c["expected"]]
    assert missing and all(c["status"] == "failed" and c["seen"] == "not mounted" for c in missing)


def test_containers_and_pyxis(fake_slurm, capsys, monkeypatch):
    bindir = fake_slurm / "bin"
    _exe(bindir / "docker", "#!/bin/sh\necho 'Docker version 24.0.7, build afdd53b'\n")
    plugin = fake_slurm / "spank_pyxis.so"
    plugin.write_text("")
    (fake_slurm / "plugstack.conf.d" / "pyxis.conf").write_text("required %s runtime_path=/run/pyxis\n" % plugin)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    result = run_module(capsys, base_args(fake_slurm, containers=True, pyxis_plugin_path=str(plugin),
                                          not_available={"nvidia_smi": "sandbox"}))
    checks = by_key(result)
    assert checks[("docker", "head")] == {"check": "docker", "node": "head", "expected": "docker installed",
                                          "seen": "24.0.7", "status": "passed", "hint": ""}
    assert checks[("enroot", "head")]["status"] == "failed"
    assert checks[("pyxis_plugin", "head")]["status"] == "passed"
    assert checks[("pyxis_loaded", "head")]["status"] == "passed"
    assert checks[("docker", "compute-gpu-st-distributed-ml-1")]["seen"] == "24.0.7"


def test_not_available_accepts_family_names(fake_slurm, capsys):
    not_available = {"fsx_lustre": "tmpfs in the sandbox", "pyxis": "stand-in plugin", "gpu": "no GPU"}
    result = run_module(capsys, base_args(fake_slurm, containers=True, not_available=not_available,
                                          storage=[{"mount": "/", "storage_type": "FsxLustre", "fstypes": ["lustre"]}]))
    statuses = dict(((c["check"], c["node"]), c["status"]) for c in result["checks"])
    assert statuses[("storage_type", "head")] == "not_available"
    assert statuses[("storage_mount", "head")] == "passed"
    assert statuses[("pyxis_plugin", "head")] == statuses[("pyxis_loaded", "head")] == "not_available"
    assert statuses[("gpu_count", "compute-gpu-st-distributed-ml-1")] == "not_available"
    assert statuses[("enroot", "head")] == "failed"


def test_check_mode_runs_no_job(fake_slurm, capsys):
    result = run_module(capsys, base_args(fake_slurm, _ansible_check_mode=True, job_comp_loc="/x"))
    assert not (fake_slurm / "srun.log").exists()
    checks = by_key(result)
    assert checks[("srun", "compute-gpu-st-distributed-ml-1")]["status"] == "not_available"
    assert checks[("job_completion_log", "head")]["status"] == "not_available"
    assert result["failed_checks"] == 0


def test_report_module_writes_all_formats_and_latest(tmp_path, capsys):
    from ansible_collections.hpc.pcluster.plugins.modules import slurm_verify_report as rep
    import xml.etree.ElementTree as ET
    checks = [{"check": "node_state", "node": "n1", "expected": "idle", "seen": "DOWN", "status": "failed", "hint": "h"}]
    for stamp in ("20260101T000000Z", "20260101T000100Z"):
        with patch_module_args({"path": str(tmp_path / "c" / stamp), "checks": checks, "meta": {"cluster": "c"},
                                "data": {"cluster": "c"}}):
            with pytest.raises(SystemExit):
                rep.main()
        result = json.loads(capsys.readouterr().out)
        assert result["summary"] == {"passed": 0, "failed": 1, "not_available": 0, "total": 1}
    latest = tmp_path / "c" / "latest"
    assert os.readlink(latest) == "20260101T000100Z"
    document = json.loads((latest / "report.json").read_text())
    assert document["cluster"] == "c" and document["checks"] == checks
    assert ET.parse(latest / "junit.xml").getroot().find("testsuite").get("failures") == "1"
    assert "| **FAILED** | node_state | n1 | idle | DOWN | h |" in (latest / "report.md").read_text()
    assert oct((latest / "report.md").stat().st_mode & 0o777) == "0o644"


def test_report_module_check_mode_writes_nothing(tmp_path, capsys):
    from ansible_collections.hpc.pcluster.plugins.modules import slurm_verify_report as rep
    with patch_module_args({"path": str(tmp_path / "r"), "checks": [], "_ansible_check_mode": True}):
        with pytest.raises(SystemExit):
            rep.main()
    assert json.loads(capsys.readouterr().out)["changed"] is False
    assert not (tmp_path / "r").exists()
