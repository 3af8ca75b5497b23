"""A job on a dynamic node: from its submission to its start, with the node setup at boot against a baked image.

One sandbox with a static and a dynamic compute node (or --state-dir of a running one with a dynamic node):
playbooks/containers.yml stages the node-setup bundle (Enroot and Pyxis; Docker left out: the sandbox's nodes have
no init system to start an image's dockerd at boot), then playbooks/tasks/custom_image.yml bakes the same setup into an image with `pcluster build-image`
(the sandbox's image builder: the bake script run on a build node, its changes kept as the image's layer). Then,
for each of --runs rounds, each way in turn:

- setup at boot: the queue's launch template on the sandbox's AMI; the node boots, its OnNodeConfigured step
  applies the bundle (the roles run) before slurmd starts;
- baked image:   the queue's launch template on the baked AMI (image_layers.launch_queue_from, as a cluster
  update that changes Image.CustomAmi leaves it); the node boots from the image's layer and its boot step answers
  up-to-date without running the roles.

Each round powers the node down first (scontrol power_down_force, until Slurm shows it powered down), then
submits `srun -w <node> date +%s.%N` on the head node and takes the time the job printed minus the submission
time - Slurm's wait for its power-saving thread (power_save_min_interval=30: 0 to 30 s, the same for both ways),
ParallelCluster's slurm_resume launching the instance, the hypervisor's boot, the bootstrap with the node setup,
slurmd's registration, the job's start - and minus the instance's launch (the hypervisor's record): the part the
image changes, without Slurm's wait. Prints the build's time, each way's medians and the ratios boot / baked. On
AWS the gap is the package downloads and installs (minutes per node); here the packages come from the sandbox's
AMI layer and proxy, so the gap is mostly the roles' run itself.

Usage: .venv/bin/python bench/dynamic_node_image.py [--runs 2] [--state-dir DIR]
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sandbox"))

import image_layers  # noqa: E402  pylint: disable=import-error,wrong-import-position
import moto_cluster  # noqa: E402  pylint: disable=import-error,wrong-import-position
import container_staging as staging  # noqa: E402  pylint: disable=import-error,wrong-import-position  # bench/

# What a baked image can carry in the sandbox (see the docstring).
VARS = {"containers_docker_enabled": False}
BAKE_PLAY = ROOT / "tests" / "e2e" / "bake_image.yml"


def head(state, *argv, check=True):
    """argv on the head node as root logged in there runs it; its output (whatever its exit status unless check)."""
    if check:
        return staging.head(state, *argv)
    return subprocess.run(["nsenter", "-t", str(state["holders"]["head"]), "-a", "--", "env", "-i", "HOME=/root",
                           "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *argv],
                          capture_output=True, text=True, check=False).stdout


def bake(state_dir, work):
    """Stage the bundle and set the static node up, then build the image; (AMI, build seconds)."""
    staging.playbook(state_dir, ROOT / "playbooks" / "containers.yml", VARS)
    result = work / "bake.json"
    started = time.monotonic()
    staging.playbook(state_dir, BAKE_PLAY, dict(VARS, bake_image_result=str(result)))
    return json.loads(result.read_text())["ami_id"], time.monotonic() - started


def node_state(state, node):
    return head(state, "sinfo", "--noheader", "--Node", "--nodes=%s" % node, "--format=%t", check=False).strip()


def power_down(state, node, timeout=300):
    """Power node down (its instance terminated) and wait until Slurm can power it up again."""
    if not node_state(state, node).endswith("~"):
        head(state, "scontrol", "update", "nodename=%s" % node, "state=power_down_force", check=False)
    deadline = time.monotonic() + timeout
    while node_state(state, node) != "idle~":
        if time.monotonic() > deadline:
            sys.exit("%s did not power down within %d s (%s)" % (node, timeout, node_state(state, node)))
        time.sleep(2)


def timed_start(state_dir, state, node):
    """(seconds from the job's submission to its start on node, from the node's instance launch to the job's start):
    the first holds Slurm's wait for its power-saving thread (power_save_min_interval, up to 30 s) before it runs
    the ResumeProgram, the second what the image changes - the boot, its setup, slurmd's registration."""
    submitted = time.time()
    started = float(head(state, "srun", "--quiet", "--nodes=1", "--nodelist=%s" % node, "date", "+%s.%N").split()[-1])
    # The node's instance as ParallelCluster's node table names it (the hypervisor's record gets the node's name only
    # once the bootstrap has returned, which can be after the job started).
    ddb = moto_cluster.client("dynamodb", state["endpoint_url"], state["region"])
    item = ddb.get_item(TableName="parallelcluster-slurm-%s" % state["cluster_name"], Key={"Id": {"S": node}})["Item"]
    launched = json.loads((state_dir / "nodes.json").read_text())[item["InstanceId"]["S"]]["launched"]
    return started - submitted, started - launched


def setup_log_tail(state, node):
    """The node-setup log's last run line on node (what its boot step did)."""
    out = head(state, "srun", "--quiet", "--nodes=1", "--nodelist=%s" % node, "cat", "/var/log/hpc-pcluster/node-setup.log",
               check=False)
    return ([line[4:] for line in out.splitlines() if line.startswith("=== ")] or ["(no node-setup log)"])[-1]


def measure(state_dir, state, node, amis, runs):
    ec2 = moto_cluster.client("ec2", state["endpoint_url"], state["region"])
    times = {way: [] for way in amis}
    for _round in range(runs):
        for way, ami in amis.items():
            power_down(state, node)
            image_layers.launch_queue_from(ec2, state["launch_templates"][0], ami)
            times[way].append(timed_start(state_dir, state, node))
            print("  %-14s %6.1f s  %6.1f s   %s" % (way, *times[way][-1], setup_log_tail(state, node)), flush=True)
    power_down(state, node)
    image_layers.launch_queue_from(ec2, state["launch_templates"][0], amis["setup at boot"])
    return {way: [statistics.median(t[k] for t in values) for k in (0, 1)] for way, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--state-dir", help="a running sandbox with a dynamic node (default: one of its own)")
    args = parser.parse_args()
    up_args = ["--compute-nodes", "1", "--dynamic-nodes", "1", "--scaledown-idletime", "10", "--gpus-per-node", "1"]
    with staging.bench_sandbox("hpc-pcluster-bench-image-", args.state_dir, up_args) as (work, state_dir):
        state = json.loads((state_dir / "state.json").read_text())
        if not state.get("dynamic_nodes"):
            sys.exit("the sandbox in %s has no dynamic node (up --dynamic-nodes 1)" % state_dir)
        node = state["dynamic_nodes"][0]
        default_ami = json.loads((state_dir / "moto-amis.json").read_text())[0]["ami_id"]
        ami, build_seconds = bake(state_dir, work)
        print("image %s baked in %.1f s (pcluster build-image on the sandbox's image builder)" % (ami, build_seconds))
        print("dynamic node %s: a job's submission to its start, its instance's launch to the job's start:" % node)
        medians = measure(state_dir, state, node, {"setup at boot": default_ami, "baked image": ami}, args.runs)
        boot, baked = medians["setup at boot"], medians["baked image"]
        print("\n%-26s  %17s  %15s  %22s" % ("", "setup at boot (s)", "baked image (s)", "ratio boot/baked image"))
        for index, what in enumerate(("submission to start", "instance launch to start")):
            print("%-26s  %17.1f  %15.1f  %22.2f" % (what, boot[index], baked[index], boot[index] / baked[index]))
        print("\nmedians of %d run(s) each, the node powered down before each" % args.runs)


if __name__ == "__main__":
    main()
