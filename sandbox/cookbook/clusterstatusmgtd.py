"""ParallelCluster's clusterstatusmgtd, emulated: the head node daemon that carries out compute fleet requests.

``pcluster update-compute-fleet`` only writes ``STOP_REQUESTED`` / ``START_REQUESTED`` into the item
``Id=COMPUTE_FLEET`` (map ``Data``: ``status``, ``lastStatusUpdatedTime``) of the cluster's DynamoDB table
``parallelcluster-<name>``. On the head node, the cookbook's ``clusterstatusmgtd.py`` (run by supervisord with
the cookbook virtualenv's Python; not published on PyPI, so the sandbox cannot install it) polls that item
every ``loop_time`` seconds and moves it on with conditional writes:

    STOP_REQUESTED -> STOPPING -> STOPPED        START_REQUESTED -> STARTING -> RUNNING

Between the two writes it calls the update event handler: it writes the status (STOPPING and STARTING given
as the requests, STOP_REQUESTED and START_REQUESTED) to ``computefleet_status_path`` and runs the cookbook's
``update_computefleet_status`` recipe, whose only step on a Slurm head node is ``supervisorctl stop
clustermgtd``, ParallelCluster's ``slurm_fleet_status_manager -cf <that file>`` (partitions INACTIVE and every
compute instance terminated, or partitions UP), ``supervisorctl start clustermgtd``. The sandbox runs that
step as the recipe's commands (``handler_command``); everything else is this module, written from the
daemon's source as facts: the same transitions, log lines and files.

    python clusterstatusmgtd.py                  the daemon (CONFIG_FILE, default /etc/parallelcluster/clusterstatusmgtd.conf)
"""

from __future__ import annotations

import configparser
import datetime
import json
import logging
import os
import subprocess
import sys
import time

CONFIG_FILE = "/etc/parallelcluster/clusterstatusmgtd.conf"
KEY = {"Id": "COMPUTE_FLEET"}
TRANSITIONS = {"STOP_REQUESTED": ("STOP_REQUESTED", "STOPPING", "STOPPED"),
               "STOPPING": ("STOP_REQUESTED", "STOPPING", "STOPPED"),
               "START_REQUESTED": ("START_REQUESTED", "STARTING", "RUNNING"),
               "STARTING": ("START_REQUESTED", "STARTING", "RUNNING")}
# What the update event handler is told (the daemon's EVENT_HANDLER_STATUS_MAPPING).
EVENT_STATUS = {"STOPPING": "STOP_REQUESTED", "STARTING": "START_REQUESTED"}
log = logging.getLogger("clusterstatusmgtd")


class StatusChanged(Exception):
    """The item changed after it was read (a conditional write failed): retried on the next loop."""


class FleetStatusTable:
    """The COMPUTE_FLEET item of one cluster's table."""

    def __init__(self, table):
        self.table = table

    def get(self) -> dict:
        item = self.table.get_item(ConsistentRead=True, Key=KEY).get("Item")
        if not item:
            raise LookupError("COMPUTE_FLEET data not found in db table")
        return item.get("Data") or {}

    def update(self, current: str, following: str) -> dict:
        client = self.table.meta.client
        try:
            return self.table.update_item(
                Key=KEY, UpdateExpression="set #dt.#st=:s, #dt.#lut=:t",
                ExpressionAttributeNames={"#dt": "Data", "#st": "status", "#lut": "lastStatusUpdatedTime"},
                ExpressionAttributeValues={":s": following, ":t": str(datetime.datetime.now(tz=datetime.timezone.utc)),
                                           ":current": current},
                ConditionExpression="#dt.#st = :current", ReturnValues="ALL_NEW")["Attributes"]["Data"]
        except client.exceptions.ConditionalCheckFailedException as exc:
            raise StatusChanged(str(exc)) from exc


class ClusterStatusManager:
    """One pass per loop: read the status, carry out a request. handler(data): the update event handler
    (None: nothing to run, as for a cluster without a head node)."""

    def __init__(self, table: FleetStatusTable, handler=None, on_change=None):
        self.table = table
        self.handler = handler
        self.on_change = on_change or (lambda before, after: None)
        self.status = "RUNNING"
        self.data = {}

    def _move(self, following: str) -> None:
        log.info("Updating compute fleet status from %s to %s", self.status, following)
        self.data = self.table.update(self.status, following)
        self.on_change(self.status, following)
        self.status = following

    def manage(self) -> None:
        try:
            self.data = self.table.get()
            self.status = self.data.get("status", self.status)
        except Exception as exc:  # pylint: disable=broad-except  # as the daemon: keep the last status
            log.error("Failed when retrieving computefleet status from DynamoDB with error %s, using fallback value %s",
                      exc, self.status)
        log.info("Current compute fleet status: %s", self.status)
        if self.status not in TRANSITIONS:
            return
        request, in_progress, final = TRANSITIONS[self.status]
        try:
            if self.status == request:
                self._move(in_progress)
            if self.handler is not None:
                self.handler(dict(self.data, status=EVENT_STATUS.get(self.data.get("status"), "UNKNOWN")))
            if self.status == in_progress:
                self._move(final)
        except StatusChanged:
            log.warning("Cluster status was updated while handling a transition from %s. "
                        "Status transition will be retried at the next iteration", self.status)
        except Exception as exc:  # pylint: disable=broad-except  # as the daemon: log, retry on the next loop
            log.error("Failed when handling compute fleet status transitions with exception %s", exc)


def command_handler(status_path: str, command: list):
    """The update event handler of a head node: the status file, then the recipe's commands."""

    def handle(data: dict) -> None:
        with open(status_path, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(data))
        log.info("Calling update event handler: %s", " ".join(command))
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"update event handler failed ({result.returncode}): {(result.stderr or result.stdout)[-2000:]}")

    return handle


def main() -> int:
    import boto3  # pylint: disable=import-outside-toplevel  # the cookbook virtualenv's

    logging.basicConfig(level=logging.INFO, format="%(asctime)s - [%(module)s:%(funcName)s] - %(levelname)s - %(message)s")
    parser = configparser.ConfigParser()
    with open(os.environ.get("CONFIG_FILE", CONFIG_FILE), encoding="utf-8") as handle:
        parser.read_file(handle)
    conf = parser["clusterstatusmgtd"]
    table = boto3.resource("dynamodb", region_name=conf["region"]).Table(conf["dynamodb_table"])
    manager = ClusterStatusManager(FleetStatusTable(table), command_handler(
        conf["computefleet_status_path"], conf["update_event_command"].split()))
    loop_time = conf.getint("loop_time", 60)
    log.info("Clusterstatusmgtd Startup")
    while True:
        started = time.monotonic()
        manager.manage()
        time.sleep(max(0.0, loop_time - (time.monotonic() - started)))


if __name__ == "__main__":
    sys.exit(main())
