"""hpc.pcluster.slurm_verify as a whole, against a fake Slurm (shell scripts answering like Slurm 22.05).

The parsers and checks it wires are tested on their own in tests/unit/plugins/module_utils/.
"""

import json
import os
import pathlib
import stat
import textwrap

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpc.pcluster.plugins.modules import slurm_verify as sv

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "slurm"
# Recorded from the sandbox's Slurm 22.05: both nodes idle, and the first one set DRAIN then DOWN.
IDLE_NODES = (FIXTURES / "scontrol_show_node_idle.txt").read_text()
DOWN_NODE = (FIXTURES / "scontrol_show_node_down_drain.txt").read_text().splitlines()[0]


# ---------------------------------------------------------------------------
# Whole module runs against a fake Slurm (shell scripts standing in for scontrol/squeue/srun).
# ---------------------------------------------------------------------------

FAKE_SCONTROL = """#!/bin/sh
case "$*" in
  ping) echo "Slurmctld(primary) at head is UP" ;;
  "-o show partition") cat "$FAKE_DIR/partitions.txt" ;;
  "-o show node") cat "$FAKE_DIR/nodes.txt" ;;
  "show reservation --oneliner") cat "$FAKE_DIR/reservations.txt" 2>/dev/null || echo "No reservations in the system" ;;
  "show config")
    printf 'JobCompLoc              = %s\\n' "$FAKE_DIR/jobcomp.txt"
    printf 'JobCompType             = jobcomp/filetxt\\nPlugStackConfig         = %s/plugstack.conf\\n' "$FAKE_DIR"
    printf 'SlurmdTimeout           = 300 sec\\nSuspendTime             = NONE\\n' ;;
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
    (tmp_path / "nodes.txt").write_text(IDLE_NODES)
    (tmp_path / "partitions.txt").write_text((FIXTURES / "scontrol_show_partition.txt").read_text())
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
    nodes[0] = DOWN_NODE
    (fake_slurm / "nodes.txt").write_text("\n".join(nodes) + "\n")
    result = run_module(capsys, base_args(fake_slurm, not_available={"nvidia_smi": "sandbox"}))
    checks = by_key(result)
    down = checks[("node_state", "compute-gpu-st-distributed-ml-1")]
    assert down["status"] == "failed"
    assert down["seen"] == "DOWN+DRAIN Reason=test run [root@2026-11-30T23:25:34]"
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
    assert root[("storage_mount", "head")]["status"] == "passed"
    # As root, "its directory" on / is /root.
    assert root[("storage_writable", "head")]["seen"] == "writable by root in /root"
    assert root[("storage_type", "head")]["status"] == "failed"
    assert "expected no-such-fs for Ebs" in root[("storage_type", "head")]["hint"]
    assert root[("storage_mount", "compute-gpu-st-distributed-ml-1")]["status"] == "passed"
    assert root[("storage_writable", "compute-gpu-st-distributed-ml-1")]["status"] == "passed"
    # A directory that is not a mount point is reported as not mounted, and not written to.
    missing = [c for c in result["checks"] if "shared" in c["expected"]]
    assert {c["check"] for c in missing} == {"storage_mount", "storage_type"}
    assert all(c["status"] == "failed" and c["seen"] == "not mounted" for c in missing)
    assert not os.listdir(shared)


def test_settings_the_config_asks_for(fake_slurm, capsys):
    custom = "Scheduling.SlurmSettings.CustomSlurmSettings"
    result = run_module(capsys, base_args(
        fake_slurm, not_available={"nvidia_smi": "sandbox"},
        slurm_settings=[{"name": "SlurmdTimeout", "value": "1000", "source": custom},
                        {"name": "JobCompType", "value": "jobcomp/filetxt", "source": custom},
                        {"name": "SuspendTime", "value": "-60", "source": "Scheduling.SlurmSettings.ScaledownIdletime: -1"}],
        partition_settings=[{"partition": "compute-gpu", "name": "OverSubscribe", "value": "EXCLUSIVE",
                             "source": "SlurmQueues[compute-gpu].JobExclusiveAllocation: true"}]))
    settings = [(c["check"], c["expected"].split(" = ")[0], c["status"]) for c in result["checks"]
                if c["check"] in ("slurm_setting", "partition_setting")]
    assert settings == [("partition_setting", "OverSubscribe", "passed"), ("slurm_setting", "SlurmdTimeout", "failed"),
                        ("slurm_setting", "JobCompType", "passed"), ("slurm_setting", "SuspendTime", "passed")]
    assert result["failed_checks"] == 1


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


def test_docker_is_not_checked_when_the_nodes_are_not_meant_to_have_it(fake_slurm, capsys, monkeypatch):
    # containers_docker_enabled=false (verify_docker): no docker check on the head node nor on the compute nodes,
    # Enroot and Pyxis checked as ever.
    bindir = fake_slurm / "bin"
    plugin = fake_slurm / "spank_pyxis.so"
    plugin.write_text("")
    (fake_slurm / "plugstack.conf.d" / "pyxis.conf").write_text("required %s runtime_path=/run/pyxis\n" % plugin)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    result = run_module(capsys, base_args(fake_slurm, containers=True, docker=False, pyxis_plugin_path=str(plugin),
                                          not_available={"nvidia_smi": "sandbox"}))
    checks = by_key(result)
    assert not [key for key in checks if key[0] == "docker"], sorted(checks)
    assert checks[("enroot", "head")]["status"] == "failed"
    assert checks[("enroot", "compute-gpu-st-distributed-ml-1")]["status"] == "failed"
    assert checks[("pyxis_plugin", "head")]["status"] == "passed"
