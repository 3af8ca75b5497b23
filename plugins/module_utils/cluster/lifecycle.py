# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster lifecycle: every decision of hpc.pcluster.cluster (create, compare, update, delete, waits)."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.fleet import (
    FLEET_STOP_TAG,
    PROTECTED,
    STOPPED_NOTE,
    protected_message,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.run import ClusterTask
from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import config_differences, normalise_config
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.failure_report import failure_report
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import explain_error, group_validation_messages
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_base import cluster_summary
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.run import Stop
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.wait import CLUSTER_IN_PROGRESS


class ClusterRun(ClusterTask):
    """One run of hpc.pcluster.cluster on a PclusterModule: the state machine and its result."""

    def __init__(self, module, api, tag=None):
        super().__init__(module, api, dict(
            changed=False, validation_messages=group_validation_messages([]), change_set=[], config_changes=[],
            actions=[], fleet_stopped_for_update=False, fleet_stop_required=False), tag)
        self.fleet.restart_on_failure = True
        module.fail_note = self.fleet_note

    # ----- helpers

    def finish(self, **extra):
        return super().finish(**dict(cluster_summary(self.cluster), **extra))

    def fleet_note(self):
        """The sentence every failure message carries while the fleet is stopped for an update."""
        return STOPPED_NOTE % (self.name, FLEET_STOP_TAG) if self.fleet.stopped_by and not self.check_mode else None

    def fail_report(self, what):
        report = failure_report(self.api, self.name, self.cluster)
        message = report.pop("message")
        self.fail("%s\n%s" % (what, message) if what else message, failure=report)

    def record_validation(self, messages):
        self.result["validation_messages"] = self.module.validation_warnings(messages)

    # ----- present

    def present(self):
        desired = self.desired_config()
        self.describe()
        if self.status() in CLUSTER_IN_PROGRESS:
            self.settle()
        if self.cluster is None:
            return self.create(desired)
        if self.status() in ("CREATE_FAILED", "DELETE_FAILED"):
            self.fail_report("Cluster %s cannot be brought to the desired configuration." % self.name)
        self.read_fleet_mark()
        self.warn_if_protected()
        if self.status() == "UPDATE_FAILED":
            self.module.warn("Cluster %s is UPDATE_FAILED (its last update was rolled back); updating it again." % self.name)
        self.update(desired)
        self.start_fleet_if_ours()
        return None

    def warn_if_protected(self):
        if (self.cluster or {}).get("computeFleetStatus") == PROTECTED:
            self.module.warn(protected_message(self.name))

    def settle(self):
        """A create/update/delete is already running: wait for it (not in check mode, not with wait=false)."""
        status = self.status()
        if self.check_mode:
            self.module.warn("Cluster %s is %s; check mode does not wait, so the plan below may change." % (self.name, status))
            raise Stop()
        if not self.params["wait"]:
            self.result["msg"] = "cluster %s is %s; nothing done (wait: false)" % (self.name, status)
            raise Stop()
        self.act("wait for %s" % status)
        self.wait_for("deleted" if status == "DELETE_IN_PROGRESS" else "stable")

    def create(self, desired):
        self.diff(None, desired)
        self.result["config_changes"] = ["<cluster>: created"]
        if self.check_mode:
            self.act("dryrun create")
            dry = self.api.dryrun_create(self.name, desired, self.params["suppress_validators"], self.params["validation_failure_level"])
            self.record_validation(dry["validation_messages"])
            if not dry["success"]:
                self.fail("ParallelCluster would reject the creation of %s: %s" % (self.name, explain_error(dry["error"], self.module.settings)))
            self.act("create cluster")
            self.result["changed"] = True
            self.result["msg"] = "cluster %s would be created (dryrun passed)" % self.name
            return
        self.act("create cluster")
        response = self.writes.create(desired)
        if response is not None:
            self.record_validation(response.get("validationMessages"))
        self.result["changed"] = True
        if not self.params["wait"]:
            self.describe()
            return
        self.wait_for("stable")
        self.check_outcome("creation")

    def check_outcome(self, what):
        if self.cluster is None:
            self.fail("Cluster %s disappeared during its %s (deleted by someone else, or a rollback removed it)." % (self.name, what))
        if str(self.status()).endswith("_FAILED"):
            self.fail_report("The %s of cluster %s failed." % (what, self.name))

    def update(self, desired):
        stored = self.stored_config()
        if stored is not None:
            before, after = normalise_config(stored), normalise_config(desired)
            if before == after:
                self.result["msg"] = "cluster %s already has the desired configuration" % self.name
                return
            self.result["config_changes"] = config_differences(before, after)
        self.diff(stored, desired)

        self.act("dryrun update")
        dry = self.dryrun_update(desired)
        if dry["no_change"]:
            self.result.update(msg="ParallelCluster finds no change to apply to %s" % self.name, config_changes=[])
            self.result.pop("diff", None)
            return
        if not dry["success"]:
            self.stop_fleet_for_update(dry["error"])
            if self.check_mode:
                self.act("update cluster")
                self.act("start compute fleet")
                self.result.update(changed=True, msg="cluster %s would be updated with its compute fleet stopped" % self.name)
                return
            self.act("dryrun update")
            dry = self.dryrun_update(desired)
            if not dry["success"] and not dry["no_change"]:
                self.fail("ParallelCluster rejects the update of %s: %s" % (self.name, explain_error(dry["error"], self.module.settings)),
                          **dry["error"].to_result())
        self.act("update cluster")
        self.result["changed"] = True
        if self.check_mode:
            self.result["msg"] = "cluster %s would be updated (dryrun passed)" % self.name
            return
        response = self.writes.update(desired)
        if response is not None:
            self.record_validation(response.get("validationMessages"))
            self.result["change_set"] = response.get("changeSet") or self.result["change_set"]
        if not self.params["wait"]:
            self.describe()
            return
        self.wait_for("stable")
        self.check_outcome("update")

    def dryrun_update(self, desired):
        dry = self.api.dryrun_update(self.name, desired, self.params["suppress_validators"], self.params["validation_failure_level"])
        self.record_validation(dry["validation_messages"])
        self.result["change_set"] = dry["change_set"]
        return dry

    # ----- the compute fleet around an update

    def stop_fleet_for_update(self, error):
        """The update needs the fleet stopped: refuse, or stop it after the jobs guard, remembering that we did."""
        if not error.needs_fleet_stopped:
            self.fail("ParallelCluster rejects the update of %s: %s" % (self.name, explain_error(error, self.module.settings)), **error.to_result())
        self.result.update(fleet_stop_required=True, change_set=error.change_set)
        changes = ["  %s: %s -> %s" % (c.get("parameter"), c.get("currentValue"), c.get("requestedValue")) for c in error.change_set]
        changes = "\n".join(changes + ["Why the fleet must stop:", error.describe()])
        if not self.params["stop_fleet_for_update"] and not self.fleet.stopped_by:
            self.fail("The update of cluster %s needs the compute fleet stopped (All compute nodes must be stopped):\n%s\n"
                      "Set stop_fleet_for_update: true and pass the count of unfinished Slurm jobs as unfinished_jobs: "
                      "the fleet is stopped only when no job would be killed, the cluster updated and the fleet "
                      "started again." % (self.name, changes), **error.to_result())
        if not self.params["wait"] and not self.fleet.stopped_by:
            self.fail("The update of cluster %s needs the compute fleet stopped, updated and started again, which "
                      "needs wait: true." % self.name, **error.to_result())
        self.fleet.stop(self.params["unfinished_jobs"], self.params["force_fleet_stop"], purpose=" for the update",
                        refusal_details="\nThe update would change:\n%s" % changes)
        if not self.check_mode:
            self.result["fleet_stopped_for_update"] = True

    def read_fleet_mark(self):
        """An earlier run stopped the fleet, marked it for a restart, and did not start it again: remember to."""
        stopped_at = self.fleet.read_mark()
        if stopped_at:
            self.result["fleet_stopped_for_update"] = True
            self.module.warn("The compute fleet of %s was stopped at %s by an earlier run (an update that did not "
                             "finish, or hpc.pcluster.compute_fleet) and marked for a restart; this run starts it."
                             % (self.name, stopped_at))

    def start_fleet_if_ours(self):
        """After the update (or with nothing to update), start the fleet this run or an earlier one stopped."""
        if not self.fleet.stopped_by:
            return
        if not self.check_mode and self.status() in CLUSTER_IN_PROGRESS:  # wait: false left the update running
            self.result["msg"] = "cluster %s is %s; the compute fleet stays STOPPED until a run finds it stable" % (
                self.name, self.status())
            return
        self.fleet.start(wait=self.params["wait"])
        if not self.check_mode:
            self.describe()

    # ----- absent

    def absent(self):
        self.describe()
        if self.cluster is None:
            self.result["msg"] = "cluster %s does not exist" % self.name
            return
        if self.status() == "DELETE_IN_PROGRESS":
            if self.check_mode or not self.params["wait"]:
                return
            self.act("wait for DELETE_IN_PROGRESS")
            self.wait_for("deleted")
            self.check_deleted()
            return
        self.diff(self.stored_config(), None)
        self.result.pop("stored_config_error", None)
        if self.status() in CLUSTER_IN_PROGRESS and not self.check_mode:
            self.settle()
            if self.cluster is None:
                return
        self.act("delete cluster")
        self.result["changed"] = True
        if self.check_mode:
            self.result["msg"] = "cluster %s would be deleted" % self.name
            return
        self.writes.delete()
        if not self.params["wait"]:
            self.describe()
            return
        self.wait_for("deleted")
        self.check_deleted()

    def check_deleted(self):
        if self.cluster is not None and self.status() == "DELETE_FAILED":
            self.fail_report("The deletion of cluster %s failed." % self.name)
