# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The EC2 tags ParallelCluster and CloudFormation put on cluster instances, and which head node to trust."""

from __future__ import annotations

# Set by ParallelCluster (pcluster.templates.cdk_builder_utils.get_default_instance_tags and the node daemons).
CLUSTER_TAG = "parallelcluster:cluster-name"
NODE_TYPE_TAG = "parallelcluster:node-type"
QUEUE_TAG = "parallelcluster:queue-name"
COMPUTE_RESOURCE_TAG = "parallelcluster:compute-resource-name"
LOGIN_POOL_TAG = "parallelcluster:login-nodes-pool-name"
VERSION_TAG = "parallelcluster:version"
ATTRIBUTES_TAG = "parallelcluster:attributes"

# Set by CloudFormation on the instances a stack launches. Tag keys starting with "aws:" are reserved: the EC2
# API refuses them from users, so these say which stack really launched an instance.
STACK_NAME_TAG = "aws:cloudformation:stack-name"
LOGICAL_ID_TAG = "aws:cloudformation:logical-id"
# The head node is the resource "HeadNode" of the cluster's stack, whose name is the cluster name
# (pcluster.templates.cluster_stack).
HEAD_NODE_LOGICAL_ID = "HeadNode"


def untrusted_head_node_reason(tags):
    """Why an instance tagged as a head node is not its cluster's real head node, or None when it is.

    Only the instance that the cluster's CloudFormation stack launched as its HeadNode resource is trusted;
    anyone allowed to tag instances can tag one parallelcluster:node-type=HeadNode.
    """
    cluster = tags.get(CLUSTER_TAG, "")
    stack, logical_id = tags.get(STACK_NAME_TAG), tags.get(LOGICAL_ID_TAG)
    if stack == cluster and logical_id == HEAD_NODE_LOGICAL_ID:
        return None
    return "tags %s=%r, %s=%r (the cluster's stack sets %r and %r)" % (
        STACK_NAME_TAG, stack, LOGICAL_ID_TAG, logical_id, cluster, HEAD_NODE_LOGICAL_ID)
