"""The test job's probe, run for real with /bin/sh, and the checks on its answers."""

import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile

import pytest
import yaml

from ansible_collections.hpc.pcluster.plugins.module_utils.verify import node_checks as nc
from ansible_collections.hpc.pcluster.plugins.module_utils.slurm.parsers import Mount
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.check_report import CheckReport

ROOT = str(pathlib.Path(__file__).resolve().parents[5])
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a PID namespace, another user)")


@pytest.fixture
def shared():
    """A directory like the root of a fresh shared file system: root's, mode 0755, reachable by every user."""
    path = tempfile.mkdtemp(prefix="hpc-pcluster-shared-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_probe(script, node="n1", user=None, pid_namespace=False):
    argv = ["/bin/sh", "-c", script]
    if user:
        entry = pwd.getpwnam(user)
        argv = ["setpriv", "--reuid=%d" % entry.pw_uid, "--regid=%d" % entry.pw_gid, "--clear-groups"] + argv
    if pid_namespace:
        argv = ["unshare", "--pid", "--fork"] + argv
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True,
                          env=dict(os.environ, SLURMD_NODENAME=node), cwd="/")
    return nc.parse_probe_output(proc.stdout)[node]


@as_root
def test_probe_files_are_made_safely_where_a_symlink_was_planted(shared):
    # The shell is PID 1 in its own PID namespace, so "$mount/.hpc-pcluster-verify.<node>.$$" is known in advance:
    # a symlink there points at a file of the verify user. The probe must neither truncate nor replace it.
    victim = os.path.join(shared, "authorized_keys")
    with open(victim, "w") as handle:
        handle.write("ssh-ed25519 AAAA verify-user\n")
    for pid in range(1, 51):
        os.symlink(victim, os.path.join(shared, ".hpc-pcluster-verify.n1.%d" % pid))
    facts = run_probe(nc.node_probe_script([shared], True, False, False), pid_namespace=True)
    with open(victim) as handle:
        assert handle.read() == "ssh-ed25519 AAAA verify-user\n"
    assert facts["writable:" + shared] == ["yes " + shared]
    left = [name for name in os.listdir(shared) if not os.path.islink(os.path.join(shared, name))]
    assert left == ["authorized_keys"]  # the probe file is gone again


@as_root
def test_probe_writes_where_the_user_writes(shared):
    facts = run_probe("\n".join(["say() { echo \"@@hpc-pcluster-verify\tn1\t$1\t$2\"; }"]
                                + nc.storage_probe_lines([shared, "/proc"])), user="nobody")
    assert facts["user"] == ["nobody"]
    assert facts["writable:" + shared] == ["no " + shared]  # a fresh root: only root writes there
    assert facts["mount:/proc"][0].startswith("proc rw")
    assert facts["mount:" + shared] == [""]  # not a mount point
    os.mkdir(os.path.join(shared, "nobody"))
    shutil.chown(os.path.join(shared, "nobody"), "nobody")
    facts = run_probe("\n".join(["say() { echo \"@@hpc-pcluster-verify\tn1\t$1\t$2\"; }"]
                                + nc.storage_probe_lines([shared])), user="nobody")
    assert facts["writable:" + shared] == ["yes %s/nobody" % shared]
    assert os.listdir(os.path.join(shared, "nobody")) == []


@as_root
def test_head_write_probe_as_the_login_user(shared):
    code = ("from ansible_collections.hpc.pcluster.plugins.module_utils.verify.node_checks import write_probe; "
            "print(write_probe(%r, 'nobody'))" % shared)
    probe = ["/usr/bin/python3", "-c", code]  # the system's: the virtualenv's may sit where nobody can read
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "collections"))
    assert subprocess.run(probe, user="nobody", env=env, capture_output=True, text=True, check=True).stdout.strip() == (
        "('%s', False)" % shared)
    os.mkdir(os.path.join(shared, "nobody"))
    shutil.chown(os.path.join(shared, "nobody"), "nobody")
    assert subprocess.run(probe, user="nobody", env=env, capture_output=True, text=True, check=True).stdout.strip() == (
        "('%s/nobody', True)" % shared)


def storage_checks(mount, written, user="ubuntu", check_mode=False):
    report = CheckReport({"fsx_lustre": "tmpfs"})
    nc.check_storage(report, "head", {"mount": "/lustre", "storage_type": "FsxLustre", "fstypes": ["lustre"]},
                     mount, written, user, check_mode=check_mode)
    return dict((c["check"], c) for c in report.checks)


def test_fresh_file_system_root_is_not_a_failure():
    checks = storage_checks(Mount("lustre", ["rw"]), ("/lustre", False))
    assert checks["storage_mount"]["status"] == "passed"
    assert checks["storage_writable"]["status"] == "not_available"
    assert checks["storage_writable"]["seen"] == "/lustre is not writable by ubuntu and /lustre/ubuntu does not exist"
    assert "create /lustre/ubuntu owned by ubuntu" in checks["storage_writable"]["hint"]
    assert checks["storage_type"]["status"] == "not_available"
    # Each of a node's storage checks names its mount: the report's not-available lines tell them apart.
    assert {c["subject"] for c in checks.values()} == {"/lustre"}


def test_the_users_own_directory_must_be_writable():
    checks = storage_checks(Mount("lustre", ["rw"]), ("/lustre/ubuntu", True))
    assert checks["storage_writable"]["status"] == "passed"
    assert checks["storage_writable"]["seen"] == "writable by ubuntu in /lustre/ubuntu"
    checks = storage_checks(Mount("lustre", ["rw"]), ("/lustre/ubuntu", False))
    assert checks["storage_writable"]["status"] == "failed"
    assert checks["storage_writable"]["seen"] == "/lustre/ubuntu is NOT writable by ubuntu"


def test_read_only_and_missing_mounts():
    checks = storage_checks(Mount("lustre", ["ro", "flock"]), None)
    assert checks["storage_mount"]["status"] == "failed" and checks["storage_mount"]["seen"] == "mounted read-only"
    assert "storage_writable" not in checks
    checks = storage_checks(None, None)
    assert checks["storage_mount"]["seen"] == "not mounted" and "storage_writable" not in checks
    checks = storage_checks(Mount("lustre", ["rw"]), None, check_mode=True)
    assert checks["storage_mount"]["status"] == "passed"
    assert checks["storage_writable"]["status"] == "not_available"


def test_unknown_gpu_count_names_the_variable_to_set():
    report = CheckReport({})
    facts = {"nvidia_smi_rc": ["absent"], "cuda_visible_devices": ["0,1"]}
    nc.check_node_gpus(report, {"require_nvidia_smi": False}, "n1", "g7.2xlarge", -1, facts)
    hint = [c for c in report.checks if c["check"] == "gpu_count"][0]["hint"]
    assert hint == "the GPU count of g7.2xlarge is unknown: set verify_gpus_per_instance_type, e.g. {g7.2xlarge: 2}"
    with open(os.path.join(ROOT, "roles", "verify", "meta", "argument_specs.yml")) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    assert "verify_gpus_per_instance_type" in options


def test_probe_answers_by_node_and_job_groups():
    text = "noise\n@@hpc-pcluster-verify\tn1\thostname\tn1\n@@hpc-pcluster-verify\tn1\tnvidia_smi\tGPU 0: A10G\n" \
           "@@hpc-pcluster-verify\tn2\tmount:/fsx\t\n"
    assert nc.parse_probe_output(text) == {"n1": {"hostname": ["n1"], "nvidia_smi": ["GPU 0: A10G"]},
                                           "n2": {"mount:/fsx": [""]}}
    nodes = [{"name": "g1", "partition": "gpu", "gpus": 4}, {"name": "g2", "partition": "gpu", "gpus": 4},
             {"name": "c1", "partition": "cpu", "gpus": 0}, {"name": "down", "partition": "cpu", "gpus": 0}]
    slurm = {"g1": {"Gres": "gpu:a10g:4(S:0)"}, "g2": {"Gres": "gpu:a10g:4(S:0)"}, "c1": {"Gres": "(null)"}}
    assert nc.job_groups(nodes, ["g1", "g2", "c1"], slurm) == {("gpu", 4): ["g1", "g2"], ("cpu", 0): ["c1"]}


def test_mount_points_with_spaces_are_matched_as_proc_mounts_writes_them():
    assert nc._mounts_escape("/my dir\\x") == "/my\\040dir\\134x"  # pylint: disable=protected-access
