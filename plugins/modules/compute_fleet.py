#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compute_fleet
short_description: Start or stop the compute fleet of an AWS ParallelCluster cluster
version_added: 1.0.0
description:
  - Starts or stops every compute node of a cluster, like C(pcluster update-compute-fleet --status
    START_REQUESTED|STOP_REQUESTED), and by default waits until the fleet is C(RUNNING) or C(STOPPED).
  - Idempotent. A fleet already on its way to the requested state (for example C(STOPPING) when
    O(state=stopped)) is waited for, not asked again.
  - With the Slurm scheduler the statuses go C(START_REQUESTED), C(STARTING), C(RUNNING) and
    C(STOP_REQUESTED), C(STOPPING), C(STOPPED); with AWS Batch C(ENABLED) and C(DISABLED).
  - Stopping the fleet is what updates of some settings (for example a queue's instance type) require; see
    O(hpc.pcluster.cluster#module:stop_fleet_for_update).
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
      - When the task runs through the collection's action plugin, a progress line is printed at least
        once a minute while waiting.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait at most.
    type: int
    default: 1200
extends_documentation_fragment:
  - hpc.pcluster.aws
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
pending:
  description: With O(wait=false), the state still to be reached, as a wait goal such as C(fleet:STOPPED).
  returned: when O(wait=false) and the fleet has not reached the requested state yet
  type: dict
  sample: {goal: "fleet:STOPPED", rerun: false}
waited:
  description: Seconds spent waiting.
  returned: when the module waited
  type: float
  sample: 62.5
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.pcluster.plugins.module_utils.aws import aws_argument_spec, setup_aws
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster_api import (
    ApiPoller,
    PclusterApiError,
    WaitTimeout,
    fail_on_error,
    fleet_plan,
    module_api,
    wait_until,
)


def argument_spec():
    spec = aws_argument_spec()
    spec.update(
        name=dict(type="str", required=True, aliases=["cluster_name"]),
        state=dict(type="str", required=True, choices=["started", "stopped"]),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1200),
    )
    return spec


def run(module, api, settings):
    params = module.params
    name = params["name"]
    fleet = api.describe_compute_fleet(name)
    status = fleet.get("status")
    plan = fleet_plan(params["state"], status)
    result = dict(changed=plan["request"] is not None, previous_status=status, status=status, compute_fleet=fleet)
    if plan["request"] is None and plan["reached"]:
        return result
    if module.check_mode:
        result["msg"] = "would request %s (fleet is %s)" % (plan["request"], status) if plan["request"] else "fleet is already %s" % status
        return result
    if plan["request"]:
        api.update_compute_fleet(name, plan["request"])
    if params["wait"]:
        poller = ApiPoller(api, name, fleet=True, aws_settings=settings)
        start = api.clock()
        try:
            snapshot = wait_until(poller, plan["goal"], params["wait_timeout"], sleep=api.sleep, clock=api.clock)
        except WaitTimeout as exc:
            last_fleet = exc.snapshot.get("fleet") or {}
            last = last_fleet.get("status")
            module.fail_json(
                msg="The compute fleet of %s did not become %s within %d s (last status %s)."
                % (name, plan["target"], params["wait_timeout"], last),
                **dict(result, status=last, compute_fleet=last_fleet, waited=round(exc.elapsed or 0, 1))
            )
        fleet = snapshot.get("fleet") or {}
        result.update(status=fleet.get("status"), compute_fleet=fleet, waited=round(api.clock() - start, 1))
        if fleet.get("status") == "PROTECTED":
            module.fail_json(
                msg="The compute fleet of %s went to PROTECTED: static compute nodes failed to launch repeatedly. "
                "Read the head node's clustermgtd and slurm_resume logs (hpc.pcluster.cluster_info with "
                "failure_details, or pcluster list-cluster-log-streams)." % name,
                **result
            )
    else:
        fleet = api.describe_compute_fleet(name)
        result.update(status=fleet.get("status"), compute_fleet=fleet)
        if fleet.get("status") != plan["target"]:
            result["pending"] = {"goal": plan["goal"], "rerun": False}
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    settings = setup_aws(module)
    api = module_api(module, settings)
    try:
        result = run(module, api, settings)
    except PclusterApiError as error:
        fail_on_error(module, error, settings, prefix="Cannot set the compute fleet of %s to %s" % (module.params["name"], module.params["state"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
