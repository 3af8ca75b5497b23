# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writes without blind retries: after an error, describe the cluster (or image) and decide whether it happened."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import config_differences, normalise_config
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import (
    KIND_BAD_REQUEST,
    KIND_CONFLICT,
    KIND_CREDENTIALS,
    KIND_DENIED,
    KIND_DRYRUN_OK,
    KIND_NOT_FOUND,
    PclusterApiError,
)

# Answers that say the write was refused: nothing happened, and asking again gets the same answer.
REFUSED = (KIND_BAD_REQUEST, KIND_CONFLICT, KIND_CREDENTIALS, KIND_DENIED, KIND_DRYRUN_OK, KIND_NOT_FOUND)


class WriteGuard:
    """The create, update, delete and fleet requests of a ClusterRun (``write`` also serves ImageRun's).

    A write that raised anything but a refusal (a lost response, a timeout, throttling, a 500) may have
    happened: the cluster (or fleet) is described, and the write counts as done when it shows the change;
    only when it does not, and the error was transient, is the write sent again (ATTEMPTS at most).
    """

    ATTEMPTS = 3

    def __init__(self, run):
        self.run = run
        self.api = run.api

    def write(self, what, send, happened):
        for attempt in range(self.ATTEMPTS):
            try:
                return send()
            except PclusterApiError as error:
                if error.kind in REFUSED:
                    raise
                if happened():
                    self.run.module.warn("The %s request of %s answered %s, but ParallelCluster shows that it went "
                                         "through; carrying on." % (what, self.run.name, error.message))
                    return None
                if not error.transient or attempt + 1 >= self.ATTEMPTS:
                    raise
                self.api.sleep(self.api.retry.delay(attempt))
        return None  # pragma: no cover - the loop returns or raises

    # ----- create

    def create(self, desired):
        params = self.run.params
        try:
            return self.write("create", lambda: self.api.create_cluster(
                self.run.name, desired, params["suppress_validators"], params["validation_failure_level"],
                params["rollback_on_failure"]), lambda: self.same_cluster_exists(desired))
        except PclusterApiError as error:
            if error.already_exists and self.same_cluster_exists(desired):
                self.run.module.warn("Cluster %s was created meanwhile (%s) with the desired configuration; waiting "
                                     "for it." % (self.run.name, error.message))
                return None
            self.run.record_validation(error.validation_messages)
            raise

    def same_cluster_exists(self, desired):
        """False when there is no cluster; True when it holds ``desired``; fails the run when it holds another config."""
        if self.run.describe() is None:
            return False
        stored = self.run.stored_config()
        if stored is None:
            self.run.fail("Cluster %s exists (%s), but its stored configuration cannot be read (%s), so this run cannot "
                          "tell whether it is the cluster it asked for. Look at it with hpc.pcluster.cluster_info."
                          % (self.run.name, self.run.status(), self.run.result.get("stored_config_error")))
        differences = config_differences(normalise_config(stored), normalise_config(desired))
        if differences:
            self.run.fail("Cluster %s exists (%s) with another configuration than the one this run creates: %s. Another "
                          "run or user created it; pick another name, or delete it first."
                          % (self.run.name, self.run.status(), "; ".join(differences[:10])))
        return True

    # ----- update and delete

    def update(self, desired):
        params = self.run.params
        before = (self.run.cluster or {}).get("lastUpdatedTime")

        def happened():
            cluster = self.run.describe() or {}
            return cluster.get("clusterStatus") == "UPDATE_IN_PROGRESS" or (
                cluster.get("lastUpdatedTime") != before and cluster.get("clusterStatus") in ("UPDATE_COMPLETE", "UPDATE_FAILED"))

        return self.write("update", lambda: self.api.update_cluster(
            self.run.name, desired, params["suppress_validators"], params["validation_failure_level"]), happened)

    def delete(self):
        def happened():
            return self.run.describe() is None or self.run.status() == "DELETE_IN_PROGRESS"

        try:
            return self.write("delete", lambda: self.api.delete_cluster(self.run.name), happened)
        except PclusterApiError as error:
            if error.not_found:  # pcluster reads the stack back after deleting it: gone already is done
                return None
            raise

    # ----- compute fleet

    def fleet(self, plan):
        """Ask for plan["request"] (see cluster.fleet.fleet_plan)."""
        accepted = (plan["request"], plan["target"]) + tuple(plan["on_the_way"])

        def happened():
            return self.api.describe_compute_fleet(self.run.name).get("status") in accepted

        return self.write("compute fleet %s" % plan["request"],
                          lambda: self.api.update_compute_fleet(self.run.name, plan["request"]), happened)
