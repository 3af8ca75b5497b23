"""A node's bootstrap in the sandbox: ParallelCluster's user data and the cookbook's recipes, emulated.

On AWS an instance of the cluster boots from ParallelCluster's AMI; its user data writes ``dna.json`` (the
cluster's facts for this node) and runs the cookbook with cinc-client: ``init``, ``fetch_and_run
-preinstall`` (OnNodeStart), ``config``, ``fetch_and_run -postinstall`` (OnNodeConfigured), ``finalize``. Any
failure runs ``shutdown -h now``; the launch template's shutdown behaviour terminates the instance, and
clustermgtd decides what follows. The cookbook (Chef recipes) is not something the sandbox can install, so
its steps that matter to Slurm and to the node daemons run here, inside the node, as the node (its
credentials, its network), written from the cookbook's source as facts:

head node
    the cluster config with its implied values and the instance types data from the cluster's bucket into
    ``/opt/parallelcluster/shared``; Slurm's configuration (slurm_config.py) and the daemons' (node_configs.py);
    the fleet status item ``RUNNING``; OnNodeStart; slurmctld; OnNodeConfigured; supervisord (clustermgtd,
    clusterstatusmgtd).
compute node
    its Slurm node name from the node table (a Query on the ``InstanceId`` index, retried while slurm_resume
    or clustermgtd writes it), ``slurm_nodename``, ``cfnconfig``, its host name; OnNodeStart and OnNodeConfigured
    (the queue's); slurmd under that name; ``scontrol update state=resume`` for a static node; supervisord
    (computemgtd).

    python bootstrap.py [--skip-custom-actions]     (the cookbook virtualenv's Python; exit 1 on a failure,
                                                      with the reason in /var/log/parallelcluster/bootstrap_error_msg)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request

import custom_actions
import node_configs

DNA = "/etc/chef/dna.json"
IDENTITY_COPY = "/run/sandbox/node/identity.json"
IMDS = "http://169.254.169.254"
NODENAME_TRIES = 120


class BootstrapFailed(Exception):
    """A step that failed; its message is the node's bootstrap error."""


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def instance_identity() -> dict:
    """The instance's identity document (instanceId, privateIp, region, availabilityZone, instanceType) from the
    instance metadata service (IMDSv2), as a ParallelCluster node reads it. Until the sandbox serves IMDS in
    the node's namespace, from the copy its hypervisor leaves in the node (the same document)."""
    try:
        token_request = urllib.request.Request(f"{IMDS}/latest/api/token", method="PUT",
                                               headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"})
        with urllib.request.urlopen(token_request, timeout=2) as response:
            token = response.read().decode()
        request = urllib.request.Request(f"{IMDS}/latest/dynamic/instance-identity/document",
                                         headers={"X-aws-ec2-metadata-token": token})
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        with open(IDENTITY_COPY, encoding="utf-8") as handle:
            return json.load(handle)


def write_files(files: dict) -> None:
    """Write {path: (text, mode)} (mode node_configs.LINK: a symbolic link to text)."""
    for path, (text, mode) in files.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if mode == node_configs.LINK:
            if os.path.lexists(path):
                os.unlink(path)
            os.symlink(text, path)
            continue
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, mode)


def run(argv: list, what: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BootstrapFailed(f"{what} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-1000:]}")
    return result.stdout


def virtualenvs() -> dict:
    """ParallelCluster's virtualenvs; this runs with the cookbook virtualenv's Python."""
    envs = os.path.dirname(sys.prefix)
    return {"node": f"{envs}/node_virtualenv", "cookbook": f"{envs}/cookbook_virtualenv"}


def session(region: str):
    import boto3  # pylint: disable=import-outside-toplevel  # the cookbook virtualenv's

    return boto3.session.Session(region_name=region)


def custom_action_steps(event: str, config: dict, queue, aws, skip: bool) -> None:
    steps = [] if skip else custom_actions.sequence(config, event, queue)
    if not steps:
        return
    say(f"{event}: {len(steps)} script(s)")

    def log(text):
        print(text, end="" if text.endswith("\n") else "\n", flush=True)

    try:
        custom_actions.run(event, steps, aws.client("s3"), log)
    except custom_actions.ActionFailed as failure:
        raise BootstrapFailed(f"fetch_and_run - {failure} {custom_actions_suffix()}") from failure


def custom_actions_suffix() -> str:
    return ("Please check /var/log/cfn-init.log in the head node, or check the cfn-init.log in CloudWatch logs. "
            "Please refer to https://docs.aws.amazon.com/parallelcluster/latest/ug/troubleshooting-v3.html"
            "#troubleshooting-v3-get-logs for more details on ParallelCluster logs.")


def start_supervisord(node_type: str, venvs: dict) -> None:
    write_files(node_configs.supervisord(node_type, venvs))
    os.makedirs(node_configs.LOG_DIR, exist_ok=True)
    run([f"{venvs['cookbook']}/bin/supervisord", "-c", "/etc/supervisord.conf"], "supervisord")


# --------------------------------------------------------------------------- head node

def head_node_config(dna: dict, identity: dict, aws) -> tuple:
    """The cluster config and instance types data from the cluster's bucket into the shared directory, and the
    facts the Slurm and daemon configuration is written from: (config, instance types, cluster)."""
    import yaml  # pylint: disable=import-outside-toplevel  # the cookbook virtualenv's

    s3 = aws.client("s3")
    shared = node_configs.SHARED_DIR
    os.makedirs(shared, exist_ok=True)
    for key, name in ((dna["cluster_config_s3_key"], "cluster-config.yaml"),
                      (dna["instance_types_data_s3_key"], "instance-types-data.json")):
        s3.download_file(dna["cluster_s3_bucket"], key, f"{shared}/{name}")
    with open(f"{shared}/cluster-config.yaml", encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    with open(f"{shared}/instance-types-data.json", encoding="utf-8") as handle:
        instance_types = json.load(handle)
    timeout = ((config.get("DevSettings") or {}).get("Timeouts") or {}).get("ComputeNodeBootstrapTimeout") or 1800
    # A stack's dna.json names the cluster by its stack (stack_name); the registered cluster's carries cluster_name.
    cluster = {"cluster_name": dna.get("cluster_name") or dna["stack_name"], "region": dna["region"],
               "slurm_ddb_table": dna["slurm_ddb_table"],
               "head_node_private_ip": identity["privateIp"], "head_node_hostname": socket.gethostname(),
               "instance_id": identity["instanceId"], "compute_node_bootstrap_timeout": timeout,
               "scaling_strategy": (config.get("Scheduling") or {}).get("ScalingStrategy"),
               "clustermgtd_loop_time": node_configs.sandbox_settings().get("clustermgtd_loop_time")}
    return config, instance_types, cluster


def head_node(dna: dict, identity: dict, skip_actions: bool) -> None:
    aws = session(dna["region"])
    config, instance_types, cluster = head_node_config(dna, identity, aws)
    custom_action_steps("OnNodeStart", config, None, aws, skip_actions)
    venvs = virtualenvs()
    write_files({**node_configs.slurm_files(cluster, config, instance_types), **node_configs.daemon_configs(cluster),
                 **node_configs.programs(cluster, venvs)})
    for directory in ("/var/spool/slurm.state", os.path.dirname(node_configs.HEARTBEAT), node_configs.LOG_DIR):
        os.makedirs(directory, exist_ok=True)
    aws.client("dynamodb").put_item(TableName=dna["ddb_table"], Item={"Id": {"S": "COMPUTE_FLEET"}, "Data": {"M": {
        "status": {"S": "RUNNING"}, "lastStatusUpdatedTime": {"S": str(time.strftime("%Y-%m-%d %H:%M:%S+00:00", time.gmtime()))}}}})
    run(["slurmctld"], "slurmctld")
    wait_for_slurmctld()
    say("slurmctld answers")
    custom_action_steps("OnNodeConfigured", config, None, aws, skip_actions)
    start_supervisord("HeadNode", venvs)
    say("supervisord started: clustermgtd, clusterstatusmgtd")


def head_node_update(dna: dict, identity: dict) -> None:
    """The cookbook's update recipe on the head node (update_head_node.rb), after cfn-init deployed the stack
    update's dna.json: clustermgtd stopped, the stored config's Slurm and daemon configuration written,
    slurmctld restarted (nodes a changed queue adds need it with Slurm 22.05) and reconfigured, clustermgtd
    started again."""
    aws = session(dna["region"])
    venvs = virtualenvs()
    run([f"{venvs['cookbook']}/bin/supervisorctl", "stop", "clustermgtd"], "supervisorctl stop clustermgtd")
    config, instance_types, cluster = head_node_config(dna, identity, aws)
    write_files({**node_configs.slurm_files(cluster, config, instance_types), **node_configs.daemon_configs(cluster)})
    run(["scontrol", "shutdown", "slurmctld"], "scontrol shutdown slurmctld")
    for _attempt in range(100):
        if subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False).returncode != 0:
            break
        time.sleep(0.1)
    run(["slurmctld"], "slurmctld")
    wait_for_slurmctld()
    run(["scontrol", "reconfigure"], "scontrol reconfigure")
    run([f"{venvs['cookbook']}/bin/supervisorctl", "start", "clustermgtd"], "supervisorctl start clustermgtd")
    say("head node updated: Slurm's configuration from the stored config, slurmctld restarted, clustermgtd started")


def wait_for_slurmctld(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
        if result.returncode == 0 and "UP" in result.stdout:
            return
        time.sleep(0.2)
    raise BootstrapFailed(f"slurmctld did not answer scontrol ping within {timeout:.0f} s")


# --------------------------------------------------------------------------- compute node

def slurm_nodename(ddb, table: str, instance_id: str) -> str:
    """The node table's Slurm node name for this instance (the cookbook's dynamodb_info, retried)."""
    last = ""
    for _attempt in range(NODENAME_TRIES):
        try:
            items = ddb.query(TableName=table, IndexName="InstanceId", KeyConditionExpression="InstanceId = :instanceid",
                              ExpressionAttributeValues={":instanceid": {"S": instance_id}},
                              ProjectionExpression="Id")["Items"]
            if items:
                return items[0]["Id"]["S"]
            last = "no item yet"
        except Exception as exc:  # pylint: disable=broad-except  # retried like the recipe's ruby_block
            last = str(exc)
        time.sleep(1)
    raise BootstrapFailed(f"Failed when retrieving Compute info from DynamoDB ({table}, instance {instance_id}): {last}")


def cfnconfig(dna: dict, nodename: str) -> str:
    """/etc/parallelcluster/cfnconfig on a compute node (custom action scripts may source it)."""
    head_ip = dna["head_node_private_ip"]
    return "\n".join([f"stack_name={dna['stack_name']}",
                      'cfn_postinstall="/opt/parallelcluster/scripts/fetch_and_run --execute-via-cfnconfig -postinstall"',
                      f"cfn_region={dna['region']}", "cfn_scheduler=slurm", "cfn_node_type=ComputeFleet",
                      f"cfn_cluster_user={dna.get('cluster_user', 'root')}",
                      f"cfn_head_node=ip-{head_ip.replace('.', '-')}", f"cfn_head_node_private_ip={head_ip}",
                      f"cfn_scheduler_queue_name={dna['scheduler_queue_name']}",
                      f"cfn_scheduler_compute_resource_name={dna['scheduler_compute_resource_name']}",
                      f"slurm_nodename={nodename}"]) + "\n"


def boottime_offset(machine_uptime: float, since_bootstrap: float) -> int:
    """The CLOCK_BOOTTIME offset (whole seconds) of a node whose bootstrap started since_bootstrap seconds ago: it
    booted 2 s after that (so never before the Slurm power-up request that launched it), or 1 s ago when that is
    later, its clock showing no more than that (Slurm reads the uptime in whole seconds rounded up: a bootstrap of
    under a second, from a baked image, must not seem to have booted before the request) and more than 0 (the
    kernel refuses an offset that makes the clock negative)."""
    return -math.ceil(machine_uptime - max(1.0, since_bootstrap - 2))


def start_slurmd(nodename: str, booted: float) -> None:
    """slurmd under its node name, in a time namespace whose clock starts when the node booted: Slurm takes a
    node it powered up as booted only with a boot time (now - uptime) after its power-up request."""
    with open("/proc/uptime", encoding="utf-8") as handle:
        machine_uptime = float(handle.read().split()[0])
    offset = boottime_offset(machine_uptime, time.time() - booted)
    run(["unshare", "--time", "--fork", f"--boottime={offset}", "slurmd", "-N", nodename], "slurmd")


def compute_node(dna: dict, identity: dict, booted: float) -> None:
    import yaml  # pylint: disable=import-outside-toplevel  # the cookbook virtualenv's

    aws = session(dna["region"])
    nodename = slurm_nodename(aws.client("dynamodb"), dna["slurm_ddb_table"], identity["instanceId"])
    say(f"Slurm node name: {nodename}")
    write_files({f"{node_configs.PLUGIN_DIR}/slurm_nodename": (nodename, 0o644),
                 "/etc/parallelcluster/cfnconfig": (cfnconfig(dna, nodename), 0o644)})
    run(["hostname", nodename], "hostname")
    with open("/etc/hostname", "w", encoding="utf-8") as handle:
        handle.write(nodename + "\n")
    with open("/etc/hosts", "a", encoding="utf-8") as handle:
        handle.write(f"{identity['privateIp']} {nodename}\n")
    with open(f"{node_configs.SHARED_DIR}/cluster-config.yaml", encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    queue = dna["scheduler_queue_name"]
    custom_action_steps("OnNodeStart", config, queue, aws, False)
    custom_action_steps("OnNodeConfigured", config, queue, aws, False)
    start_slurmd(nodename, booted)
    say("slurmd started")
    if "-st-" in nodename:
        # The finalize recipe: always try to resume a static node on start up (it fails when the node is idle already).
        subprocess.run(["scontrol", "update", f"nodename={nodename}", "state=resume", "reason=Node start up"],
                       capture_output=True, check=False)
    start_supervisord("ComputeFleet", virtualenvs())


def main(argv=None) -> int:
    booted = time.time()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--skip-custom-actions", action="store_true",
                        help="a head node registered as created: its custom actions ran at the create")
    parser.add_argument("--update", action="store_true",
                        help="a stack update on the head node (the sandbox's cinc-client, update entry point)")
    args = parser.parse_args(argv)
    with open(DNA, encoding="utf-8") as handle:
        dna = json.load(handle)["cluster"]
    try:
        identity = instance_identity()
        say(f"{'update' if args.update else 'bootstrap'} of {dna['node_type']} instance {identity['instanceId']} "
            f"({identity['privateIp']})")
        if args.update:
            head_node_update(dna, identity)
        elif dna["node_type"] == "HeadNode":
            head_node(dna, identity, args.skip_custom_actions)
        else:
            compute_node(dna, identity, booted)
    except Exception as exc:  # pylint: disable=broad-except  # every failure is the bootstrap's, as on AWS
        message = str(exc) if isinstance(exc, BootstrapFailed) else f"Failed to run bootstrap recipes: {exc!r}"
        custom_actions.write_error(message)
        say(f"Bootstrap failed with error: {message}")
        return 1
    say(f"bootstrap done in {time.time() - booted:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
