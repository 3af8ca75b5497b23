"""The inventory's group names and cluster membership (plugins/plugin_utils/node_groups.py), and the filters that
give them to playbooks (plugins/filter/cluster.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hpc.pcluster.plugins.filter.cluster import FilterModule
from ansible_collections.hpc.pcluster.plugins.plugin_utils import node_groups

FILTERS = FilterModule().filters()


@pytest.mark.parametrize(
    "value, expected",
    [("ml-training-cluster", "ml_training_cluster"), ("a.b c", "a_b_c"), ("1st", "_1st"), ("ok_name", "ok_name")],
)
def test_safe_group_name(value, expected):
    assert node_groups.safe_group_name(value) == expected


def test_the_groups_of_a_node_follow_one_rule():
    assert node_groups.host_groups("ml-training-cluster", "Compute", queue="compute-gpu",
                                   compute_resource="distributed-ml") == [
        "ml_training_cluster", "compute", "ml_training_cluster_compute", "ml_training_cluster_queue_compute_gpu",
        "ml_training_cluster_queue_compute_gpu_distributed_ml"]
    assert node_groups.host_groups("c", "LoginNode", login_pool="p-1") == ["c", "login_node", "c_login_node", "c_login_pool_p_1"]
    assert node_groups.host_groups("c", "HeadNode") == ["c", "head_node", "c_head_node"]


def test_the_filter_names_the_groups_the_inventory_makes():
    head = FILTERS["cluster_group"]("ml-training-cluster", "head_node")
    assert head == "ml_training_cluster_head_node" and head in node_groups.host_groups("ml-training-cluster", "HeadNode")
    assert FILTERS["cluster_group"]("ml-training-cluster") == "ml_training_cluster"
    with pytest.raises(AnsibleFilterError, match="kind must be one of head_node, login_node, compute, not 'heads'"):
        FILTERS["cluster_group"]("c", "heads")


def test_membership():
    member = FILTERS["cluster_member"]
    assert member({"pcluster_node_cluster_name": "alpha"}, "alpha") is True
    assert member({"pcluster_node_cluster_name": "beta"}, "alpha") is False
    assert member({"ansible_host": "10.0.0.1"}, "alpha") is True  # a static inventory of one cluster
    with pytest.raises(AnsibleFilterError, match="expects a host's variables"):
        member("alpha", "alpha")
