# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The compute fleet: the one place that stops it (behind the running-jobs guard, marked on the head node for a
restart), starts it (clearing the mark), waits for it and says what PROTECTED means.

``ComputeFleet`` works for a run of the cluster module (a stop for an update, started again after it) and for a run
of the compute_fleet module (a stop or a start asked for by the user), through the run's ``api``, ``name``,
``module``, ``check_mode``, ``result``, ``writes``, ``act``, ``describe``, ``status``, ``head_node_id``, ``fail``
and ``wait_for``.
"""

from __future__ import annotations

import datetime

from ansible_collections.hpc.pcluster.plugins.module_utils.aws import boto3_client
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError, convert_error
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.wait import CLUSTER_IN_PROGRESS

# EC2 tag on the head node instance while the compute fleet is stopped by this collection and is to be started
# again (by the next run of the cluster module, or compute_fleet state=started). ParallelCluster keeps the fleet
# status in its DynamoDB table (written by pcluster and clustermgtd) and compares the cluster's Tags with its
# stored config, so neither can carry it; it reads only its own parallelcluster:* tags on instances, and updates
# keep the head node, so a tag there survives a failed or interrupted update and goes with the cluster.
FLEET_STOP_TAG = "hpc.pcluster:fleet-stopped-for-update"

PROTECTED = "PROTECTED"
FLEET_RUNNING = ("RUNNING", "START_REQUESTED", "STARTING", "ENABLED", PROTECTED)

STOPPED_NOTE = (
    "Note: the compute fleet is STOPPED: it was stopped for the update of %s (head node tag %s). Running this "
    "task again starts it once the cluster is stable; to start it now, use hpc.pcluster.compute_fleet "
    "state=started."
)

# clustermgtd's protected mode (aws-parallelcluster-node, slurm_plugin/clustermgtd.py): a queue whose compute
# nodes failed to bootstrap protected_failure_count times (10 by default) and runs no job is set INACTIVE, and
# the fleet PROTECTED; a successful launch in that queue resets its count; START_REQUESTED makes it active again.
PROTECTED_MESSAGE = (
    "The compute fleet of %s is PROTECTED: compute nodes of a queue failed to bootstrap again and again (10 times "
    "by default), so ParallelCluster's clustermgtd set that queue's Slurm partition INACTIVE: its jobs stay "
    "pending and no node is launched there, while the other partitions keep running. To recover, find why the "
    "nodes failed (on the head node /var/log/parallelcluster/clustermgtd, slurm_resume.log and "
    "compute_console_output.log; hpc.pcluster.cluster_info with failure_details), fix it (capacity or quotas, the "
    "AMI, a bootstrap script), then start the fleet with hpc.pcluster.compute_fleet state=started (pcluster "
    "update-compute-fleet --status START_REQUESTED), which makes the partitions active again."
)


def protected_message(cluster_name):
    """What a PROTECTED compute fleet means and how to get out of it."""
    return PROTECTED_MESSAGE % cluster_name


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


# The options of every module that stops the fleet (doc fragment hpc.pcluster.fleet_guard).
JOBS_GUARD_OPTIONS = dict(
    unfinished_jobs=dict(type="int"),
    force_fleet_stop=dict(type="bool", default=False),
)


def jobs_guard_problems(params):
    """What is wrong with the guard's options (a list)."""
    if params["unfinished_jobs"] is not None and params["unfinished_jobs"] < 0:
        return ["unfinished_jobs must be 0 or more, got %d" % params["unfinished_jobs"]]
    return []


def check_jobs_guard_options(module):
    for found in jobs_guard_problems(module.params):
        module.fail_json(msg=found + ".")


def jobs_guard_refusal(cluster_name, unfinished_jobs, force, purpose=""):
    """Why the fleet must not be stopped (None when it may): jobs would be killed. ``purpose``: " for the update"."""
    if force:
        return None
    if unfinished_jobs is None:
        return ("Refusing to stop the compute fleet of %s%s: nobody counted the Slurm jobs that are not finished. "
                "Count them on the head node (playbooks/tasks/count_jobs.yml does) and pass the number as "
                "unfinished_jobs, or set force_fleet_stop: true to stop the fleet anyway (jobs are killed)."
                % (cluster_name, purpose))
    if unfinished_jobs > 0:
        return ("Refusing to stop the compute fleet of %s%s: %d Slurm job(s) are not finished (pending, running, "
                "...) and would be killed. Wait for them or cancel them (scancel), or set force_fleet_stop: true."
                % (cluster_name, purpose, unfinished_jobs))
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


class ComputeFleet:
    """The compute fleet of the cluster a run works on: stop, start, the restart mark, PROTECTED."""

    def __init__(self, run, tag=None):
        self.run = run
        self.tag = tag or FleetStopTag(run.api)
        self.stopped_by = None  # "this run" or "an earlier run" while the fleet is stopped and marked for a restart
        self.restart_on_failure = False  # a failing run starts a fleet it stopped (the cluster module's update)
        self.marked = False  # this run tagged the head node
        self._restarting = False

    def describe(self):
        return self.run.api.describe_compute_fleet(self.run.name)

    # ----- stop

    def stop(self, unfinished_jobs, force, purpose="", refusal_details="", mark=True, wait=True, fleet=None):
        """Stop the fleet when no job would be killed (or ``force``), first marking it for a restart (``mark``).

        A fleet stopped and marked already (``stopped_by``) is not counted again. ``fleet``: its describe answer
        when the caller has it. Returns the last describe answer seen.
        """
        run = self.run
        fleet = fleet or self.describe()
        plan = fleet_plan("stopped", fleet.get("status"))
        if plan["request"] and not self.stopped_by:
            refusal = jobs_guard_refusal(run.name, unfinished_jobs, force, purpose)
            if refusal and run.check_mode:
                run.module.warn(refusal)
            elif refusal:
                run.fail(refusal + refusal_details)
        if not plan["reached"] or self.stopped_by:
            run.act("stop compute fleet")
        if run.check_mode:
            run.result["changed"] = run.result["changed"] or plan["request"] is not None
            return fleet
        if not plan["reached"] and not self.stopped_by:
            if mark:
                self.set_mark()
            self.stopped_by = "this run"
        if plan["request"]:
            run.writes.fleet(plan)
            run.result["changed"] = True
        if plan["reached"] or not wait:
            return fleet if plan["reached"] else self.describe()
        return run.wait_for(plan["goal"]).get("fleet") or {}

    def set_mark(self):
        """Tag the head node; True when it is tagged."""
        if self.run.head_node_id() is None:
            self.run.describe()
        try:
            self.tag.set(self.run.head_node_id())
        except PclusterApiError as error:
            self.run.module.warn(
                "Cannot tag the head node of %s with %s (%s): if this run is interrupted, the next run will not know "
                "to start the compute fleet again." % (self.run.name, FLEET_STOP_TAG, error.message))
            return False
        self.marked = True
        return True

    def read_mark(self):
        """A run stopped the fleet, marked it for a restart, and it is still stopped: remember to start it."""
        run = self.run
        try:
            stopped_at = self.tag.read(run.head_node_id())
        except PclusterApiError as error:
            run.module.warn("Cannot read the tags of the head node of %s (%s)." % (run.name, error.message))
            return None
        if not stopped_at:
            return None
        if (run.cluster or {}).get("computeFleetStatus") in FLEET_RUNNING:
            if not run.check_mode:  # started by someone else since
                self.remove_mark()
            return None
        self.stopped_by = "an earlier run"
        return stopped_at

    def remove_mark(self):
        try:
            self.tag.remove(self.run.head_node_id())
        except PclusterApiError as error:
            self.run.module.warn(
                "The head node tag %s of %s could not be removed (%s): remove it by hand, or the next run asks for a "
                "start of the compute fleet again." % (FLEET_STOP_TAG, self.run.name, error.message))

    # ----- start

    def start(self, wait=True, clear_mark=False, fleet=None):
        """Start the fleet (a PROTECTED one too: that is how it recovers), forget the mark, wait; fail on PROTECTED."""
        run = self.run
        fleet = fleet or self.describe()
        plan = fleet_plan("started", fleet.get("status"))
        marked = self.stopped_by
        if plan["request"] or marked:
            run.act("start compute fleet")
            run.result["changed"] = True
        if run.check_mode:
            return fleet
        if plan["request"]:
            run.writes.fleet(plan)
        self.stopped_by = None
        if marked or (clear_mark and plan["request"]):
            if run.head_node_id() is None:
                run.describe()
            self.remove_mark()
        if marked:
            run.module.progress("[%s] compute fleet start requested (stopped by %s)" % (run.name, marked))
        if plan["reached"] or not wait:
            return fleet if plan["reached"] else self.describe()
        fleet = run.wait_for(plan["goal"]).get("fleet") or {}
        if fleet.get("status") == PROTECTED:
            run.fail(protected_message(run.name), compute_fleet=fleet)
        return fleet

    def restart_after_failure(self):
        """Start a fleet stopped for the run when the run fails with the cluster stable; a sentence, or None."""
        if not (self.stopped_by and self.restart_on_failure) or self.run.check_mode or self._restarting:
            return None
        self._restarting = True
        try:
            if self.run.describe() is None or self.run.status() in CLUSTER_IN_PROGRESS:
                return None
            self.start(wait=False)
        except PclusterApiError as error:
            return "Starting the compute fleet again failed: %s" % error.message
        return "The compute fleet, stopped for the update, was asked to start again."
