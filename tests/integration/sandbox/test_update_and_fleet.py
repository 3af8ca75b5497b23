"""The real pcluster against the default sandbox: update dry runs of the registered cluster, and the compute fleet
of a cluster registered without nodes (no head node runs for it: the sandbox moves its status on as
clusterstatusmgtd would, sandbox/headless_fleet.py).

The update checks are dry runs only: the default sandbox's stored config is never changed. The fleet of the
sandbox's own cluster, stopped and started by ParallelCluster's own code on its head node, is
tests/e2e/test_node_daemons.py's (it needs Slurm's power saving on, which the guide's ScaledownIdletime -1 turns off).
"""

from __future__ import annotations

import json
import pathlib
import secrets
import time

import yaml

import moto_cluster  # sandbox/moto_cluster.py

ROOT = pathlib.Path(__file__).resolve().parents[3]
PYTHON = str(ROOT / ".venv" / "bin" / "python")

# Runs pcluster.lib's update_cluster(dryrun=True) in a process of its own (pcluster caches its AWS
# clients per process) and prints the exception's class and content as JSON.
DRYRUN_SCRIPT = """
import json, os, sys
import pcluster.lib as pc
config = json.loads(sys.stdin.read())
try:
    out = {"returned": pc.update_cluster(cluster_name=os.environ["SANDBOX_CLUSTER_NAME"], cluster_configuration=config,
                                         dryrun=True, suppress_validators=["ALL"], region=os.environ["AWS_REGION"])}
except Exception as exc:
    content = getattr(exc, "content", None)
    out = {"exception": type(exc).__name__, "content": content.to_dict() if hasattr(content, "to_dict") else str(exc)}
print(json.dumps(out, default=str))
"""

FLEET_TIMEOUT = 30


def stored_config(sandbox):
    return yaml.safe_load(pathlib.Path(sandbox.cluster_config_path).read_text())


def dryrun_update(sandbox, config):
    proc = sandbox.run([PYTHON, "-c", DRYRUN_SCRIPT], input=json.dumps(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compute_resource(config):
    return config["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]


def test_update_dryrun_without_changes_finds_none(sandbox):
    out = dryrun_update(sandbox, stored_config(sandbox))
    assert out["exception"] == "BadRequestException", out
    assert "No changes found in your cluster configuration" in out["content"]["message"]


def test_update_dryrun_of_max_count_would_succeed_with_a_change_set(sandbox):
    config = stored_config(sandbox)
    before = compute_resource(config)["MaxCount"]
    compute_resource(config)["MaxCount"] = before + 1
    out = dryrun_update(sandbox, config)
    assert out["exception"] == "DryrunOperationException", out
    assert out["content"]["message"] == "Request would have succeeded, but DryRun flag is set."
    assert out["content"]["change_set"] == [{
        "parameter": "Scheduling.SlurmQueues[compute-gpu].ComputeResources[distributed-ml].MaxCount",
        "current_value": str(before), "requested_value": str(before + 1)}]


def test_update_dryrun_of_instance_type_needs_the_fleet_stopped(sandbox):
    config = stored_config(sandbox)
    compute_resource(config)["InstanceType"] = "g5.12xlarge"
    out = dryrun_update(sandbox, config)
    assert out["exception"] == "UpdateClusterBadRequestException", out
    errors = out["content"]["update_validation_errors"]
    assert [e["parameter"] for e in errors] == [
        "Scheduling.SlurmQueues[compute-gpu].ComputeResources[distributed-ml].InstanceType"]
    assert "All compute nodes must be stopped" in errors[0]["message"]
    # Only a dry run: the stored config is unchanged.
    assert compute_resource(stored_config(sandbox))["InstanceType"] == "g5.8xlarge"


# --------------------------------------------------------------------------- compute fleet


def fleet_status(sandbox, name, region):
    proc = sandbox.run(["pcluster", "describe-compute-fleet", "--cluster-name", name, "--region", region])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["status"]


def request_fleet(sandbox, name, region, status):
    proc = sandbox.run(["pcluster", "update-compute-fleet", "--cluster-name", name, "--region", region,
                        "--status", status])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["status"]


def wait_fleet(sandbox, name, region, goal):
    seen = []
    deadline = time.monotonic() + FLEET_TIMEOUT
    while time.monotonic() < deadline:
        status = fleet_status(sandbox, name, region)
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == goal:
            return seen
        time.sleep(0.5)
    raise AssertionError("compute fleet of %s did not reach %s within %d s: %s" % (name, goal, FLEET_TIMEOUT, seen))


def node_states(sandbox):
    out = sandbox.ssh("sinfo --noheader --Node --partition=compute-gpu --format='%N %T %E'").stdout
    return {line.split()[0]: (line.split()[1], " ".join(line.split()[2:])) for line in out.strip().splitlines()}


def headless_transitions(sandbox, name, region):
    """The status changes the sandbox made for a cluster registered without nodes (logs/fleet.log)."""
    log = (sandbox.state_dir / "logs" / "fleet.log").read_text().splitlines()
    out = []
    for line in log:
        parts = line.split()
        if len(parts) == 6 and parts[1:3] == [region, name] and parts[4] == "->":
            out.append((parts[3], parts[5]))
    return out


def test_fleet_of_a_registered_cluster_in_another_region_moves_on(sandbox):
    region, name = "ca-central-1", "sandbox-fleet-%s" % secrets.token_hex(3)
    seed = moto_cluster.seed_environment(sandbox.endpoint_url, region, "10.251.0.0/16", "10.251.0.0/24",
                                         "10.251.16.0/20", name_prefix=name)
    moto_cluster.register_cluster(sandbox.endpoint_url, region, name, "10.251.0.10", compute_count=1,
                                  config=dict(stored_config(sandbox), Region=region),
                                  public_subnet_id=seed["public_subnet_id"],
                                  private_subnet_id=seed["private_subnet_id"])
    try:
        request_fleet(sandbox, name, region, "STOP_REQUESTED")
        wait_fleet(sandbox, name, region, "STOPPED")
        request_fleet(sandbox, name, region, "START_REQUESTED")
        wait_fleet(sandbox, name, region, "RUNNING")
        assert headless_transitions(sandbox, name, region) == [
            ("STOP_REQUESTED", "STOPPING"), ("STOPPING", "STOPPED"),
            ("START_REQUESTED", "STARTING"), ("STARTING", "RUNNING")]
        # Slurm is the sandbox's own cluster's only: its nodes were not touched.
        assert all(state == "idle" for state, _reason in node_states(sandbox).values())
    finally:
        moto_cluster.deregister_cluster(sandbox.endpoint_url, region, name)
