# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compute fleet control: target statuses, the running-jobs guard and the head-node tag that marks a fleet we stopped."""

from __future__ import annotations

import datetime

from ansible_collections.hpc.pcluster.plugins.module_utils.aws import boto3_client
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import convert_error

# EC2 tag on the head node instance while the compute fleet is stopped for an update by this collection.
# ParallelCluster keeps the fleet status in its DynamoDB table (written by pcluster and clustermgtd) and
# compares the cluster's Tags with its stored config, so neither can carry it; it reads only its own
# parallelcluster:* tags on instances, and updates keep the head node, so a tag there survives a failed
# or interrupted update and goes with the cluster.
FLEET_STOP_TAG = "hpc.pcluster:fleet-stopped-for-update"

FLEET_RUNNING = ("RUNNING", "START_REQUESTED", "STARTING", "ENABLED", "PROTECTED")

STOPPED_NOTE = (
    "Note: the compute fleet is STOPPED: it was stopped for the update of %s (head node tag %s). Running this "
    "task again starts it once the cluster is stable; to start it now, use hpc.pcluster.compute_fleet "
    "state=started."
)


def fleet_plan(state, status):
    """What to ask of the compute fleet for ``state`` (started|stopped) given its current ``status``.

    Returns {target, request (None when nothing to ask), reached, goal, on_the_way} where goal is the
    wait_until goal. AWS Batch clusters use ENABLED/DISABLED.
    """
    batch = status in ("ENABLED", "DISABLED")
    if state == "started":
        target, request, on_the_way = ("ENABLED", "ENABLED", ()) if batch else ("RUNNING", "START_REQUESTED", ("START_REQUESTED", "STARTING"))
    else:
        target, request, on_the_way = ("DISABLED", "DISABLED", ()) if batch else ("STOPPED", "STOP_REQUESTED", ("STOP_REQUESTED", "STOPPING"))
    reached = status == target
    return {"target": target, "request": None if reached or status in on_the_way else request, "reached": reached,
            "goal": "fleet:" + target, "on_the_way": on_the_way}


def jobs_guard_refusal(cluster_name, unfinished_jobs, force):
    """Why the fleet must not be stopped for an update (None when it may): jobs would be killed."""
    if force:
        return None
    if unfinished_jobs is None:
        return ("Refusing to stop the compute fleet of %s for the update: nobody counted the Slurm jobs that are "
                "not finished. Count them on the head node (playbooks/tasks/count_jobs.yml does) and pass the "
                "number as unfinished_jobs, or set force_fleet_stop: true to stop the fleet anyway (jobs are killed)."
                % cluster_name)
    if unfinished_jobs > 0:
        return ("Refusing to stop the compute fleet of %s for the update: %d Slurm job(s) are not finished "
                "(pending, running, ...) and would be killed. Wait for them or cancel them (scancel), or set "
                "force_fleet_stop: true." % (cluster_name, unfinished_jobs))
    return None


class FleetStopTag:
    """Reads, sets and removes FLEET_STOP_TAG on a cluster's head node (EC2 tags)."""

    def __init__(self, api, ec2=None):
        self.api = api
        self._ec2 = ec2

    @property
    def ec2(self):
        if self._ec2 is None:
            self._ec2 = boto3_client("ec2", self.api.aws_settings)
        return self._ec2

    def _call(self, operation, **kwargs):
        self.api.count("ec2.%s" % operation)
        try:
            return getattr(self.ec2, operation)(**kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            raise convert_error(exc, "ec2.%s" % operation) from None

    def read(self, instance_id):
        """The tag's value (when the fleet was stopped) or None."""
        if not instance_id:
            return None
        filters = [{"Name": "resource-id", "Values": [instance_id]}, {"Name": "key", "Values": [FLEET_STOP_TAG]}]
        response = self._call("describe_tags", Filters=filters)
        for tag in response.get("Tags") or []:
            return tag.get("Value") or "set"
        return None

    def set(self, instance_id):
        if not instance_id:
            raise convert_error(ValueError("the cluster has no head node instance to tag"), "ec2.create_tags")
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._call("create_tags", Resources=[instance_id], Tags=[{"Key": FLEET_STOP_TAG, "Value": stamp}])

    def remove(self, instance_id):
        if not instance_id:
            return
        self._call("delete_tags", Resources=[instance_id], Tags=[{"Key": FLEET_STOP_TAG}])
