# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory's groups of cluster nodes: one rule for their names (the inventory plugin and the playbooks'
filters share it) and which cluster a host belongs to."""

from __future__ import annotations

import re

NODE_TYPE_GROUPS = {"HeadNode": "head_node", "LoginNode": "login_node", "Compute": "compute"}
GROUP_KINDS = ("head_node", "login_node", "compute")

_UNSAFE_GROUP_CHARS = re.compile(r"[^A-Za-z0-9_]")


def safe_group_name(name):
    """Group name with every character outside [A-Za-z0-9_] replaced by '_' (and no leading digit)."""
    name = _UNSAFE_GROUP_CHARS.sub("_", str(name))
    return "_" + name if name[:1].isdigit() else name


def cluster_group(cluster_name, kind=None):
    """The group of a cluster's nodes (``kind`` None), or of its nodes of one kind (head_node, login_node, compute)."""
    if kind is not None and kind not in GROUP_KINDS:
        raise ValueError("kind must be one of %s, not %r" % (", ".join(GROUP_KINDS), kind))
    group = safe_group_name(cluster_name)
    return "%s_%s" % (group, kind) if kind else group


def host_groups(cluster, node_type, queue=None, compute_resource=None, login_pool=None):
    """Every group of one node: its cluster's, its kind's (plain and per cluster), its queue's and so on."""
    type_group = NODE_TYPE_GROUPS.get(node_type)
    groups = [cluster_group(cluster)]
    if type_group:
        groups += [type_group, cluster_group(cluster, type_group)]
    if node_type == "Compute" and queue:
        queue_group = "%s_queue_%s" % (cluster_group(cluster), safe_group_name(queue))
        groups.append(queue_group)
        if compute_resource:
            groups.append("%s_%s" % (queue_group, safe_group_name(compute_resource)))
    elif node_type == "LoginNode" and login_pool:
        groups.append("%s_login_pool_%s" % (cluster_group(cluster), safe_group_name(login_pool)))
    return groups


def cluster_member(hostvars, cluster_name):
    """Whether a host belongs to the cluster: the inventory plugin names each node's cluster in
    pcluster_node_cluster_name; a host it did not list (a static inventory of one cluster) belongs to any."""
    listed = (hostvars or {}).get("pcluster_node_cluster_name")
    return listed is None or listed == cluster_name
