#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_info
short_description: Describe one AWS ParallelCluster cluster or list all of them
version_added: 0.1.0
description:
  - With O(name), describes that cluster (status, CloudFormation stack status, head node, compute fleet status,
    version) like C(pcluster describe-cluster), optionally with its instances, its compute fleet and how far its
    CloudFormation stack has got.
  - Without O(name), lists every cluster of the region like C(pcluster list-clusters), reading all pages.
  - A cluster that does not exist is not an error; RV(exists) is then V(false).
  - Uses ParallelCluster's Python API (C(pcluster.lib)) on the host that runs the module.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  name:
    description:
      - The cluster to describe. Leave it out to list all clusters.
    type: str
    aliases: [cluster_name]
  cluster_status:
    description:
      - When listing, only return clusters in these states.
    type: list
    elements: str
    choices: [CREATE_IN_PROGRESS, CREATE_FAILED, CREATE_COMPLETE, DELETE_IN_PROGRESS, DELETE_FAILED,
              UPDATE_IN_PROGRESS, UPDATE_COMPLETE, UPDATE_FAILED]
  instances:
    description:
      - Also return the cluster's EC2 instances (all pages of C(pcluster describe-cluster-instances)).
      - Requires O(name).
    type: bool
    default: false
  node_type:
    description:
      - With O(instances), only return instances of this node type.
    type: str
    choices: [HeadNode, ComputeNode, LoginNode]
  queue_name:
    description:
      - With O(instances), only return compute instances of this Slurm queue.
    type: str
  compute_fleet:
    description:
      - Also return the compute fleet status (C(pcluster describe-compute-fleet)).
      - Requires O(name).
    type: bool
    default: false
extends_documentation_fragment:
  - hpc.pcluster.describe_details
  - hpc.pcluster.aws
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs normally in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
"""

EXAMPLES = r"""
- name: Describe the training cluster
  hpc.pcluster.cluster_info:
    name: ml-training-cluster
    region: us-east-1
  register: cluster

- name: Show the head node address
  ansible.builtin.debug:
    msg: "{{ cluster.head_node.public_ip_address }} ({{ cluster.status }})"
  when: cluster.exists

- name: List every cluster that finished creating
  hpc.pcluster.cluster_info:
    cluster_status: [CREATE_COMPLETE, UPDATE_COMPLETE]
  register: all_clusters

- name: Read the configuration ParallelCluster stored for the cluster
  hpc.pcluster.cluster_info:
    name: ml-training-cluster
    stored_config: true
  register: stored

- name: Compute instances of one queue and the fleet status
  hpc.pcluster.cluster_info:
    name: ml-training-cluster
    instances: true
    node_type: ComputeNode
    queue_name: compute-gpu
    compute_fleet: true
  register: fleet
"""

RETURN = r"""
exists:
  description: Whether the cluster named O(name) exists.
  returned: when O(name) is given
  type: bool
  sample: true
status:
  description: The cluster status (C(clusterStatus)).
  returned: when O(name) is given and the cluster exists
  type: str
  sample: CREATE_COMPLETE
stack_status:
  description: The CloudFormation stack status.
  returned: when O(name) is given and the cluster exists
  type: str
  sample: CREATE_COMPLETE
compute_fleet_status:
  description:
    - The compute fleet status as describe-cluster reports it.
    - C(PROTECTED) comes with a warning that says what it means and how to recover.
  returned: when O(name) is given and the cluster exists
  type: str
  sample: RUNNING
version:
  description: The ParallelCluster version that created the cluster.
  returned: when O(name) is given and the cluster exists
  type: str
  sample: 3.16.1
head_node:
  description: The head node, or null when it has no instance.
  returned: when O(name) is given
  type: dict
  contains:
    instance_id:
      description: EC2 instance id.
      type: str
      sample: i-0123456789abcdef0
    instance_type:
      description: EC2 instance type.
      type: str
      sample: c5.2xlarge
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
    - The full C(pcluster describe-cluster) answer, in ParallelCluster's own camelCase keys
      (clusterName, clusterStatus, cloudFormationStackStatus, cloudformationStackArn, computeFleetStatus,
      headNode, failures, scheduler, tags, version, ...).
    - Without C(clusterConfiguration.url), a presigned URL that grants access to the stored configuration
      (use O(stored_config) to read it).
    - An empty dict when the cluster does not exist.
  returned: when O(name) is given
  type: dict
clusters:
  description: Every cluster of the region, as C(pcluster list-clusters) returns them (camelCase keys).
  returned: when O(name) is not given
  type: list
  elements: dict
  sample:
    - clusterName: ml-training-cluster
      clusterStatus: CREATE_COMPLETE
      cloudformationStackStatus: CREATE_COMPLETE
      region: us-east-1
      version: 3.16.1
      scheduler: {type: slurm}
instances:
  description: The cluster's instances (instanceId, nodeType, queueName, privateIpAddress, state, ...).
  returned: when O(instances=true) and the cluster exists
  type: list
  elements: dict
compute_fleet:
  description: The C(pcluster describe-compute-fleet) answer (status, lastStatusUpdatedTime).
  returned: when O(compute_fleet=true) and the cluster exists
  type: dict
  sample: {status: RUNNING, lastStatusUpdatedTime: "2026-11-28T23:50:00.000Z"}
stack_progress:
  description: How far the current CloudFormation operation has got.
  returned: when O(stack_progress=true) and the cluster exists
  type: dict
  contains:
    operation:
      description: CREATE, UPDATE or DELETE.
      type: str
    resources_total:
      description: Resources in the stack template (null when it cannot be read).
      type: int
    resources_complete:
      description: Resources whose latest event is C(*_COMPLETE) in this operation.
      type: int
    resources_in_progress:
      description: Resources whose latest event is C(*_IN_PROGRESS).
      type: int
    resources_failed:
      description: Resources whose latest event is C(*_FAILED).
      type: int
    latest_event:
      description: The newest resource event (logical_id, status, type, reason, timestamp).
      type: dict
failure:
  description: The failure report of a C(*_FAILED) cluster; see M(hpc.pcluster.cluster).
  returned: when O(failure_details=true) and the cluster status ends in C(_FAILED)
  type: dict
stored_config:
  description: The configuration ParallelCluster stored for the cluster; empty when it could not be read.
  returned: when O(stored_config=true) and the cluster exists
  type: dict
  sample: {Region: us-east-1, Image: {Os: ubuntu2204}, HeadNode: {InstanceType: m5.8xlarge}}
stored_config_error:
  description: Why the stored configuration could not be read.
  returned: when O(stored_config=true) and it could not be read
  type: str
  sample: "could not download the stored config (403)"
"""

from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.fleet import PROTECTED, protected_message
from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import fetch_stored_config
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.failure_report import failure_report
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_base import PclusterModule, cluster_summary
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_options import describe_argument_spec
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.wait import ClusterPoller

CLUSTER_STATUSES = [
    "CREATE_IN_PROGRESS",
    "CREATE_FAILED",
    "CREATE_COMPLETE",
    "DELETE_IN_PROGRESS",
    "DELETE_FAILED",
    "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE",
    "UPDATE_FAILED",
]
NEEDS_NAME = ("instances", "compute_fleet", "stack_progress", "failure_details", "stored_config")


def argument_spec():
    return describe_argument_spec(
        "cluster_name",
        cluster_status=dict(type="list", elements="str", choices=CLUSTER_STATUSES),
        instances=dict(type="bool", default=False),
        node_type=dict(type="str", choices=["HeadNode", "ComputeNode", "LoginNode"]),
        queue_name=dict(type="str"),
        compute_fleet=dict(type="bool", default=False),
    )


def describe_one(module, api):
    params = module.params
    name = params["name"]
    cluster = api.describe_cluster(name)
    result = dict(changed=False)
    result.update(cluster_summary(cluster))
    if cluster is None:
        return result
    if cluster.get("computeFleetStatus") == PROTECTED:
        module.warn(protected_message(name))
    if params["instances"]:
        result["instances"] = api.describe_cluster_instances(name, node_type=params["node_type"], queue_name=params["queue_name"])
    if params["compute_fleet"]:
        result["compute_fleet"] = api.describe_compute_fleet(name)
    if params["stack_progress"]:
        result["stack_progress"] = ClusterPoller(api, name).stack_progress(cluster)
    if params["failure_details"] and str(cluster.get("clusterStatus") or "").endswith("_FAILED"):
        result["failure"] = failure_report(api, name, cluster)
    if params["stored_config"]:
        stored, reason = fetch_stored_config(cluster, endpoint_url=module.settings.get("endpoint_url"))
        result["stored_config"] = stored or {}
        if reason:
            result["stored_config_error"] = reason
    return result


def main():
    module = PclusterModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    needs_name = [opt for opt in NEEDS_NAME if params[opt]]
    if needs_name and not params["name"]:
        module.fail_json(msg="Options %s need 'name' (the cluster to describe)." % ", ".join(needs_name))
    if (params["node_type"] or params["queue_name"]) and not params["instances"]:
        module.fail_json(msg="'node_type' and 'queue_name' filter instances: set 'instances: true' too.")
    if params["cluster_status"] and params["name"]:
        module.fail_json(msg="'cluster_status' filters the list of all clusters: leave out 'name' to use it.")

    api = module.client()
    try:
        if params["name"]:
            result = describe_one(module, api)
        else:
            result = dict(changed=False, clusters=api.list_clusters(cluster_status=params["cluster_status"]))
    except PclusterApiError as error:
        module.fail_json_pcluster(error, msg="Cannot describe %s" % (params["name"] or "the clusters"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
