"""The compute fleet status of clusters registered in the sandbox's moto without nodes.

A cluster that moto_cluster.register_cluster registers for a test (in another region, or with
``compute_count`` instances that never boot) has no head node, so no clusterstatusmgtd moves its fleet
status on. For those clusters the sandbox's hypervisor process runs the same transitions as the head
node's clusterstatusmgtd (cookbook/clusterstatusmgtd.py: STOP_REQUESTED -> STOPPING -> STOPPED,
START_REQUESTED -> STARTING -> RUNNING, conditional writes), with nothing to run between them: there is
no Slurm and no clustermgtd (their compute instances stay as registered). The sandbox's own cluster is not
one of them: its head node's daemons move its status.

Every table ``parallelcluster-<name>`` with a ``COMPUTE_FLEET`` item is handled: those of the sandbox's
region and of every region holding ParallelCluster's default bucket ``parallelcluster-<hash>-v1-do-not-delete``
(register_cluster and pcluster create it), looked for every 10 s (each look is two calls to moto per region, the
most of an idle sandbox's), each polled every second. Each transition
is one line ``<time> <region> <cluster> <from> -> <to>`` in ``logs/fleet.log``.
"""

from __future__ import annotations

import time
from pathlib import Path

import clusterstatusmgtd
import moto_cluster
import state_file

TABLE_PREFIX = "parallelcluster-"
NODE_TABLE_PREFIX = "parallelcluster-slurm-"


class HeadlessFleet:
    def __init__(self, endpoint_url: str, region: str, state_dir: Path, interval: float = 1.0, discover_every: float = 10.0):
        self.endpoint_url, self.region = endpoint_url, region
        self.log_path = Path(state_dir) / "logs" / "fleet.log"
        self.own = (region, TABLE_PREFIX + (state_file.load(Path(state_dir)) or {}).get("cluster_name", ""))
        self.interval, self.discover_every = interval, discover_every
        self.managers = {}
        self.bucket_regions = {}
        self.last_discovery = 0.0

    def say(self, text: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {text}\n")

    def regions(self) -> set:
        """The sandbox's region and every region holding ParallelCluster's default bucket."""
        regions = {self.region}
        s3 = moto_cluster.client("s3", self.endpoint_url, self.region)
        for bucket in s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            if name.startswith("parallelcluster-") and name.endswith("-v1-do-not-delete"):
                if name not in self.bucket_regions:
                    self.bucket_regions[name] = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
                regions.add(self.bucket_regions[name])
        return regions

    def manager(self, region: str, table: str):
        import boto3  # pylint: disable=import-outside-toplevel

        resource = boto3.session.Session(region_name=region, **moto_cluster.ADMIN_CREDENTIALS).resource(
            "dynamodb", endpoint_url=self.endpoint_url)
        cluster = table[len(TABLE_PREFIX):]
        return clusterstatusmgtd.ClusterStatusManager(
            clusterstatusmgtd.FleetStatusTable(resource.Table(table)),
            on_change=lambda before, after: self.say(f"{region} {cluster} {before} -> {after}"))

    def discover(self) -> None:
        found = set()
        for region in self.regions():
            ddb = moto_cluster.client("dynamodb", self.endpoint_url, region)
            for page in ddb.get_paginator("list_tables").paginate():
                found |= {(region, t) for t in page.get("TableNames", [])
                          if t.startswith(TABLE_PREFIX) and not t.startswith(NODE_TABLE_PREFIX)}
        found.discard(self.own)
        self.managers = {key: self.managers.get(key) or self.manager(*key) for key in found}
        self.last_discovery = time.monotonic()

    def run(self, alive) -> None:
        while alive():
            try:
                if time.monotonic() - self.last_discovery >= self.discover_every:
                    self.discover()
                for (region, table), manager in list(self.managers.items()):
                    try:
                        manager.manage()
                    except Exception as exc:  # pylint: disable=broad-except  # a table deleted meanwhile
                        self.managers.pop((region, table), None)
                        self.say(f"{region} {table}: {exc}")
            except Exception as exc:  # pylint: disable=broad-except  # moto busy: again on the next poll
                self.say(f"poll failed: {exc}")
            time.sleep(self.interval)
