"""ParallelCluster's node daemons at work on the sandbox with a static and a dynamic node (conftest's
dynamic_sandbox, ScaledownIdletime 10: Slurm's power saving on).

The compute fleet: ``pcluster update-compute-fleet`` writes STOP_REQUESTED / START_REQUESTED; on the head
node clusterstatusmgtd (the sandbox's stand-in) moves the status on and runs ParallelCluster's
slurm_fleet_status_manager, which makes the partition INACTIVE, powers its nodes down and terminates every
compute instance (the sandbox's hypervisor stops their nodes) - or brings the partition UP, after which
ParallelCluster's clustermgtd launches the static node again.

A failed bootstrap: the static node's
OnNodeConfigured sequence is made to fail once (a script in moto's S3 that exits 1 the first time it runs on
any node), and the node is drained. ParallelCluster's clustermgtd replaces the drained node; the new
instance's bootstrap fails, and, as ParallelCluster's user data does, the node shuts itself down: the
sandbox's hypervisor terminates the instance (the launch template's shutdown behaviour). clustermgtd then
finds a static node in replacement without its instance - a bootstrap failure, counted towards PROTECTED -
and replaces it again; that instance boots and the node is up (idle, or maint while held for its node setup).
"""

import json
import re
import subprocess
import time

import pytest

import nodes  # sandbox/nodes.py

STATIC = "compute-gpu-st-distributed-ml-1"
MARKER = "/home/.e2e-bootstrap-failed-once"
FAIL_ONCE = """#!/bin/bash
# compute node bootstrap script (e2e): fails the first time it runs on any node of the cluster
if [ ! -e %s ]; then touch %s; echo 'failing this bootstrap once' >&2; exit 1; fi
echo 'compute node configured'
""" % (MARKER, MARKER)


def compute_script(sandbox):
    """(bucket, key) of the queue's compute node bootstrap script (the seeded S3 object)."""
    url = sandbox.state["aws"]["compute_node_bootstrap_script"]
    bucket, _sep, key = url[len("s3://"):].partition("/")
    return bucket, key


@pytest.fixture(name="failing_once")
def fixture_failing_once(dynamic_sandbox):
    s3 = dynamic_sandbox.aws("s3")
    bucket, key = compute_script(dynamic_sandbox)
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=FAIL_ONCE.encode())
    try:
        yield dynamic_sandbox
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original)
        dynamic_sandbox.head("rm", "-f", MARKER, check=False)


def wait_for(what, condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(2)
    raise AssertionError("%s within %d s" % (what, timeout))


def node_up(sandbox, node):
    """The node booted and answers Slurm: idle, or maint while the collection's node-setup loader holds it out of
    scheduling (no node-setup bundle is staged in this sandbox; ParallelCluster's create accepts maint too). Read
    from scontrol's state flags: sinfo shows a held node as maint whatever its power state."""
    return nodes.node_up(power_flags(sandbox).get(node, set()))


def test_a_static_node_whose_bootstrap_fails_is_replaced_by_clustermgtd(failing_once):
    sandbox = failing_once
    ec2 = sandbox.aws("ec2")
    first = sandbox.instance_of(STATIC)
    sandbox.wait_not_in_replacement(STATIC)
    sandbox.head("scontrol", "update", "nodename=%s" % STATIC, "state=drain", "reason=e2e: bootstrap failure")

    # clustermgtd launches a replacement, whose OnNodeConfigured fails: the node shuts down, its instance terminates.
    failed = wait_for("a replacement instance of %s" % STATIC,
                      lambda: sandbox.instance_of(STATIC) not in (None, first) and sandbox.instance_of(STATIC), 120)

    def state_of(instance):
        return ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"]

    wait_for("the failed instance %s terminated" % failed, lambda: state_of(failed) == "terminated", 180)
    log = (sandbox.state_dir / "logs" / ("boot-%s.log" % failed)).read_text()
    assert "Failed to execute OnNodeConfigured script 2" in log and "return code: 1." in log, log
    assert "shutdown: the instance is powering off" in log, log
    assert state_of(first) == "terminated"

    # clustermgtd counts the bootstrap failure and replaces the node again; that instance boots.
    last = wait_for("another instance of %s" % STATIC,
                    lambda: sandbox.instance_of(STATIC) not in (None, first, failed) and sandbox.instance_of(STATIC), 180)
    wait_for("%s up" % STATIC, lambda: node_up(sandbox, STATIC), 240)
    assert state_of(last) == "running"
    clustermgtd = sandbox.head_file("/var/log/parallelcluster/clustermgtd")
    assert "Found the following bootstrap failure nodes" in clustermgtd and STATIC in clustermgtd
    assert "Partitions bootstrap failure count: {'compute-gpu': {'distributed-ml': " in clustermgtd
    # slurmd registers before the bootstrap's last steps: the hypervisor records its outcome when it has ended.
    records = wait_for("the outcome of %s's bootstrap" % last,
                       lambda: sandbox.node_records().get(last, {}).get("bootstrap") and sandbox.node_records(), 60)
    assert records[last]["name"] == STATIC and records[last]["bootstrap"] == "ok", records
    assert failed not in records and first not in records


def pcluster(sandbox, *args):
    proc = subprocess.run(["pcluster", *args, "--cluster-name", sandbox.cluster_name, "--region", sandbox.state["region"]],
                          capture_output=True, text=True, env=sandbox.env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def compute_instances(sandbox):
    reservations = sandbox.aws("ec2").describe_instances(Filters=[
        {"Name": "tag:parallelcluster:cluster-name", "Values": [sandbox.cluster_name]},
        {"Name": "tag:parallelcluster:node-type", "Values": ["Compute"]}])["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}


def sinfo(sandbox, fmt):
    return sandbox.head("sinfo", "--noheader", "--partition=compute-gpu", "--format=%s" % fmt).split()


def power_flags(sandbox):
    """{node: the flags of its state} as scontrol shows them (IDLE, CLOUD, POWER_DOWN, MAINTENANCE, ...)."""
    out = sandbox.head("scontrol", "show", "nodes", "--oneliner")
    return {m.group(1): set(m.group(2).split("+")) for m in re.finditer(r"^NodeName=(\S+) .*?\bState=(\S+)", out, re.M)}


def test_fleet_stop_and_start_are_carried_out_by_parallelcluster_s_code(dynamic_sandbox):
    sandbox = dynamic_sandbox
    log = "/var/log/parallelcluster/clusterstatusmgtd"
    moves = re.compile(r"Updating compute fleet status from (\w+) to (\w+)")
    before = len(moves.findall(sandbox.head_file(log)))
    running = {i for i, state in compute_instances(sandbox).items() if state == "running"}
    assert pcluster(sandbox, "describe-compute-fleet")["status"] == "RUNNING" and running

    # pcluster answers with the status it reads back; clusterstatusmgtd may have moved it on already.
    assert pcluster(sandbox, "update-compute-fleet", "--status", "STOP_REQUESTED")["status"] in ("STOP_REQUESTED", "STOPPING")
    wait_for("the fleet STOPPED", lambda: pcluster(sandbox, "describe-compute-fleet")["status"] == "STOPPED", 90)
    assert sinfo(sandbox, "%a") == ["inactive"]
    # power down pending, powering down or powered down (sinfo's compact state shows a node held for its node setup
    # as maint whatever its power state: scontrol shows the flags)
    flags = power_flags(sandbox)
    assert flags and all(f & {"POWER_DOWN", "POWERING_DOWN", "POWERED_DOWN"} for f in flags.values()), flags
    terminated = compute_instances(sandbox)
    assert all(terminated[i] == "terminated" for i in running), terminated
    wait_for("no node of a terminated instance", lambda: not sandbox.node_records() or all(
        r["node_type"] == "HeadNode" for r in sandbox.node_records().values()), 60)
    manager = sandbox.head_file("/var/log/parallelcluster/slurm_fleet_status_manager.log")
    assert "Setting slurm partitions to INACTIVE and terminating all compute nodes" in manager
    # A start resumes the nodes that are powering down (%), which makes them powered down at once; a node whose
    # power down is still pending (!) until slurmctld's next power-save pass (power_save_min_interval=30) would be
    # suspended after the start, and powered down for good (idle~) under the new instance clustermgtd gave it.
    wait_for("no power down pending", lambda: all(f & {"POWERING_DOWN", "POWERED_DOWN"} for f in power_flags(sandbox).values()), 60)

    assert pcluster(sandbox, "update-compute-fleet", "--status", "START_REQUESTED")["status"] in ("START_REQUESTED", "STARTING")
    wait_for("the fleet RUNNING", lambda: pcluster(sandbox, "describe-compute-fleet")["status"] == "RUNNING", 90)
    assert sinfo(sandbox, "%a") == ["up"]
    # clustermgtd launches the static node again: a new instance, booted by the hypervisor, up in Slurm.
    wait_for("%s up" % STATIC, lambda: node_up(sandbox, STATIC), 240)
    again = {i for i, state in compute_instances(sandbox).items() if state == "running"}
    assert len(again) == 1 and not again & running, (running, again)
    assert moves.findall(sandbox.head_file(log))[before:] == [
        ("STOP_REQUESTED", "STOPPING"), ("STOPPING", "STOPPED"), ("START_REQUESTED", "STARTING"), ("STARTING", "RUNNING")]
