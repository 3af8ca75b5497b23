"""A compute node's OnNodeConfigured custom actions, run inside a sandbox node as its bootstrap runs them.

On AWS, a compute node's bootstrap (ParallelCluster's user data) learns its Slurm node name from the cluster's
node table (a Query of its ``InstanceId`` index, with the node's instance role), runs the cookbook's ``config``
recipes, then ``fetch_and_run -postinstall`` - the cookbook's ``custom_action_executor.py`` - then the
``finalize`` recipes, which start slurmd. The executor takes the node's queue's
``CustomActions.OnNodeConfigured`` (``Sequence`` of ``{Script, Args}``, or one ``Script``) from the
cluster config, downloads every script first (``s3://`` with the node's instance role, ``https://``),
then runs them one after the other as root, each with its ``Args`` and the environment of the
bootstrap plus ``cfn_postinstall``/``cfn_postinstall_args``. The first download or script that fails
fails the node's bootstrap (the error goes to ``/var/log/parallelcluster/bootstrap_error_msg``) and
ParallelCluster replaces the node.

Here the same happens inside a sandbox node (its mount, UTS and network namespaces, entered with
``nsenter``): the config is the one registered in moto; the node's name and the ``s3://`` scripts
come from moto with the credentials the node's instance metadata service gives it (imds.py: its
instance role), asked for from inside the node's network namespace (the calls themselves are made
by this process, since a node does not reach moto); and the node has the files the cookbook writes
before: ``/etc/parallelcluster/cfnconfig`` and ``slurm_plugin/slurm_nodename``.
Scripts land in the node's ``/var/lib/hpc-pcluster-sandbox/custom-actions/`` and their output in the
sandbox's ``logs/boot-<node>.log``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import urllib.request
from pathlib import Path

import imds

SCRIPTS_DIR = "/var/lib/hpc-pcluster-sandbox/custom-actions"
BOOTSTRAP_PATH = "/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"
HTTPS_TIMEOUT = 10


class ActionFailed(Exception):
    """A download or a script that failed: the node's bootstrap fails."""

    def __init__(self, stage: str, step: int, url: str, detail: str, message: str | None = None):
        super().__init__(message or f"OnNodeConfigured script {step} ({url}) failed {stage}: {detail}")
        self.stage, self.step, self.url, self.detail = stage, step, url, detail

    @property
    def reason(self) -> str:
        """A short reason for Slurm's node state."""
        return f"{self.stage} OnNodeConfigured script {self.step}" if self.step else self.stage


def node_access(pid: int) -> dict:
    """What the node learns from its instance metadata service: {instance_id, region, role, credentials}."""
    try:
        return imds.node_identity(f"/proc/{pid}/ns/net")
    except (OSError, RuntimeError) as exc:
        raise ActionFailed("asking the instance metadata service", 0, "http://169.254.169.254", str(exc),
                           f"the node's instance metadata service did not answer: {exc}") from exc


def client(service: str, access: dict, endpoint_url: str):
    import boto3  # pylint: disable=import-outside-toplevel

    return boto3.session.Session(region_name=access["region"], **(access["credentials"] or {})).client(
        service, endpoint_url=endpoint_url)


def node_name(access: dict, cluster: dict) -> str:
    """The node's Slurm name, as ParallelCluster's compute bootstrap learns it (cookbook helpers.rb dynamodb_info): a
    Query of the node table's InstanceId index with the node's role. Raises ActionFailed as that bootstrap fails."""
    table = f"parallelcluster-slurm-{cluster['cluster_name']}"
    try:
        items = client("dynamodb", access, cluster["endpoint_url"]).query(
            TableName=table, IndexName="InstanceId", KeyConditionExpression="InstanceId = :instance",
            ExpressionAttributeValues={":instance": {"S": access["instance_id"]}}, ProjectionExpression="Id")["Items"]
    except Exception as exc:  # pylint: disable=broad-except  # any error fails the bootstrap, as the cookbook's
        raise ActionFailed("learning the node name", 0, table, str(exc),
                           f"Failed when retrieving Compute info from DynamoDB: {exc}") from exc
    if not items:
        raise ActionFailed("learning the node name", 0, table, "no item", "Failed when retrieving Compute info from "
                           f"DynamoDB: {table} holds no node for instance {access['instance_id']}")
    return items[0]["Id"]["S"]


def queue_sequence(config: dict, queue: str) -> list:
    """[(url, args)] of the queue's OnNodeConfigured actions, as the executor reads them."""
    for item in (config.get("Scheduling") or {}).get("SlurmQueues") or []:
        if item.get("Name") != queue:
            continue
        actions = ((item.get("CustomActions") or {}).get("OnNodeConfigured")) or {}
        steps = actions.get("Sequence") if "Sequence" in actions else ([actions] if actions.get("Script") else [])
        return [(step["Script"], [str(arg) for arg in step.get("Args") or []]) for step in steps or []]
    return []


def fetch(url: str, endpoint_url: str, access: dict) -> bytes:
    if url.startswith("s3://"):
        bucket, _sep, key = url[len("s3://"):].partition("/")
        return client("s3", access, endpoint_url).get_object(Bucket=bucket, Key=key)["Body"].read()
    if url.startswith("https://"):
        with urllib.request.urlopen(url, timeout=HTTPS_TIMEOUT) as response:  # noqa: S310 (https only)
            return response.read()
    raise ValueError("URL must be an s3 or HTTPs URL")


def cfnconfig(node: dict, cluster: dict) -> str:
    """What the cookbook's cfnconfig holds on a compute node (the executor's scripts may source it)."""
    head_ip = cluster["head_ip"]
    lines = [f"stack_name={cluster['cluster_name']}",
             "cfn_postinstall=\"/opt/parallelcluster/scripts/fetch_and_run --execute-via-cfnconfig -postinstall\"",
             f"cfn_region={cluster['region']}", "cfn_scheduler=slurm", "cfn_node_type=ComputeFleet",
             "cfn_cluster_user=root", f"cfn_head_node=ip-{head_ip.replace('.', '-')}",
             f"cfn_head_node_private_ip={head_ip}", f"cfn_scheduler_queue_name={node['queue']}"]
    return "\n".join(lines) + "\n"


def write_in_node(pid: int, path: str, data: bytes, mode: int) -> None:
    target = Path(f"/proc/{pid}/root{path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    os.chmod(target, mode)


def run_sequence(pid: int, node: dict, cluster: dict, log_path: Path) -> list:
    """Run node's queue's OnNodeConfigured sequence in the node held by pid. node: {name, queue};
    cluster: {config, endpoint_url, region, cluster_name, head_ip}. Returns [{url, rc, seconds}];
    raises ActionFailed (after writing the node's bootstrap_error_msg) at the first failure."""
    write_in_node(pid, "/etc/parallelcluster/cfnconfig", cfnconfig(node, cluster).encode(), 0o644)
    sequence = queue_sequence(cluster["config"], node["queue"])
    try:
        access = node_access(pid)
        write_in_node(pid, "/etc/parallelcluster/slurm_plugin/slurm_nodename",
                      (node_name(access, cluster) + "\n").encode(), 0o644)
        scripts = []
        for step, (url, args) in enumerate(sequence, 1):
            try:
                body = fetch(url, cluster["endpoint_url"], access)
            except Exception as exc:  # pylint: disable=broad-except  # any download error fails the bootstrap
                raise ActionFailed("downloading", step, url, str(exc)) from exc
            path = f"{SCRIPTS_DIR}/{step}-{url.rsplit('/', 1)[-1]}"
            write_in_node(pid, path, body, 0o755)
            scripts.append((step, url, args, path))
        return [_execute(pid, script, log_path) for script in scripts]
    except ActionFailed as failure:
        write_in_node(pid, "/var/log/parallelcluster/bootstrap_error_msg", (str(failure) + "\n").encode(), 0o644)
        raise


def _execute(pid: int, script: tuple, log_path: Path) -> dict:
    step, url, args, path = script
    env = {"PATH": BOOTSTRAP_PATH, "HOME": "/root", "LANG": "C.UTF-8", "cfn_postinstall": f'"{url}"',
           "cfn_postinstall_args": "(" + " ".join(shlex.quote(a) for a in args) + ")"}
    started = time.monotonic()
    with open(log_path, "ab") as log:
        log.write(f"--- {time.strftime('%H:%M:%S')} OnNodeConfigured step {step}: {url} {shlex.join(args)}\n".encode())
        log.flush()
        proc = subprocess.run(["nsenter", "-t", str(pid), "-m", "-u", "-n", "--", "env", "-i",
                               *[f"{k}={v}" for k, v in env.items()], path, *args],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.PIPE, cwd="/", check=False)
        log.write(proc.stderr)
    if proc.returncode != 0:
        raise ActionFailed("executing", step, url, f"exit status {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace').strip()[-500:]}")
    return {"url": url, "rc": 0, "seconds": round(time.monotonic() - started, 2)}
