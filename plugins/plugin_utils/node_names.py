# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Inventory host names of cluster nodes: Slurm node names from ParallelCluster's node table, head and login names."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.plugin_utils.ec2_instances import ACCESS_DENIED_CODES
from ansible_collections.hpc.pcluster.plugins.plugin_utils.pcluster_tags import (
    CLUSTER_TAG,
    LOGIN_POOL_TAG,
    NODE_TYPE_TAG,
)

# The hostnames entry that means "the name people know the node by".
NODE_NAME_SOURCE = "node-name"

# ParallelCluster's Slurm plugins (slurm_resume, clustermgtd) record the instance behind each Slurm node in
# this table of the cluster (pcluster.constants.PCLUSTER_SLURM_DYNAMODB_PREFIX + the stack name, which is the
# cluster name): one item per node name, {Id: <node name>, InstanceId, HeadNodePrivateIp, HeadNodeHostname},
# replaced when the node gets a new instance and never removed.
SLURM_TABLE_PREFIX = "parallelcluster-slurm-"
# DynamoDB returns at most 1 MB a page whatever the limit; each projected item is about 60 bytes.
SCAN_PAGE_SIZE = 5000
# The node table's global secondary index on InstanceId, which ParallelCluster's compute nodes query for their name.
INSTANCE_ID_INDEX = "InstanceId"
QUERY_WORKERS = 8


def slurm_table_name(cluster):
    """ParallelCluster's node table of a cluster."""
    return SLURM_TABLE_PREFIX + cluster


def _keep(names, node, instance_id):
    """Record node for instance_id; should one instance be recorded under two names, the alphabetically first
    is kept, so the answer does not depend on the order items come in."""
    if node and instance_id and (instance_id not in names or node < names[instance_id]):
        names[instance_id] = node


def scan_slurm_node_names(client, cluster, page_size=None):
    """{instance id: Slurm node name} from one paginated Scan of the cluster's node table (a boto3 client).

    Errors (a missing table, no permission) are the caller's.
    """
    paginator = client.get_paginator("scan")
    pages = paginator.paginate(
        TableName=slurm_table_name(cluster),
        ProjectionExpression="#node, InstanceId",
        ExpressionAttributeNames={"#node": "Id"},
        PaginationConfig={"PageSize": page_size or SCAN_PAGE_SIZE},
    )
    names = {}
    for page in pages:
        for item in page.get("Items", ()):
            _keep(names, (item.get("Id") or {}).get("S"), (item.get("InstanceId") or {}).get("S"))
    return names


def query_slurm_node_names(client, cluster, instance_ids, workers=QUERY_WORKERS):
    """{instance id: Slurm node name} from one Query of the node table's InstanceId index per instance, as
    ParallelCluster's compute nodes learn their names (its documented user policy allows dynamodb:Query on
    table/parallelcluster-*, not Scan); the queries run in parallel. Errors are the caller's."""
    import concurrent.futures

    table = slurm_table_name(cluster)

    def query(instance_id):
        return client.query(TableName=table, IndexName=INSTANCE_ID_INDEX,
                            KeyConditionExpression="InstanceId = :instance",
                            ExpressionAttributeValues={":instance": {"S": instance_id}},
                            ProjectionExpression="#node", ExpressionAttributeNames={"#node": "Id"}).get("Items", ())

    names = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(instance_ids)))) as pool:
        for instance_id, items in zip(instance_ids, pool.map(query, instance_ids)):
            for item in items:
                _keep(names, (item.get("Id") or {}).get("S"), instance_id)
    return names


def _client_error(error):
    """(code, message) of a botocore ClientError."""
    details = error.response.get("Error", {})
    return details.get("Code", "ClientError"), details.get("Message") or str(error)


def cluster_node_names(client, region, cluster, instance_ids, display):
    """{instance id: Slurm node name} of a cluster's compute instances, or None when the node table cannot be
    read (said in verbose output for a missing table, in a warning naming the action and the principal for any
    other error).

    One Scan of the table when the credentials allow it; ParallelCluster's documented user policies do not, and
    then one Query of the table's InstanceId index per instance (said in verbose output).
    """
    import botocore.exceptions

    table = slurm_table_name(cluster)
    fallback = "; its compute nodes are named by instance id"
    try:
        try:
            return scan_slurm_node_names(client, cluster)
        except botocore.exceptions.ClientError as e:
            code, message = _client_error(e)
            if code not in ACCESS_DENIED_CODES:
                raise
            display.v("hpc.pcluster.nodes: %s: no dynamodb:Scan on %s (%s), so one Query of its %s index per compute "
                      "node (%d); granting dynamodb:Scan on it makes that one request" % (
                          region, table, message, INSTANCE_ID_INDEX, len(instance_ids)))
        return query_slurm_node_names(client, cluster, instance_ids)
    except botocore.exceptions.ClientError as e:
        code, message = _client_error(e)
        if code == "ResourceNotFoundException":
            display.v("hpc.pcluster.nodes: %s: cluster %s has no node table %s%s" % (region, cluster, table, fallback))
        else:
            display.warning("hpc.pcluster.nodes: %s: cannot read the node table %s of cluster %s (%s: %s)%s"
                            % (region, table, cluster, code, message, fallback))
    except botocore.exceptions.BotoCoreError as e:
        display.warning("hpc.pcluster.nodes: %s: cannot read the node table %s of cluster %s (%s)%s"
                        % (region, table, cluster, e, fallback))
    return None


def read_slurm_node_names(client, region, records, display):
    """Set slurm_node_name on compute records, from each of their clusters' node tables (cluster_node_names).

    A cluster whose table cannot be read keeps its compute nodes unnamed.
    """
    computes = {}
    for record in records:
        if record["tags"].get(NODE_TYPE_TAG) == "Compute":
            computes.setdefault(record["tags"].get(CLUSTER_TAG, ""), []).append(record)
    for cluster in sorted(computes):
        names = cluster_node_names(client, region, cluster, [r["instance_id"] for r in computes[cluster]], display)
        for record in computes[cluster]:
            if names and record["instance_id"] in names:
                record["slurm_node_name"] = names[record["instance_id"]]


def head_node_name(cluster):
    return "%s-head" % cluster


def login_node_names(records):
    """{instance id: name} for login nodes: <cluster>-<pool>-<instance id> (<cluster>-login-<instance id> without a
    pool tag).

    A login pool is an auto scaling group: its nodes have no number of their own, and a number counted from the
    pool's members would shift every later node's name when one is replaced. The instance id is the node's for its
    whole life: a replaced node gets a new name, the others keep theirs.
    """
    names = {}
    for record in records:
        tags = record["tags"]
        if tags.get(NODE_TYPE_TAG) == "LoginNode":
            pool = tags.get(LOGIN_POOL_TAG) or "login"
            names[record["instance_id"]] = "%s-%s-%s" % (tags.get(CLUSTER_TAG, ""), pool, record["instance_id"])
    return names


def node_name_candidates(record, login_names):
    """The default host names of a node, best first; empty when its name is not known.

    A compute node: its Slurm node name, then <cluster>-<node name> (for when two listed clusters have nodes
    of the same name); nothing when the node table does not hold it (yet). A head node: <cluster>-head.
    A login node: its name from login_node_names.
    """
    tags = record["tags"]
    node_type = tags.get(NODE_TYPE_TAG)
    cluster = tags.get(CLUSTER_TAG, "")
    if node_type == "HeadNode":
        return [head_node_name(cluster)]
    if node_type == "LoginNode":
        name = login_names.get(record["instance_id"])
        return [name] if name else []
    slurm_name = record.get("slurm_node_name")
    return [slurm_name, "%s-%s" % (cluster, slurm_name)] if slurm_name else []


def preferred_name(record, hostnames, address_sources, login_names, taken):
    """The first name the hostnames list gives the record, or None.

    A node-name candidate that is taken already is passed over; any other value is returned as it is (the
    caller handles a clash).
    """
    for entry in hostnames:
        if entry == NODE_NAME_SOURCE:
            for candidate in node_name_candidates(record, login_names):
                if not taken(candidate):
                    return candidate
            continue
        if entry.startswith("tag:"):
            value = record["tags"].get(entry[4:])
        else:
            value = record.get(address_sources[entry])
        if value:
            return value
    return None


def assign_host_names(records, hostnames, address_sources, exists, display):
    """{instance id: inventory host name}, each name used once.

    exists(name) says whether the inventory already holds a host of that name (from another source). A name
    that is taken falls back to the instance id, with a warning; compute nodes without a Slurm node name are
    listed in verbose output, per cluster.
    """
    login_names = login_node_names(records) if NODE_NAME_SOURCE in hostnames else {}
    names, used, unnamed = {}, set(), {}

    def taken(name):
        return name in used or exists(name)

    for record in records:
        instance_id = record["instance_id"]
        name = preferred_name(record, hostnames, address_sources, login_names, taken) or instance_id
        if taken(name):
            display.warning("hpc.pcluster.nodes: host name %r of %s is already used; naming it %s"
                            % (name, instance_id, instance_id))
            name = instance_id
        if (NODE_NAME_SOURCE in hostnames and record["tags"].get(NODE_TYPE_TAG) == "Compute"
                and not record.get("slurm_node_name")):
            unnamed.setdefault((record["aws_region"], record["tags"].get(CLUSTER_TAG, "")), []).append(name)
        used.add(name)
        names[instance_id] = name
    for (region, cluster), hosts in sorted(unnamed.items()):
        display.v("hpc.pcluster.nodes: %s: %d compute node(s) of cluster %s are not in its node table %s (yet), so "
                  "they have no Slurm node name; named %s"
                  % (region, len(hosts), cluster, slurm_table_name(cluster), ", ".join(sorted(hosts))))
    return names
