# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side waiting for hpc.pcluster.compute_fleet, with progress lines (see action/cluster.py)."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.action.cluster import PclusterWaitAction


class ActionModule(PclusterWaitAction):
    """Action plugin of hpc.pcluster.compute_fleet."""

    MODULE = "hpc.pcluster.compute_fleet"
    DEFAULT_TIMEOUT = 1200

    def drive(self, step_args):
        result = self._run_module(self.MODULE, step_args)
        pending = result.pop("pending", None)
        if result.get("failed") or not pending:
            return result
        snapshot, failed = self.wait(pending["goal"])
        if failed:
            return dict(result, **failed)
        fleet = snapshot.get("fleet") or {}
        result.update(status=fleet.get("status"), compute_fleet=fleet)
        if fleet.get("status") == "PROTECTED":
            result.update(
                failed=True,
                msg="The compute fleet of %s went to PROTECTED: static compute nodes failed to launch repeatedly. "
                "Read the head node's clustermgtd and slurm_resume logs." % self._name,
            )
        return result
