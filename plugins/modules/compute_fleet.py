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
  - A stop kills the jobs on the compute nodes, so it is refused unless the caller counted the Slurm jobs that are
    not finished and there are none (O(unfinished_jobs=0)), or O(force_fleet_stop=true); the update path of
    M(hpc.pcluster.cluster) stops the fleet behind the same guard (see
    O(hpc.pcluster.cluster#module:stop_fleet_for_update)).
  - A stop is marked on the head node (EC2 tag C(hpc.pcluster:fleet-stopped-for-update)) as the update path marks
    its own, and the next run of M(hpc.pcluster.cluster) that finds the cluster stable (C(deploy.yml)) starts the
    fleet again, after its update when it has one; O(state=started) removes the mark. See O(mark_for_restart).
  - A fleet in C(PROTECTED) (ParallelCluster's protected mode, in which a queue whose nodes failed to bootstrap
    again and again is set INACTIVE) is reported with what it means and how to recover; O(state=started) is the
    way out once the cause is fixed, and a start that ends in C(PROTECTED) fails with the same explanation.
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
  mark_for_restart:
    description:
      - With O(state=stopped), tag the head node so that the next run of M(hpc.pcluster.cluster) starts the fleet
        again (after applying its update, when the config changed) and every failure message of it says the
        fleet is stopped.
      - Set it to V(false) for a stop that must outlast the next deployment (a maintenance window); the fleet
        then stays stopped until O(state=started).
    type: bool
    default: true
extends_documentation_fragment:
  - hpc.pcluster.aws
  - hpc.pcluster.progress
  - hpc.pcluster.fleet_guard
attributes:
  check_mode:
    support: full
    description: Reports whether the fleet would be started or stopped without asking for it.
  diff_mode:
    support: none
    description: There is no diff.
"""

EXAMPLES = r"""
# In a play on the controller of a playbook in this collection's playbooks/ (destroy.yml counts jobs the same way).
- name: Count the jobs a stop would kill (on the head node of the cluster pcluster_cluster_name)
  ansible.builtin.include_tasks: tasks/count_jobs.yml

- name: Stop the compute fleet when no job is left (and wait until it is STOPPED)
  hpc.pcluster.compute_fleet:
    name: ml-training-cluster
    state: stopped
    region: us-east-1
    unfinished_jobs: "{{ count_jobs.count if count_jobs.known else omit }}"

- name: Stop it for a maintenance window, whatever runs, and keep it stopped across deployments
  hpc.pcluster.compute_fleet:
    name: ml-training-cluster
    state: stopped
    force_fleet_stop: true
    mark_for_restart: false

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
actions:
  description: What the module did (or, in check mode, would do), in order.
  returned: always
  type: list
  elements: str
  sample: [stop compute fleet]
marked_for_restart:
  description: Whether this run tagged the head node so that the next M(hpc.pcluster.cluster) run starts the fleet.
  returned: with O(state=stopped)
  type: bool
  sample: true
"""

from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.run import FleetRun
from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.fleet import JOBS_GUARD_OPTIONS, check_jobs_guard_options
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_base import PclusterModule


def argument_spec():
    return dict(
        name=dict(type="str", required=True, aliases=["cluster_name"]),
        state=dict(type="str", required=True, choices=["started", "stopped"]),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1200),
        mark_for_restart=dict(type="bool", default=True),
        **JOBS_GUARD_OPTIONS
    )


def main():
    module = PclusterModule(argument_spec=argument_spec(), progress=True, supports_check_mode=True)
    check_jobs_guard_options(module)
    runner = FleetRun(module, module.client())
    try:
        result = runner.run()
    except PclusterApiError as error:
        runner.fail_error(error, "Cannot set the compute fleet of %s to %s" % (module.params["name"], module.params["state"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
