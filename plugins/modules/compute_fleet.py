#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compute_fleet
short_description: Start or stop the compute fleet of an AWS ParallelCluster cluster
version_added: 0.1.0
description:
  - Starts or stops every compute node of a cluster, like C(pcluster update-compute-fleet --status
    START_REQUESTED|STOP_REQUESTED), and by default waits until the fleet is C(RUNNING) or C(STOPPED).
  - Idempotent. A fleet already on its way to the requested state (for example C(STOPPING) when
    O(state=stopped)) is waited for, not asked again.
  - With the Slurm scheduler the statuses go C(START_REQUESTED), C(STARTING), C(RUNNING) and
    C(STOP_REQUESTED), C(STOPPING), C(STOPPED); with AWS Batch C(ENABLED) and C(DISABLED).
  - Stopping the fleet is what updates of some settings (for example a queue's instance type) require; see
    O(hpc.pcluster.cluster#module:stop_fleet_for_update).
  - A request that fails without a clear refusal is not sent again blindly. The fleet is described first, and
    a status that shows the request went through counts as done. Waits accept a few poll errors in a row.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  name:
    description:
      - The cluster whose compute fleet to start or stop.
    type: str
    required: true
    aliases: [cluster_name]
  state:
    description:
      - V(started) starts the compute fleet (Slurm C(RUNNING), AWS Batch C(ENABLED)).
      - V(stopped) stops it (Slurm C(STOPPED), AWS Batch C(DISABLED)); running jobs are killed.
    type: str
    choices: [started, stopped]
    required: true
  wait:
    description:
      - Wait until the fleet reaches the requested state.
      - The module writes a progress line at least every 55 seconds while it waits; the collection's action
        plugin runs it as a background job and prints them, so one shows at least once a minute.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait at most.
    type: int
    default: 1200
extends_documentation_fragment:
  - hpc.pcluster.aws
  - hpc.pcluster.progress
attributes:
  check_mode:
    support: full
    description: Reports whether the fleet would be started or stopped without asking for it.
  diff_mode:
    support: none
    description: There is no diff.
"""

EXAMPLES = r"""
- name: Stop the compute fleet (and wait until it is STOPPED)
  hpc.pcluster.compute_fleet:
    name: ml-training-cluster
    state: stopped
    region: us-east-1

- name: Start it again without waiting
  hpc.pcluster.compute_fleet:
    name: ml-training-cluster
    state: started
    wait: false
"""

RETURN = r"""
status:
  description: The compute fleet status when the module finished.
  returned: always
  type: str
  sample: RUNNING
previous_status:
  description: The compute fleet status before the module ran.
  returned: always
  type: str
  sample: STOPPED
compute_fleet:
  description: The last C(pcluster describe-compute-fleet) answer (status, lastStatusUpdatedTime).
  returned: always
  type: dict
  sample: {status: RUNNING, lastStatusUpdatedTime: "2026-11-28T23:50:00.000Z"}
waited:
  description: Seconds spent waiting.
  returned: when the module waited
  type: float
  sample: 62.5
"""

from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.writes import WriteGuard
from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.fleet import fleet_plan
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_base import PclusterModule
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.wait import (
    ClusterPoller,
    WaitTimeout,
    format_progress_line,
    wait_until,
)


def argument_spec():
    return dict(
        name=dict(type="str", required=True, aliases=["cluster_name"]),
        state=dict(type="str", required=True, choices=["started", "stopped"]),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1200),
    )


class FleetRun:
    """One run of hpc.pcluster.compute_fleet."""

    def __init__(self, module, api):
        self.module = module
        self.api = api
        self.name = module.params["name"]

    def run(self):
        params = self.module.params
        fleet = self.api.describe_compute_fleet(self.name)
        status = fleet.get("status")
        plan = fleet_plan(params["state"], status)
        result = dict(changed=plan["request"] is not None, previous_status=status, status=status, compute_fleet=fleet)
        if plan["request"] is None and plan["reached"]:
            return result
        if self.module.check_mode:
            result["msg"] = "would request %s (fleet is %s)" % (plan["request"], status) if plan["request"] else "fleet is already %s" % status
            return result
        if plan["request"]:
            self.module.progress("[%s] compute fleet %s requested" % (self.name, plan["request"]))
            WriteGuard(self).fleet(plan)
        if params["wait"]:
            return self.wait(plan, result)
        fleet = self.api.describe_compute_fleet(self.name)
        result.update(status=fleet.get("status"), compute_fleet=fleet)
        return result

    def wait(self, plan, result):
        params = self.module.params
        start = self.api.clock()

        def report(snapshot, elapsed):
            self.module.progress(format_progress_line(self.name, snapshot, elapsed, params["wait_timeout"]))

        try:
            snapshot = wait_until(ClusterPoller(self.api, self.name, fleet=True), plan["goal"], params["wait_timeout"],
                                  sleep=self.api.sleep, clock=self.api.clock, report=report)
        except WaitTimeout as exc:
            last_fleet = exc.snapshot.get("fleet") or {}
            self.module.fail_json(
                msg="The compute fleet of %s did not become %s within %d s (last status %s)."
                % (self.name, plan["target"], params["wait_timeout"], last_fleet.get("status")),
                **dict(result, status=last_fleet.get("status"), compute_fleet=last_fleet, waited=round(exc.elapsed or 0, 1)))
        fleet = snapshot.get("fleet") or {}
        result.update(status=fleet.get("status"), compute_fleet=fleet, waited=round(self.api.clock() - start, 1))
        if fleet.get("status") == "PROTECTED":
            self.module.fail_json(
                msg="The compute fleet of %s went to PROTECTED: static compute nodes failed to launch repeatedly. "
                "Read the head node's clustermgtd and slurm_resume logs (hpc.pcluster.cluster_info with "
                "failure_details, or pcluster list-cluster-log-streams)." % self.name, **result)
        return result


def main():
    module = PclusterModule(argument_spec=argument_spec(), progress=True, supports_check_mode=True)
    try:
        result = FleetRun(module, module.client()).run()
    except PclusterApiError as error:
        module.fail_json_pcluster(error, msg="Cannot set the compute fleet of %s to %s" % (module.params["name"], module.params["state"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
