"""Only the head node the cluster's own stack launched is trusted; tags a user can set are not enough."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.plugin_utils import pcluster_tags as tags

REAL = {
    tags.CLUSTER_TAG: "ml-training-cluster",
    tags.NODE_TYPE_TAG: "HeadNode",
    tags.STACK_NAME_TAG: "ml-training-cluster",
    tags.LOGICAL_ID_TAG: "HeadNode",
}


def test_the_stacks_head_node_is_trusted():
    assert tags.untrusted_head_node_reason(REAL) is None


def test_user_tags_alone_are_not_trusted():
    reason = tags.untrusted_head_node_reason({tags.CLUSTER_TAG: "ml-training-cluster", tags.NODE_TYPE_TAG: "HeadNode"})
    assert "aws:cloudformation:stack-name=None" in reason


def test_another_stacks_instance_is_not_trusted():
    assert tags.untrusted_head_node_reason(dict(REAL, **{tags.STACK_NAME_TAG: "other-cluster"})) is not None
    assert tags.untrusted_head_node_reason(dict(REAL, **{tags.LOGICAL_ID_TAG: "LoginNodes"})) is not None
