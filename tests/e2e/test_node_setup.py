"""Nodes that join after the playbook ran set themselves up at boot, from the node-setup bundle.

One sandbox of its own: a static compute node and a dynamic one (powered down, a CLOUD node that
Slurm's ResumeProgram - ParallelCluster's slurm_resume - launches an instance for when a job needs it).
Its static node boots at `up` before any bundle exists, as on a cluster's first create; playbooks/containers.yml
then stages the bundle and sets that node up with the fleet-wide Slurm job. After that no playbook runs:
a container job sent to the dynamic node powers it up, and its boot (the queue's OnNodeConfigured
sequence fetched from moto's S3 by the node itself) applies the bundle before slurmd starts; at the same time
the static node is drained, so that ParallelCluster's clustermgtd replaces it (a new instance, an empty root),
and it boots the same way. Both then run a container through Pyxis. The two boots run at once, so the module
costs one play on a node, not two.
"""

import json
import re
import threading
import time

import pytest

import container_chain  # sandbox/ (pytest.ini: pythonpath)

from ansible_collections.hpc.pcluster.plugins.modules.node_setup_fleet import parse_results

RESULT = "/var/lib/hpc-pcluster/node-setup/result.json"
LOG = "/var/log/hpc-pcluster/node-setup.log"
STATIC = "compute-gpu-st-distributed-ml-1"
DYNAMIC = "compute-gpu-dy-distributed-ml-1"
MARKER = "/root/written-before-the-replacement"
BUNDLE = "/opt/slurm/hpc-pcluster/node-setup/current"
NODE_SETUP_DIR = "/opt/slurm/hpc-pcluster/node-setup"
HOLD = "hpc-pcluster-node-setup-%s"
SECRET = "e2e-S3cr3t-never-shown"
# Four tasks print, at the same moment, a long result (3 kB of JSON, as a failure with its log) the way run.py
# does in the fleet job; each task's result must come back whole from srun's output.
PRINT_AT_ONCE = """
import importlib.util, os, sys, time
spec = importlib.util.spec_from_file_location("run", "%s/run.py")
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)
node = "%%s-task%%s" %% (os.environ["SLURMD_NODENAME"], os.environ["SLURM_PROCID"])
result = {"node": node, "status": "failed", "failed_task": "t", "message": ("log line of " + node + " ") * 100}
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
print("\\n".join(run.result_lines(result)), flush=True)
""" % BUNDLE
# Inside the container: the image's busybox root, not the node's Debian (no /etc/debian_version).
IN_CONTAINER = 'echo "$SLURMD_NODENAME $(readlink /bin/sh) $(test -e /etc/debian_version && echo debian || echo image)"'


def slurm_view(sandbox, node, settle_seconds=20):
    """(the node's compact state, its hold for setup or None) as sinfo and scontrol show them. slurmctld marks the
    nodes of a maintenance reservation from its background loop, seconds after the reservation starts: a held node
    is given that long to show maint."""
    deadline = time.monotonic() + settle_seconds
    while True:
        state = sandbox.head("sinfo", "--noheader", "--Node", "--nodes=%s" % node, "--format=%t").split()[0]
        found = sandbox.head("scontrol", "show", "reservation", "--oneliner", check=False)
        hold = HOLD % node if "ReservationName=%s " % (HOLD % node) in found else None
        if not hold or state.startswith("maint") or time.monotonic() > deadline:
            return state, hold
        time.sleep(1)


def on_node(sandbox, node, *argv):
    """Run argv on node as root, through its hold for setup when it is held (root may ask for the reservation)."""
    hold = slurm_view(sandbox, node)[1]
    return sandbox.head("srun", "--quiet", "--nodes=1", "--nodelist=%s" % node,
                        *(["--reservation=%s" % hold] if hold else []), *argv)


def node_result(sandbox, node):
    return json.loads(on_node(sandbox, node, "cat", RESULT))


def replace_static_node(sandbox, node, timeout=600):
    """Drain a static node, as an admin does to have ParallelCluster's clustermgtd replace it (a DRAINED static node
    is unhealthy); wait until a new instance backs it and it is idle. Returns (old instance, new instance)."""
    old = sandbox.instance_of(node)
    sandbox.wait_not_in_replacement(node)
    sandbox.head("scontrol", "update", "nodename=%s" % node, "state=drain", "reason=e2e: replace the instance")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = sandbox.instance_of(node)
        state = sandbox.head("sinfo", "--noheader", "--nodes=%s" % node, "--format=%t", check=False).strip()
        if new != old and state == "idle":
            return old, new
        time.sleep(2)
    raise AssertionError("clustermgtd did not replace %s within %d s (instance %s)" % (node, timeout, sandbox.instance_of(node)))


def boot_log(sandbox, instance):
    return (sandbox.state_dir / "logs" / ("boot-%s.log" % instance)).read_text()


def per_node_docker(sandbox):
    """The sandbox's docker_daemon_options with a value each node renders for itself (its cgroup parent named after
    the node): the bundle carries the template, and each node's daemon.json has its own name."""
    parent = "/%s/{{ inventory_hostname }}" % sandbox.state["containers"]["docker_cgroup_root"]
    return {"docker_daemon_options": dict(container_chain.DOCKER_DAEMON_OPTIONS, **{"cgroup-parent": parent})}


@pytest.fixture(scope="module", name="joining")
def fixture_joining(dynamic_sandbox):
    sandbox = dynamic_sandbox
    containers = sandbox.state["containers"]
    if not containers["ami"]["real"]:
        pytest.skip("the sandbox runs the stand-ins: %s" % containers["ami"]["fallback"])
    at_create = node_result(sandbox, STATIC)
    held_at_create = slurm_view(sandbox, STATIC)
    run = sandbox.playbook("playbooks/containers.yml", per_node_docker(sandbox))
    assert run.rc == 0, run.output[-6000:]
    return {"sandbox": sandbox, "image": containers["image"], "at_create": at_create, "run": run,
            "held_at_create": held_at_create, "after_run": slurm_view(sandbox, STATIC)}


@pytest.fixture(scope="module", name="joined")
def fixture_joined(joining):
    """A container job that powers the dynamic node up, and the static node replaced, at the same time."""
    sandbox = joining["sandbox"]
    bundle = sandbox.head("readlink", "/opt/slurm/hpc-pcluster/node-setup/current").strip().rsplit("/", 1)[-1]
    on_node(sandbox, STATIC, "touch", MARKER)
    outcome = {}

    def replace():
        try:
            outcome["replace"] = replace_static_node(sandbox, STATIC)
        except AssertionError as exc:
            outcome["replace"] = exc

    thread = threading.Thread(target=replace)
    thread.start()
    try:
        # srun waits for the node to power up (ResumeTimeout), then runs the container on it.
        outcome["dynamic_job"] = sandbox.head("srun", "--quiet", "--nodes=1", "--nodelist=%s" % DYNAMIC,
                                              "--container-image=%s" % joining["image"], "sh", "-c", IN_CONTAINER,
                                              timeout=900)
    finally:
        thread.join()
    return dict(outcome, bundle=bundle)


def test_first_create_nodes_boot_held_and_the_fleet_run_sets_them_up_and_releases_them(joining):
    sandbox = joining["sandbox"]
    assert joining["at_create"]["status"] == "pending", joining["at_create"]
    # Held out of scheduling with a maintenance reservation of its own (which ParallelCluster's create accepts),
    # until the fleet-wide run set it up and released it.
    assert joining["held_at_create"] == ("maint", HOLD % STATIC), joining["held_at_create"]
    assert joining["after_run"] == ("idle", None), joining["after_run"]
    assert "released from their hold for setup: %s" % STATIC in joining["run"].output
    assert "%s: ok (" % STATIC in joining["run"].output, joining["run"].output[-4000:]
    after = node_result(sandbox, STATIC)
    assert after["status"] == "ok" and after["mode"] == "fleet" and after["changed"] > 0, after
    # The powered-down dynamic node is named and left to its boot.
    assert "%s idle~: powered down: they apply the bundle when they boot" % DYNAMIC in " ".join(
        joining["run"].output.split())


def test_results_printed_by_tasks_at_once_come_back_whole_from_srun(joining):
    # Slurm carries a task's output in messages of at most 1024 bytes and srun writes those of all tasks as they
    # arrive: run.py's lines (at most 1000 bytes) are never cut by another task's output.
    sandbox = joining["sandbox"]
    start = sandbox.head("python3", "-c", "import time; print(time.time() + 2)").strip()
    out = on_node(sandbox, STATIC, "--ntasks=4", "--overcommit", "/usr/bin/python3", "-c", PRINT_AT_ONCE, start)
    results = parse_results(out)
    assert sorted(results) == ["%s-task%d" % (STATIC, k) for k in range(4)], out[-3000:]
    assert all(len(r["message"]) > 3000 for r in results.values())
    assert max(len(line) for line in out.splitlines()) < 1000


def test_dynamic_node_powered_up_by_slurm_sets_itself_up_and_runs_a_container_job(joining, joined):
    sandbox = joining["sandbox"]
    assert joined["dynamic_job"].split() == [DYNAMIC, "busybox", "image"], joined["dynamic_job"]
    result = node_result(sandbox, DYNAMIC)
    # Its boot applied the staged bundle (no playbook ran since it was staged), before slurmd started.
    assert result["status"] == "ok" and result["mode"] == "boot" and result["bundle"] == joined["bundle"], result
    assert result["failed"] == 0 and result["changed"] > 0, result
    runs = [line for line in on_node(sandbox, DYNAMIC, "cat", LOG).splitlines() if line.startswith("=== ")]
    assert len(runs) == 1 and " boot %s " % DYNAMIC in runs[0], runs
    log = boot_log(sandbox, sandbox.instance_of(DYNAMIC))
    assert "Slurm node name: %s" % DYNAMIC in log, log
    assert "OnNodeConfigured step 1: s3://" in log and "hpc-pcluster-node-setup-" in log, log
    # ParallelCluster's slurm_resume launched it (Slurm's ResumeProgram), from the queue's launch template.
    resume = sandbox.head_file("/var/log/parallelcluster/slurm_resume.log")
    assert "Launching EC2 instances for the following Slurm nodes: %s" % DYNAMIC in resume, resume[-3000:]
    assert "Successfully launched nodes (x1) ['%s']" % DYNAMIC in resume, resume[-3000:]


def test_replaced_static_node_gets_its_setup_back_at_boot(joining, joined):
    sandbox = joining["sandbox"]
    assert not isinstance(joined["replace"], Exception), joined["replace"]
    old, new = joined["replace"]
    assert new and new != old
    assert "Found the following unhealthy static nodes" in sandbox.head_file("/var/log/parallelcluster/clustermgtd")
    # A new root: what the old instance wrote is gone.
    assert on_node(sandbox, STATIC, "sh", "-c", "test -e %s && echo kept || echo gone" % MARKER).strip() == "gone"
    result = node_result(sandbox, STATIC)
    assert result["status"] == "ok" and result["mode"] == "boot" and result["bundle"] == joined["bundle"], result
    out = sandbox.head("srun", "--quiet", "--nodes=1", "--nodelist=%s" % STATIC,
                       "--container-image=%s" % joining["image"], "sh", "-c", IN_CONTAINER)
    assert out.split() == [STATIC, "busybox", "image"], out


def test_nodes_set_up_at_boot_are_what_the_same_roles_over_ssh_leave(joining, joined):
    # The boot path and the SSH path reach one state: the roles applied to both compute nodes over SSH after their
    # boots change nothing there. The docker_daemon_options staged here name each node (cgroup-parent, per_node_docker);
    # the bundle was staged while only the static node was in the inventory, and the dynamic node must still render
    # its own name.
    sandbox = joining["sandbox"]
    run = sandbox.playbook("playbooks/containers.yml", dict(per_node_docker(sandbox), containers_hosts="compute",
                                                            node_setup_compute_path="ssh"), args=["--diff"])
    assert run.rc == 0, run.output[-6000:]
    assert {STATIC, DYNAMIC} <= set(run.recap), run.recap
    changed = {host: run.recap[host]["changed"] for host in (STATIC, DYNAMIC) if run.recap[host]["changed"]}
    assert not changed, run.output[-8000:]


def start_busy_job(sandbox, node):
    """A job keeping node busy (alloc or mix), running when this returns; its id."""
    job = sandbox.head("sbatch", "--parsable", "--nodelist=%s" % node, "--wrap", "sleep 1200").strip()
    deadline = time.monotonic() + 120
    while sandbox.head("squeue", "--noheader", "--jobs=%s" % job, "--format=%T").strip() != "RUNNING":
        assert time.monotonic() < deadline, "job %s did not start on %s" % (job, node)
        time.sleep(2)
    return job


def test_a_bundle_others_can_write_is_refused_and_busy_nodes_are_left_alone(joining, joined):
    # The node_setup role alone (sandbox.node_setup): the head node's container roles over SSH have nothing to do with it.
    sandbox = joining["sandbox"]
    # The dynamic node runs a job all along: every fleet run below leaves it alone and says so.
    before = node_result(sandbox, DYNAMIC)
    job = start_busy_job(sandbox, DYNAMIC)
    try:
        # A group-writable node_setup_dir: whoever can write there would get root on every node. Staging refuses
        # the place, and the fleet job's task on the node refuses it too (it runs the controller's loader, which
        # checks before it runs anything): the node is held.
        sandbox.head("chmod", "g+w", NODE_SETUP_DIR)
        try:
            refused = sandbox.node_setup("main", per_node_docker(sandbox))
            fleet = sandbox.node_setup("fleet")
        finally:
            sandbox.head("chmod", "g-w", NODE_SETUP_DIR)
        said = " ".join(refused.output.split())
        assert refused.rc != 0 and "node_setup_dir=%s" % NODE_SETUP_DIR in said, said[-4000:]
        assert "%s can be written by others than root (mode 775)" % NODE_SETUP_DIR in said
        said = " ".join(fleet.output.split())
        assert fleet.rc != 0 and "%s: failed" % STATIC in said and "failed task: trust check" in said, said[-4000:]
        assert "nothing of it was run" in said
        assert slurm_view(sandbox, STATIC) == ("maint", HOLD % STATIC)
        # Once fixed, the held node is set up and released. A secret among the nodes' variables (a new bundle, so
        # vars.yml is written again) never shows, not with -v and --diff either.
        run = sandbox.node_setup("main", dict(per_node_docker(sandbox), docker_e2e_registry_password=SECRET),
                                 args=["-v", "--diff"])
    finally:
        sandbox.head("scancel", job, check=False)
    assert run.rc == 0, run.output[-6000:]
    assert SECRET not in run.output
    for output in (fleet.output, run.output):
        said = " ".join(output.split())
        assert re.search(r"%s (alloc|mix): busy with jobs, left alone so as not to disturb them" % DYNAMIC, said), said[-3000:]
    assert "%s: ok (" % STATIC in said and "released from their hold for setup: %s" % STATIC in said
    assert slurm_view(sandbox, STATIC) == ("idle", None)
    assert node_result(sandbox, DYNAMIC) == before
