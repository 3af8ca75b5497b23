"""playbooks/verify.yml against a private sandbox: what the checks must see on a real Slurm cluster.

Each test sets up a situation on the sandbox's nodes (a planted symlink, a node still completing a job, a
setting that drifted from the config, a user who cannot write the root of the shared storage), runs the
playbook and reads the report; the situation is undone afterwards for the other tests.
"""

import json
import pathlib
import re
import subprocess
import time

import pytest

from ansible_collections.hpc.pcluster.tests.e2e.test_playbooks import checks_of, read_report
from ansible_collections.hpc.pcluster.tests.integration.conftest import RELEASE_NODE_SETUP_HOLDS

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The container checks depend on containers.yml having run, and the all-reduce has tests of its own
# (test_distributed.py, and deploy.yml's runs in test_playbooks.py): these tests are about the rest.
THE_OTHER_CHECKS = {"verify_containers": False, "verify_distributed": False}


def on_node(sandbox, node, script, check=True):
    """Run a shell script inside a sandbox node's namespaces (as root; for preparing a situation)."""
    pid = sandbox.state["holders"][node]
    proc = subprocess.run(["nsenter", "-t", str(pid), "-m", "-u", "-n", "--", "/bin/sh", "-c", script],
                          capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s on %s failed (rc %s): %s" % (script, node, proc.returncode, proc.stderr))
    return proc.stdout


@pytest.fixture(scope="module", autouse=True)
def nodes_in_service(e2e_sandbox):
    """The static nodes out of their node-setup holds, whether deploy.yml ran before these tests or not."""
    on_node(e2e_sandbox, "head", RELEASE_NODE_SETUP_HOLDS)


def test_compute_probe_does_not_follow_a_planted_symlink(e2e_sandbox):
    # The old probe wrote "$mount/.hpc-pcluster-verify.<node>.<pid>" with ": >". A symlink planted under every
    # name it could take points at a file of the verify user: creating probe files safely leaves it untouched.
    victim = "/home/e2e-victim-authorized_keys"
    plant = (
        "import os, sys\n"
        "pid_max = int(open('/proc/sys/kernel/pid_max').read())\n"
        "for node in sys.argv[1:]:\n"
        "    for pid in range(1, pid_max + 1):\n"
        "        os.symlink('%s', '/fsx/.hpc-pcluster-verify.%%s.%%d' %% (node, pid))\n" % victim)
    on_node(e2e_sandbox, "head", "echo 'ssh-ed25519 AAAA e2e' > %s && /usr/bin/python3 -c \"%s\" %s" % (
        victim, plant, " ".join(e2e_sandbox.compute_nodes)))
    try:
        run = e2e_sandbox.playbook("playbooks/verify.yml", THE_OTHER_CHECKS)
        assert on_node(e2e_sandbox, "head", "cat %s" % victim) == "ssh-ed25519 AAAA e2e\n"
    finally:
        on_node(e2e_sandbox, "head", "find /fsx -maxdepth 1 -name '.hpc-pcluster-verify.*' -delete; rm -f %s" % victim)
    assert run.rc == 0, run.output[-6000:]
    report = read_report(e2e_sandbox)[0]
    writable = checks_of(report, "storage_writable")
    assert {c["node"] for c in writable} >= set(e2e_sandbox.compute_nodes)
    assert all(c["status"] == "passed" for c in writable), writable


def playbook_releasing(sandbox, playbook, extra_vars, when_printed, release):
    """Run a playbook as sandbox.playbook does, calling release() once a line holding when_printed appears."""
    argv = ["ansible-playbook", "-i", sandbox.inventory, str(ROOT / playbook), "-e",
            "verify_report_dir=%s" % sandbox.report_dir, "-e", json.dumps(extra_vars)]
    with subprocess.Popen(argv, cwd=str(ROOT), env=sandbox.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if when_printed in line:
                release()
        rc = proc.wait(timeout=600)
    return rc, "".join(lines)


def node_state(sandbox, node):
    """The node's state and its flags, as scontrol prints them (IDLE+CLOUD+COMPLETING -> {IDLE, CLOUD, COMPLETING})."""
    shown = re.search(r"\bState=(\S+)", sandbox.head("scontrol", "-o", "show", "node", node))
    return set(shown.group(1).split("+")) if shown else set()


def test_a_static_node_still_completing_a_job_is_waited_for(e2e_sandbox):
    node = e2e_sandbox.compute_nodes[0]
    release = "/home/e2e-release-completing"
    # A job that ends only once the test releases it after scancel (KillWait raised meanwhile): its node is
    # COMPLETING until then, however long the playbook takes to reach the wait.
    on_node(e2e_sandbox, "head", "rm -f %s; cp /opt/slurm/etc/slurm.conf /root/slurm.conf.e2e; "
            "echo KillWait=300 >> /opt/slurm/etc/slurm.conf; scontrol reconfigure" % release)
    try:
        job = e2e_sandbox.head(
            "sbatch", "--parsable", "--job-name=e2e-completing", "--nodelist=%s" % node, "--wrap",
            "trap 'while [ ! -e %s ]; do sleep 0.2; done; exit 0' TERM; sleep 600 & wait" % release).strip()
        deadline = time.time() + 20
        while "RUNNING" not in e2e_sandbox.head("squeue", "--noheader", "--jobs=%s" % job, "--format=%T", check=False):
            assert time.time() < deadline, "job %s did not start" % job
            time.sleep(0.5)
        e2e_sandbox.head("scancel", job)
        deadline = time.time() + 20
        while not {"IDLE", "COMPLETING"} <= node_state(e2e_sandbox, node):
            assert time.time() < deadline, "node %s did not go COMPLETING" % node
            time.sleep(0.5)
        rc, output = playbook_releasing(e2e_sandbox, "playbooks/verify.yml", THE_OTHER_CHECKS,
                                        "static node(s) in a transitional state",
                                        lambda: on_node(e2e_sandbox, "head", "touch %s" % release))
    finally:
        on_node(e2e_sandbox, "head", "touch {r}; cp /root/slurm.conf.e2e /opt/slurm/etc/slurm.conf; "
                "scontrol reconfigure; sleep 1; rm -f {r}".format(r=release))
    assert rc == 0, output[-6000:]
    # ParallelCluster's static nodes are CLOUD nodes: the state reads IDLE+CLOUD+COMPLETING (flags in Slurm's order).
    waiting = re.search(r"waiting up to 15m00s for 1 static node\(s\) in a transitional state: %s (\S+)" % node, output)
    assert waiting and {"IDLE", "COMPLETING"} <= set(waiting.group(1).split("+")), output[-6000:]
    report = read_report(e2e_sandbox)[0]
    state = [c for c in checks_of(report, "node_state") if c["node"] == node][0]
    # ParallelCluster's static nodes are CLOUD nodes (IDLE+CLOUD), on AWS as here.
    assert state["status"] == "passed" and state["seen"].split("+")[0] == "IDLE", state
    assert report["node_wait"]["settled"] is True and report["node_wait"]["waited"] > 0
    # The settings the config asks for are the ones the sandbox's Slurm runs.
    settings = {c["expected"].split(" = ")[0]: c for c in checks_of(report, "slurm_setting")}
    assert set(settings) == {"JobCompType", "JobCompLoc", "JobAcctGatherType", "SlurmdTimeout", "SuspendTime"}
    assert all(c["status"] == "passed" for c in settings.values()), settings
    assert [c["status"] for c in checks_of(report, "partition_setting")] == ["passed"]


def test_settings_that_drifted_from_the_config_are_named(e2e_sandbox):
    # ParallelCluster's cookbook writes the global CustomSlurmSettings to this file, which slurm.conf includes.
    conf = "/opt/slurm/etc/pcluster/custom_slurm_settings_include_file_slurm.conf"
    on_node(e2e_sandbox, "head", "cp %s /root/slurm.conf.e2e && sed -i 's/^SlurmdTimeout=.*/SlurmdTimeout=300/' %s"
            " && scontrol reconfigure && scontrol update partitionname=compute-gpu oversubscribe=no" % (conf, conf))
    try:
        run = e2e_sandbox.playbook("playbooks/verify.yml", THE_OTHER_CHECKS)
    finally:
        on_node(e2e_sandbox, "head", "cp /root/slurm.conf.e2e %s && scontrol reconfigure" % conf)
    assert run.rc != 0
    head = "%s-head" % e2e_sandbox.cluster_name  # the inventory's name of the head node
    assert ("slurm_setting on %s: expected SlurmdTimeout = 1000 (Scheduling.SlurmSettings.CustomSlurmSettings), "
            "seen 300 sec" % head) in run.output
    assert ("partition_setting on compute-gpu: expected OverSubscribe = EXCLUSIVE "
            "(SlurmQueues[compute-gpu].JobExclusiveAllocation: true), seen NO") in run.output
    report = read_report(e2e_sandbox)[0]
    failed = sorted((c["check"], c["expected"].split(" = ")[0]) for c in report["checks"] if c["status"] == "failed")
    assert failed == [("partition_setting", "OverSubscribe"), ("slurm_setting", "SlurmdTimeout")]


def test_storage_is_written_where_the_login_user_writes(e2e_sandbox):
    # A login user (not root) on every node, as on a ParallelCluster AMI: /fsx and /lustre are root's (0755)
    # like a fresh FSx file system; only /fsx holds a directory of the user.
    user = "e2e-login"
    for node in ["head"] + e2e_sandbox.compute_nodes:
        on_node(e2e_sandbox, node, "id %s >/dev/null 2>&1 || useradd --uid 4242 --user-group --shell /bin/sh %s"
                % (user, user))
    on_node(e2e_sandbox, "head", "mkdir -p /home/{u} /fsx/{u} && chown {u}:{u} /home/{u} /fsx/{u}".format(u=user))
    try:
        # The sandbox's sshd takes only root's key: the checks run as the user through su, as the user's own.
        as_user = dict(THE_OTHER_CHECKS, verify_become=True, ansible_become_method="su", ansible_become_user=user)
        run = e2e_sandbox.playbook("playbooks/verify.yml", as_user)
    finally:
        on_node(e2e_sandbox, "head", "rm -rf /fsx/%s" % user)
    assert run.rc == 0, run.output[-6000:]
    report = read_report(e2e_sandbox)[0]
    writable = checks_of(report, "storage_writable")
    nodes = ["%s-head" % e2e_sandbox.cluster_name] + e2e_sandbox.compute_nodes
    fsx = dict((c["node"], c) for c in writable if c["expected"].startswith("/fsx"))
    lustre = dict((c["node"], c) for c in writable if c["expected"].startswith("/lustre"))
    assert sorted(fsx) == sorted(lustre) == sorted(nodes)
    for node in nodes:
        assert fsx[node]["status"] == "passed", fsx[node]
        assert fsx[node]["seen"] == "writable by %s in /fsx/%s" % (user, user)
        assert lustre[node]["status"] == "not_available", lustre[node]
        assert lustre[node]["seen"] == "/lustre is not writable by %s and /lustre/%s does not exist" % (user, user)
        assert "create /lustre/%s owned by %s" % (user, user) in lustre[node]["hint"]
    assert all(c["status"] == "passed" for c in checks_of(report, "storage_mount")), checks_of(report, "storage_mount")
