"""The sandbox's stand-in for ParallelCluster clustermgtd's compute fleet handling.

`pcluster update-compute-fleet` only writes ``STOP_REQUESTED`` / ``START_REQUESTED``
into the cluster's DynamoDB table ``parallelcluster-<name>`` (item ``Id=COMPUTE_FLEET``,
map ``Data`` with ``status`` and ``lastStatusUpdatedTime``, pcluster
``models/compute_fleet_status_manager.py``). On AWS, clustermgtd on the head node
then moves it on; this process does the same for the sandbox, one step per poll
(every ``--interval`` seconds, conditional writes like clustermgtd's):

    STOP_REQUESTED -> STOPPING -> STOPPED      START_REQUESTED -> STARTING -> RUNNING

For the sandbox's own cluster it also does what clustermgtd does to Slurm: on
STOPPING the partition goes ``INACTIVE`` and the static compute nodes ``DOWN`` with
the reason ``compute fleet stopped`` (ParallelCluster powers them down and
terminates their instances); on STARTING the partition goes ``UP`` and those nodes
are resumed (idle again). STOPPED / RUNNING are written only once Slurm shows it.

Every ``parallelcluster-*`` table of this moto is handled (status only): those of
the sandbox's region and of every region holding ParallelCluster's default bucket
``parallelcluster-<hash>-v1-do-not-delete`` (register_cluster and pcluster create it),
so clusters that tests register with sandbox/moto_cluster.py move on too.

Each transition is logged as one line ``<time> <region> <cluster> <from> -> <to>``.

With ``--state-dir`` it also does what ParallelCluster's slurm_resume, slurm_suspend and
clustermgtd do to compute node instances (instances.py): Slurm's ResumeProgram and SuspendProgram
(``sandbox/bin/slurm-resume``, ``slurm-suspend``) and ``sandbox.py replace-node`` leave requests in
``<state>/fleet/requests/`` (``resume <hostlist>``, ``suspend <hostlist>``, ``replace <node>``); each
node of a request is handled in a thread of its own - launched and booted (its OnNodeConfigured
sequence, then slurmd), terminated, or terminated and launched again - and the outcome written to
``<state>/fleet/done/<request>.json``. A node whose bootstrap fails is terminated and set DOWN in Slurm
with the reason, as ParallelCluster does. One log line per step.

The process exits by itself when the head node's holder process is gone.
Started by `sandbox.py up`, stopped by `sandbox.py down`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import moto_cluster  # noqa: E402  pylint: disable=wrong-import-position

TABLE_PREFIX = "parallelcluster-"
KEY = {"Id": {"S": "COMPUTE_FLEET"}}
NEXT = {"STOP_REQUESTED": "STOPPING", "STOPPING": "STOPPED", "START_REQUESTED": "STARTING", "STARTING": "RUNNING"}
STOP_REASON = "compute fleet stopped"


def now() -> str:
    """The timestamp format pcluster writes (str(datetime.now(tz=timezone.utc)))."""
    return str(datetime.datetime.now(tz=datetime.timezone.utc))


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {msg}", flush=True)


class Slurm:
    """scontrol/sinfo on the head node (inside its namespaces)."""

    def __init__(self, head_pid: int, partition: str, nodes: list):
        self.head_pid = head_pid
        self.partition = partition
        self.nodes = nodes
        self.netns = self._netns()

    def _netns(self):
        try:
            return os.stat(f"/proc/{self.head_pid}/ns/net").st_ino
        except OSError:
            return None

    def alive(self) -> bool:
        return self.netns is not None and self._netns() == self.netns

    def run(self, *argv) -> str:
        result = subprocess.run(["nsenter", "-t", str(self.head_pid), "-m", "-u", "-n", "--", *argv],
                                capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {(result.stderr or result.stdout).strip()}")
        return result.stdout

    def node_states(self) -> dict:
        out = self.run("sinfo", "--noheader", "--Node", "--partition", self.partition, "--format=%N %T")
        return dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)

    def partition_state(self) -> str:
        return self.run("sinfo", "--noheader", "--partition", self.partition, "--format=%a").split()[0]

    def stop(self) -> None:
        self.run("scontrol", "update", f"PartitionName={self.partition}", "State=INACTIVE")
        self.run("scontrol", "update", f"NodeName={','.join(self.nodes)}", "State=DOWN", f"Reason={STOP_REASON}")

    def stopped(self) -> bool:
        states = self.node_states()
        return (self.partition_state().startswith("inact")
                and all(states.get(n, "").lower().startswith("down") for n in self.nodes))

    def start(self) -> None:
        self.run("scontrol", "update", f"PartitionName={self.partition}", "State=UP")
        out = self.run("sinfo", "--noheader", "--Node", "--partition", self.partition, "--format=%N|%E")
        ours = [name for name, _sep, reason in (line.partition("|") for line in out.splitlines())
                if name in self.nodes and reason.strip() == STOP_REASON]
        if ours:
            self.run("scontrol", "update", f"NodeName={','.join(ours)}", "State=RESUME")

    def started(self) -> bool:
        states = self.node_states()
        return self.partition_state() == "up" and all(states.get(n) in ("idle", "allocated", "mixed")
                                                      for n in self.nodes)


class NodeRequests:
    """Requests to power nodes up or down or to replace them (ResumeProgram, SuspendProgram, replace-node)."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.requests = state_dir / "fleet" / "requests"
        self.done = state_dir / "fleet" / "done"
        self.lock = threading.Lock()

    def poll(self) -> None:
        for path in sorted(self.requests.glob("*.req")):
            taken = path.with_suffix(".taken")
            try:
                path.rename(taken)
            except OSError:
                continue
            words = taken.read_text().split()
            threading.Thread(target=self.handle, args=(taken, words), daemon=True).start()

    def handle(self, taken: Path, words: list) -> None:
        import instances  # pylint: disable=import-outside-toplevel
        action, target = (words + ["", ""])[:2]
        outcome = {"request": taken.stem, "action": action, "target": target, "nodes": {}}
        try:
            with self.lock:  # one request at a time reads and writes the state files
                cluster = instances.Cluster(self.state_dir)
            names = cluster.hostnames(target) if action in ("resume", "suspend") else [target]
            threads = [threading.Thread(target=self.node, args=(cluster, action, name, outcome)) for name in names]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except Exception as exc:  # pylint: disable=broad-except  # reported in the outcome, the stand-in goes on
            outcome["error"] = f"{exc}"
            log(f"{action} {target}: {traceback.format_exc()}")
        self.done.mkdir(parents=True, exist_ok=True)
        tmp = self.done / f".{taken.stem}.tmp"
        tmp.write_text(json.dumps(outcome, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.done / f"{taken.stem}.json")
        taken.unlink(missing_ok=True)

    def node(self, cluster, action: str, name: str, outcome: dict) -> None:
        import custom_actions  # pylint: disable=import-outside-toplevel
        import instances  # pylint: disable=import-outside-toplevel
        started = time.monotonic()
        result = {"action": action}
        outcome["nodes"][name] = result
        try:
            if action == "suspend":
                instances.terminate(cluster, name, keep_network=False)
            else:
                if action == "replace":
                    cluster.slurm("scontrol", "update", f"NodeName={name}", "State=DOWN",
                                  "Reason=sandbox: the instance is being replaced")
                    instances.terminate(cluster, name, keep_network=True)
                pid = instances.launch(cluster, name)
                log(f"{action} {name}: instance launched, booting (holder {pid})")
                result["boot"] = instances.boot(cluster, name, pid)
            result["ok"] = True
        except custom_actions.ActionFailed as failure:
            result.update(ok=False, error=str(failure))
            instances.terminate(cluster, name, keep_network=not cluster.node(name).get("dynamic"))
            cluster.slurm("scontrol", "update", f"NodeName={name}", "State=DOWN",
                          f"Reason=bootstrap failure: {failure.reason}")
        except Exception as exc:  # pylint: disable=broad-except  # reported in the outcome
            result.update(ok=False, error=f"{exc}")
            log(f"{action} {name}: {traceback.format_exc()}")
        result["seconds"] = round(time.monotonic() - started, 2)
        log(f"{action} {name}: {'done' if result['ok'] else 'FAILED: ' + result['error']} in {result['seconds']} s")


class FleetStandIn:
    def __init__(self, args):
        self.endpoint_url = args.endpoint_url
        self.region = args.region
        self.cluster_name = args.cluster_name
        self.interval = args.interval
        self.discover_every = args.discover_every
        self.slurm = Slurm(args.head_pid, args.partition, args.nodes.split(",")) if args.head_pid else None
        self.tables = {(self.region, TABLE_PREFIX + self.cluster_name)}
        self.bucket_regions = {}
        self.last_discovery = 0.0
        self.node_requests = NodeRequests(Path(args.state_dir)) if args.state_dir else None

    def ddb(self, region):
        return moto_cluster.client("dynamodb", self.endpoint_url, region)

    def regions(self) -> set:
        """The sandbox's region and every region holding ParallelCluster's default bucket."""
        regions = {self.region}
        s3 = moto_cluster.client("s3", self.endpoint_url, self.region)
        for bucket in s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            if not (name.startswith("parallelcluster-") and name.endswith("-v1-do-not-delete")):
                continue
            if name not in self.bucket_regions:
                location = s3.get_bucket_location(Bucket=name).get("LocationConstraint")
                self.bucket_regions[name] = location or "us-east-1"
            regions.add(self.bucket_regions[name])
        return regions

    def discover(self) -> None:
        tables = {(self.region, TABLE_PREFIX + self.cluster_name)}
        for region in self.regions():
            for page in self.ddb(region).get_paginator("list_tables").paginate():
                tables |= {(region, t) for t in page.get("TableNames", []) if t.startswith(TABLE_PREFIX)}
        self.tables = tables
        self.last_discovery = time.monotonic()

    def ours(self, region, table) -> bool:
        return self.slurm is not None and (region, table) == (self.region, TABLE_PREFIX + self.cluster_name)

    def step(self, region: str, table: str) -> None:
        ddb = self.ddb(region)
        try:
            item = ddb.get_item(TableName=table, Key=KEY, ConsistentRead=True).get("Item")
        except ddb.exceptions.ResourceNotFoundException:
            self.tables.discard((region, table))
            return
        status = ((item or {}).get("Data", {}).get("M", {}).get("status", {}).get("S"))
        following = NEXT.get(status)
        if following is None:
            return
        if self.ours(region, table):
            if following == "STOPPING":
                self.slurm.stop()
            elif following == "STARTING":
                self.slurm.start()
            elif following == "STOPPED" and not self.slurm.stopped():
                self.slurm.stop()
                return
            elif following == "RUNNING" and not self.slurm.started():
                self.slurm.start()
                return
        try:
            ddb.update_item(
                TableName=table, Key=KEY,
                UpdateExpression="set #dt.#st=:s, #dt.#lut=:t",
                ConditionExpression="#dt.#st = :current",
                ExpressionAttributeNames={"#dt": "Data", "#st": "status", "#lut": "lastStatusUpdatedTime"},
                ExpressionAttributeValues={":s": {"S": following}, ":t": {"S": now()},
                                           ":current": {"S": status}})
        except ddb.exceptions.ConditionalCheckFailedException:
            return  # changed meanwhile (e.g. a new request): looked at again on the next poll
        log(f"{region} {table[len(TABLE_PREFIX):]} {status} -> {following}")

    def run(self) -> int:
        log(f"compute fleet stand-in for {self.cluster_name} ({self.region}) at {self.endpoint_url}, "
            f"every {self.interval} s")
        while True:
            if self.slurm is not None and not self.slurm.alive():
                log("the head node is gone; exiting")
                return 0
            if self.node_requests is not None:
                try:
                    self.node_requests.poll()
                except OSError as exc:
                    log(f"node requests: {exc}")
            try:
                if time.monotonic() - self.last_discovery >= self.discover_every:
                    self.discover()
                for region, table in sorted(self.tables):
                    try:
                        self.step(region, table)
                    except Exception as exc:  # pylint: disable=broad-except
                        log(f"{region} {table}: {exc}")
            except Exception as exc:  # pylint: disable=broad-except
                # moto restarting or busy: try again on the next poll.
                log(f"poll failed: {exc}")
            time.sleep(self.interval)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--cluster-name", required=True)
    parser.add_argument("--head-pid", type=int, help="holder process of the head node (Slurm actions)")
    parser.add_argument("--partition", default="compute-gpu")
    parser.add_argument("--nodes", default="", help="the static compute nodes, comma-separated")
    parser.add_argument("--state-dir", help="the sandbox's state dir: handle its node requests (see above)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--discover-every", type=float, default=3.0,
                        help="seconds between looks for other clusters' tables")
    return FleetStandIn(parser.parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
