# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the playbooks and roles: the inventory group names of a cluster's nodes and which hosts belong to it,
by the rule the inventory plugin hpc.pcluster.nodes names its groups with."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.hpc.pcluster.plugins.plugin_utils.node_groups import cluster_group as _cluster_group
from ansible_collections.hpc.pcluster.plugins.plugin_utils.node_groups import cluster_member as _cluster_member


def cluster_group(cluster_name, kind=None):
    """``ml-training-cluster | cluster_group('head_node')`` -> ``ml_training_cluster_head_node``."""
    try:
        return _cluster_group(cluster_name, kind)
    except ValueError as error:
        raise AnsibleFilterError("cluster_group: %s" % error) from None


def cluster_member(hostvars, cluster_name):
    """``hostvars[host] | cluster_member(pcluster_cluster_name)``: whether the host is a node of that cluster."""
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError("cluster_member: expects a host's variables (hostvars[host]), got %s" % type(hostvars).__name__)
    return _cluster_member(hostvars, cluster_name)


class FilterModule:
    def filters(self):
        return {"cluster_group": cluster_group, "cluster_member": cluster_member}
