#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster
short_description: Create, update or delete an AWS ParallelCluster 3 cluster
version_added: 0.1.0
description:
  - Makes an AWS ParallelCluster cluster match a configuration, with ParallelCluster's own Python API
    (C(pcluster.lib)) on the host that runs the module.
  - O(state=present) creates a missing cluster. An existing cluster whose stored configuration (the S3 object
    behind describe-cluster's C(clusterConfiguration.url)) equals the desired one is left alone. Otherwise an
    update dryrun runs first and its change set is returned; then the cluster is updated.
  - An update that needs the compute fleet stopped fails and says so, unless O(stop_fleet_for_update=true),
    in which case the fleet is stopped, the cluster updated and the fleet started again. The fleet is only
    stopped when the caller counted the unfinished Slurm jobs on the head node and found none
    (O(unfinished_jobs=0)), or with O(force_fleet_stop=true).
  - While the fleet is stopped for an update, the head node carries the EC2 tag
    C(hpc.pcluster:fleet-stopped-for-update). A failed update starts the fleet again where the cluster allows
    it; a timed-out or interrupted one leaves the tag, and the next run with O(state=present) starts the fleet
    once the cluster is stable. Every failure message says "the compute fleet is STOPPED" while it is. A stop
    made by M(hpc.pcluster.compute_fleet) carries the same tag (unless its O(hpc.pcluster.compute_fleet#module:mark_for_restart=false)),
    so the next run starts that fleet too, after the update when there is one.
  - A compute fleet in C(PROTECTED) (queues set INACTIVE after repeated bootstrap failures) is reported with a
    warning that says what it means and how to recover; a fleet this module starts that ends in C(PROTECTED)
    fails the task with the same explanation.
  - Writes are never repeated blindly. After an error of a create, update, delete or fleet request, the cluster
    is described. When it shows the change, the run carries on. A create that finds the cluster already there
    compares its stored configuration and fails when it differs. Waits accept a few poll errors in a row.
  - A cluster in a C(*_IN_PROGRESS) state is waited for before anything else is done.
  - O(state=absent) deletes the cluster and waits until it is gone. A missing cluster is not an error.
  - When a create, update or delete ends in C(*_FAILED), the task fails with the failure codes and reasons,
    a hint for each failure code, the first failed CloudFormation events and the CloudWatch log streams
    to read.
  - Creating a cluster takes 20 to 40 minutes. The module writes a progress line (elapsed time, cluster and
    stack status, resources complete out of the stack's total) at least every 55 seconds while it waits; the
    collection's action plugin runs the module as a background job and prints these lines in the playbook
    output as they come, so one shows at least once a minute.
  - Results never hold describe-cluster's C(clusterConfiguration.url) (a presigned URL to the stored
    configuration); the stored configuration is read over https only (http only from the host of an explicit
    http O(endpoint_url)).
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  name:
    description:
      - The cluster name (letters, digits and hyphens, starting with a letter, at most 60 characters).
    type: str
    required: true
    aliases: [cluster_name]
  state:
    description:
      - V(present) creates or updates the cluster, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  config:
    description:
      - The ParallelCluster 3 cluster configuration as a dictionary (what the YAML file holds).
      - Mutually exclusive with O(config_file). One of them is required with O(state=present).
    type: dict
  config_file:
    description:
      - Path of a ParallelCluster 3 cluster configuration YAML file, on the host that runs the module.
    type: path
  wait:
    description:
      - Wait until the create, update or delete has finished, and fail if it failed.
      - With V(false) the module starts the create, update or delete and returns its status without waiting;
        a cluster already in a C(*_IN_PROGRESS) state is left alone. An update that needs the compute fleet
        stopped needs V(true).
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait at most, for all the steps of the task together.
      - The CloudFormation operation goes on after a timeout; running the task again keeps waiting.
    type: int
    default: 3600
  rollback_on_failure:
    description:
      - Roll back (delete the resources of) a cluster whose creation failed.
      - Set it to V(false) to keep the head node of a failed creation for debugging.
    type: bool
    default: true
  stop_fleet_for_update:
    description:
      - When an update needs the compute fleet stopped ("All compute nodes must be stopped"), stop the fleet,
        update the cluster and start the fleet again. Running jobs are killed.
      - When V(false), such an update fails with a message saying so.
    type: bool
    default: false
extends_documentation_fragment:
  - hpc.pcluster.pcluster_validation
  - hpc.pcluster.aws
  - hpc.pcluster.progress
  - hpc.pcluster.fleet_guard
attributes:
  check_mode:
    support: full
    description:
      - Runs ParallelCluster's dryrun (full validation, nothing created or changed anywhere) and reports
        what would change, with the update change set.
  diff_mode:
    support: full
    description: Shows the stored and the desired cluster configuration as YAML.
notes:
  - The comparison of stored and desired configuration ignores key order and the difference between
    V(2) and V("2"); ParallelCluster's own update dryrun decides in the end whether anything changes.
  - Creating and updating need Node.js on the host that runs the module (ParallelCluster uses the AWS CDK).
seealso:
  - module: hpc.pcluster.cluster_info
  - module: hpc.pcluster.compute_fleet
  - name: ParallelCluster configuration file reference
    description: The keys of O(config).
    link: https://docs.aws.amazon.com/parallelcluster/latest/ug/cluster-configuration-file-v3.html
"""

EXAMPLES = r"""
- name: Create or update the training cluster from the generated configuration
  hpc.pcluster.cluster:
    name: ml-training-cluster
    config_file: "{{ cluster_config_file }}"
    region: us-east-1
  register: cluster

- name: Show how to reach the head node
  ansible.builtin.debug:
    msg: "ssh ubuntu@{{ cluster.head_node.public_ip_address }}"

- name: Count the jobs that a fleet stop would kill (playbooks/tasks/count_jobs.yml counts every unfinished state)
  ansible.builtin.command:
    argv: [squeue, --all, --noheader, "--states=PENDING,CONFIGURING,RUNNING,COMPLETING,SUSPENDED", "--format=%i"]
  delegate_to: "{{ groups['ml_training_cluster_head_node'][0] }}"
  changed_when: false
  register: jobs

- name: Same, from the config dict, stopping the fleet when the update requires it and no job runs
  hpc.pcluster.cluster:
    name: ml-training-cluster
    config: "{{ cluster_config }}"
    stop_fleet_for_update: true
    unfinished_jobs: "{{ jobs.stdout_lines | length }}"
    suppress_validators:
      - type:InstanceTypeBaseAMICompatibleValidator

- name: What would change (ParallelCluster dryrun, nothing is touched)
  hpc.pcluster.cluster:
    name: ml-training-cluster
    config: "{{ cluster_config }}"
  check_mode: true
  diff: true
  register: plan

- name: Delete the cluster and wait until it is gone
  hpc.pcluster.cluster:
    name: ml-training-cluster
    state: absent
"""

RETURN = r"""
exists:
  description: Whether the cluster exists when the module finished (in check mode, before).
  returned: always
  type: bool
  sample: true
status:
  description: The cluster status (C(clusterStatus)); null when the cluster does not exist.
  returned: always
  type: str
  sample: CREATE_COMPLETE
stack_status:
  description: The CloudFormation stack status.
  returned: always
  type: str
  sample: CREATE_COMPLETE
compute_fleet_status:
  description: The compute fleet status reported by describe-cluster.
  returned: always
  type: str
  sample: RUNNING
version:
  description: The ParallelCluster version of the cluster.
  returned: always
  type: str
  sample: 3.16.1
head_node:
  description: The head node (null while it has no instance).
  returned: always
  type: dict
  contains:
    instance_id:
      description: EC2 instance id.
      type: str
      sample: i-0123456789abcdef0
    instance_type:
      description: EC2 instance type.
      type: str
      sample: m5.8xlarge
    private_ip_address:
      description: Private IPv4 address.
      type: str
      sample: 10.0.0.10
    public_ip_address:
      description: Public IPv4 address, if any.
      type: str
      sample: 203.0.113.10
    state:
      description: EC2 instance state.
      type: str
      sample: running
    launch_time:
      description: Launch time (ISO 8601).
      type: str
      sample: "2026-11-28T23:40:00.000Z"
cluster:
  description:
    - The full C(pcluster describe-cluster) answer in ParallelCluster's camelCase keys; empty when the
      cluster does not exist.
  returned: always
  type: dict
validation_messages:
  description: ParallelCluster's validation messages of the create or update (or its dryrun), by level.
  returned: always
  type: dict
  contains:
    ERROR:
      description: Messages of level ERROR (each with id, type, level, message).
      type: list
      elements: dict
    WARNING:
      description: Messages of level WARNING.
      type: list
      elements: dict
    INFO:
      description: Messages of level INFO.
      type: list
      elements: dict
change_set:
  description: The update's change set from ParallelCluster (parameter, currentValue, requestedValue).
  returned: always
  type: list
  elements: dict
  sample:
    - parameter: Scheduling.SlurmQueues[compute-gpu].ComputeResources[distributed-ml].MaxCount
      currentValue: "2"
      requestedValue: "4"
config_changes:
  description: The differences between the stored and the desired configuration, one line each.
  returned: always
  type: list
  elements: str
  sample: ["Scheduling.SlurmQueues[0].ComputeResources[0].MaxCount: 2 -> 4"]
stored_config_error:
  description:
    - Why the stored configuration could not be read (the update dryrun then decides alone whether anything
      changes).
  returned: when the stored configuration of an existing cluster could not be read
  type: str
  sample: "could not download the stored config: HTTP Error 403: Forbidden"
actions:
  description: What the module did (or, in check mode, would do), in order.
  returned: always
  type: list
  elements: str
  sample: ["dryrun update", "stop compute fleet", "update cluster", "start compute fleet"]
fleet_stopped_for_update:
  description:
    - Whether the compute fleet was stopped for an update by this run, or found stopped and marked for a restart
      by an earlier run (an update that did not finish, or M(hpc.pcluster.compute_fleet)); it is started again
      once the update is done.
  returned: always
  type: bool
  sample: false
fleet_stop_required:
  description: Whether the update needs the compute fleet stopped (ParallelCluster's "All compute nodes must be stopped").
  returned: always
  type: bool
  sample: false
failure:
  description: The failure report of a C(*_FAILED) cluster.
  returned: on failure of a create, update or delete
  type: dict
  contains:
    failures:
      description: failure_code, failure_reason and a hint for each failure.
      type: list
      elements: dict
    failed_events:
      description: The first failed CloudFormation events, oldest first.
      type: list
      elements: dict
    log_group:
      description: The cluster's CloudWatch log group.
      type: str
    log_streams:
      description: The log streams to read first.
      type: list
      elements: str
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 1520.4
"""

from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.fleet import JOBS_GUARD_OPTIONS, jobs_guard_problems
from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.lifecycle import ClusterRun
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_options import lifecycle_argument_spec, run_lifecycle


def argument_spec():
    return lifecycle_argument_spec("cluster_name", wait_timeout=3600, rollback_on_failure=True,
                                   stop_fleet_for_update=dict(type="bool", default=False), **JOBS_GUARD_OPTIONS)


def main():
    run_lifecycle(argument_spec(), ClusterRun, "Cluster", problems=jobs_guard_problems)


if __name__ == "__main__":
    main()
