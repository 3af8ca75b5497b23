# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module's run on one cluster: what the cluster and compute_fleet modules share (progress, describe, waits,
failing), and the whole run of hpc.pcluster.compute_fleet."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.fleet import PROTECTED, ComputeFleet, protected_message
from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.writes import WriteGuard
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.run import LifecycleRun
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.wait import (
    ClusterPoller,
    WaitTimeout,
    format_progress_line,
    timeout_message,
    wait_until,
)


class ClusterTask(LifecycleRun):
    """One run of a module on the cluster ``params["name"]``, within ``params["wait_timeout"]`` seconds in all."""

    def __init__(self, module, api, result, tag=None):
        super().__init__(module, api, result)
        self.cluster = None
        self.writes = WriteGuard(self)
        self.fleet = ComputeFleet(self, tag)

    @property
    def current(self):
        return self.cluster

    def describe(self):
        self.cluster = self.api.describe_cluster(self.name)
        return self.cluster

    def status(self):
        return (self.cluster or {}).get("clusterStatus")

    def head_node_id(self):
        return ((self.cluster or {}).get("headNode") or {}).get("instanceId")

    def fail(self, msg, **extra):
        """Fail the task; first start the compute fleet again when the run stopped it and can start it."""
        restarted = self.fleet.restart_after_failure()
        if restarted:
            msg = "%s\n%s" % (msg, restarted)
        result = self.finish(**extra)
        result.pop("msg", None)
        self.module.fail_json(msg=msg, **result)

    def fail_error(self, error, prefix):
        """Fail with a PclusterApiError through the module's one error path (after the same fleet restart)."""
        restarted = self.fleet.restart_after_failure()
        if restarted:
            prefix = "%s (%s)" % (prefix, restarted.rstrip("."))
        self.module.fail_json_pcluster(error, msg=prefix, **self.finish())

    def report(self, snapshot, elapsed):
        self.module.progress(format_progress_line(self.name, snapshot, self.api.clock() - self.started, self.params["wait_timeout"]))

    def wait_for(self, goal):
        """Wait for ``goal`` with progress lines; a timeout fails the task with the last state seen."""
        fleet = goal.startswith("fleet:")
        poller = ClusterPoller(self.api, self.name, fleet=fleet, cluster=self.cluster)
        start = self.api.clock()
        try:
            snapshot = wait_until(poller, goal, max(self.remaining(), 0), sleep=self.api.sleep, clock=self.api.clock,
                                  report=self.report)
        except WaitTimeout as exc:
            self.waited += self.api.clock() - start
            last = exc.snapshot
            if fleet:
                self.result["compute_fleet"] = last.get("fleet") or {}
            else:
                self.cluster = last.get("cluster")
                if self.cluster is not None:
                    last["progress"] = poller.stack_progress(self.cluster)
            self.fail(timeout_message(self.name, goal, self.params["wait_timeout"], last))
        self.waited += self.api.clock() - start
        if not fleet:
            self.cluster = snapshot.get("cluster")
        return snapshot


class FleetRun(ClusterTask):
    """One run of hpc.pcluster.compute_fleet: the fleet stopped (behind the jobs guard, marked for a restart) or started."""

    def __init__(self, module, api, tag=None):
        super().__init__(module, api, dict(changed=False, actions=[]), tag)

    def run(self):
        params = self.params
        fleet = self.fleet.describe()
        self.result.update(previous_status=fleet.get("status"), status=fleet.get("status"), compute_fleet=fleet)
        if params["state"] == "stopped":
            if fleet.get("status") == PROTECTED:
                self.module.warn(protected_message(self.name))
            fleet = self.fleet.stop(params["unfinished_jobs"], params["force_fleet_stop"], mark=params["mark_for_restart"],
                                    wait=params["wait"], fleet=fleet)
            self.result["marked_for_restart"] = self.fleet.marked
        else:
            if fleet.get("status") == PROTECTED:
                self.module.warn("The compute fleet of %s is PROTECTED (a partition INACTIVE after repeated bootstrap "
                                 "failures): starting it makes the partitions active again; it goes PROTECTED again "
                                 "when the nodes keep failing." % self.name)
            fleet = self.fleet.start(wait=params["wait"], clear_mark=True, fleet=fleet)
        self.result.update(status=fleet.get("status"), compute_fleet=fleet)
        if self.check_mode:
            self.result["msg"] = ("would %s" % " and ".join(self.result["actions"]) if self.result["actions"]
                                  else "the compute fleet is %s already" % fleet.get("status"))
        return self.finish() if self.waited else dict(self.result)
