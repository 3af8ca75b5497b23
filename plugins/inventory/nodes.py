# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: nodes
version_added: 0.1.0
short_description: AWS ParallelCluster head, login and compute nodes as Ansible hosts
description:
  - Lists the EC2 instances of AWS ParallelCluster 3 clusters, found from the tags ParallelCluster puts on
    them (C(parallelcluster:cluster-name), C(parallelcluster:node-type), C(parallelcluster:queue-name),
    C(parallelcluster:compute-resource-name), C(parallelcluster:attributes), C(parallelcluster:version)).
  - Makes one paginated C(DescribeInstances) call per region, filtered server side on those tags and on the
    instance state (only V(pending) and V(running) instances). No per-host call is made.
  - The configuration file name must end in C(pcluster_nodes.yml) or C(pcluster_nodes.yaml).
  - "Groups: V(pcluster) (every node), one group per cluster (V(<cluster>)), one per node type
    (V(head_node), V(login_node), V(compute)) and per cluster and node type (V(<cluster>_head_node),
    V(<cluster>_login_node), V(<cluster>_compute)), one per queue (V(<cluster>_queue_<queue>)), one per
    compute resource (V(<cluster>_queue_<queue>_<compute resource>)) and one per login node pool
    (V(<cluster>_login_pool_<pool>)). Every character that is not a letter, a digit or V(_) becomes V(_)."
  - "Host variables: V(instance_id), V(instance_type), V(image_id), V(private_ip_address),
    V(public_ip_address) (when the instance has one), V(private_dns_name), V(public_dns_name) (when set),
    V(availability_zone), V(instance_state), V(launch_time), V(aws_region), V(aws_account_id) (the account that
    owns the instance; roles C(hpc.pcluster.docker) and C(hpc.pcluster.enroot) name the cluster's ECR registry from it),
    V(pcluster_node_cluster_name), V(pcluster_node_type) (V(HeadNode), V(LoginNode) or V(Compute)),
    V(pcluster_node_queue) and V(pcluster_node_compute_resource) (compute nodes), V(pcluster_node_login_pool)
    (login nodes), V(pcluster_node_version), V(pcluster_node_os), V(pcluster_node_slurm_name) (compute nodes the
    cluster's node table knows), V(pcluster_node_connect_command) (head and login nodes: the C(ssh) command line
    with the user, key and known_hosts the inventory uses, or C(aws ssm start-session) with O(use_ssm)) and the
    connection variables V(ansible_host), V(ansible_user), V(ansible_ssh_common_args) (or the Session Manager
    ones with O(use_ssm))."
  - "Only the head node ParallelCluster created is trusted: an instance tagged
    C(parallelcluster:node-type=HeadNode) is listed as a cluster's head node, and used as the jump host of the
    cluster's other nodes, only when CloudFormation launched it as the C(HeadNode) resource of the cluster's
    stack, that is when its C(aws:cloudformation:stack-name) tag names the cluster and its
    C(aws:cloudformation:logical-id) tag is C(HeadNode). Tags starting with C(aws:) are set by AWS and cannot be
    set by users, so an instance that someone merely tagged as a head node is left out, with a warning."
  - "Values that come from AWS (tags, addresses, node names) are data, never templates: Ansible does not
    evaluate C({{ }}) in them."
  - "With O(use_ssm), the AWS Session Manager plugin (C(session-manager-plugin)) must be on the controller
    (E(AWS_SESSION_MANAGER_PLUGIN), C(/usr/local/bin) or E(PATH), where M(amazon.aws.aws_ssm) looks for it);
    without it each node gets V(pcluster_node_connection_problem), a message naming it, which
    C(hpc.pcluster.deploy) and C(hpc.pcluster.verify) stop on before they connect."
  - V(ansible_user) comes from the cluster's operating system (V(ubuntu) on Ubuntu, V(ec2-user) on Amazon Linux
    and RHEL, V(rocky) on Rocky Linux), read from the C(parallelcluster:attributes) instance tag that
    ParallelCluster writes (C(<os>, <scheduler>, <version>, <architecture>)), the same source C(pcluster ssh)
    uses. Only when no instance of a cluster carries that tag is the AMI looked up, with one
    C(DescribeImages) call per region. O(remote_user) overrides it.
  - "The instance tags are available as V(ec2_tags) (a dict) to O(compose), O(groups) and O(keyed_groups) but are
    not stored as a host variable, which keeps the inventory of a 1000-node cluster small; add
    C(ec2_tags: ec2_tags) to O(compose) to keep them."
author:
  - hpc.pcluster contributors (@hpc-pcluster)
requirements:
  - boto3
  - botocore
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks the file as a configuration for this plugin.
    required: true
    type: str
    choices: [hpc.pcluster.nodes]
  regions:
    description:
      - The regions to list cluster nodes in. Every region is queried in parallel.
      - When empty, the region comes from E(AWS_REGION), E(AWS_DEFAULT_REGION) or the region of O(profile);
        without any of them the plugin stops with an error naming this option.
    type: list
    elements: str
    default: []
  profile:
    description: The AWS profile (from C(~/.aws/config) and C(~/.aws/credentials)) to use.
    type: str
    aliases: [aws_profile]
    env:
      - name: AWS_PROFILE
      - name: AWS_DEFAULT_PROFILE
  endpoint_url:
    description:
      - URL of the EC2 API to use instead of the public one, for example a VPC endpoint or a local AWS stand-in.
    type: str
    aliases: [aws_endpoint_url]
    env:
      - name: AWS_ENDPOINT_URL
  clusters:
    description: Names of the clusters to list. Empty (the default) lists every ParallelCluster cluster.
    type: list
    elements: str
    default: []
  node_types:
    description: ParallelCluster node types to list, any of V(HeadNode), V(LoginNode) and V(Compute).
    type: list
    elements: str
    default: [HeadNode, LoginNode, Compute]
  hostnames:
    description:
      - Ordered preference for the inventory host name; the first source that has a value for an instance wins.
      - Each entry is one of V(node-name), V(instance-id), V(private-ip-address), V(public-ip-address),
        V(private-dns-name), V(public-dns-name), V(dns-name) (the public DNS name) or V(tag:<key>) (the value of
        that tag).
      - "V(node-name) (the default) is the name people know the node by: a compute node's Slurm node name
        (C(compute-gpu-st-distributed-ml-1), as C(sinfo) shows it), read from the cluster's node table
        C(parallelcluster-slurm-<cluster>) in DynamoDB where ParallelCluster records which instance backs which
        Slurm node (one paginated C(Scan) per cluster; without C(dynamodb:Scan), which ParallelCluster's documented
        user policies do not grant, one C(Query) of the table's C(InstanceId) index per compute instance, as the
        compute nodes themselves do; cached with the rest of the inventory); V(<cluster>-head)
        for the head node; V(<cluster>-<pool>-<instance id>) for login nodes (V(<cluster>-login-<instance id>)
        without a pool tag), the same for a node all its life, whatever happens to the others of its pool. When
        two listed clusters have compute nodes of the same name, the later cluster's are named
        V(<cluster>-<node name>)."
      - A compute instance the node table does not hold (yet) has no V(node-name); the next entry, else its
        instance id, names it, and the plugin says so in its verbose (C(-v)) output.
      - When none of them has a value, or the name is already taken by another instance, the instance id is used.
      - Without V(node-name) in the list the node table is not read.
    type: list
    elements: str
    default: [node-name]
  address_preference:
    description:
      - Ordered preference for the address Ansible connects to (V(ansible_host)).
      - Each entry is one of V(public-ip-address), V(private-ip-address), V(public-dns-name) or V(private-dns-name).
      - A node other than the head node whose chosen address is private is reached through its cluster's
        head node when O(proxy_jump) is true.
    type: list
    elements: str
    default: [public-ip-address, private-ip-address]
  remote_user:
    description:
      - V(ansible_user) for every node, instead of the default user of the cluster's operating system.
    type: str
  ssh_common_args:
    description:
      - Extra SSH arguments (one string, shell quoting allowed) set as V(ansible_ssh_common_args) on every host
        and also given to the SSH hop through the head node, for example
        C(-o UserKnownHostsFile=/path/known_hosts -o StrictHostKeyChecking=yes -i /path/key).
      - Put known_hosts and key options here rather than in group variables, since the jump hop cannot see those.
    type: str
    default: ''
  proxy_jump:
    description:
      - Reach nodes without a directly reachable address (see O(address_preference)) through their cluster's head
        node, with C(ProxyCommand=ssh <ssh_common_args> -W %h:%p <user>@<head node>) in V(ansible_ssh_common_args).
      - The head node itself is always reached directly.
    type: bool
    default: true
  use_ssm:
    description:
      - Reach every node through AWS Systems Manager Session Manager (the M(amazon.aws.aws_ssm) connection)
        instead of SSH; sets V(ansible_connection), V(ansible_aws_ssm_instance_id), V(ansible_aws_ssm_region)
        and, when given, V(ansible_aws_ssm_bucket_name), V(ansible_aws_ssm_profile) and
        V(ansible_aws_ssm_endpoint_url).
    type: bool
    default: false
  ssm_bucket_name:
    description: S3 bucket the M(amazon.aws.aws_ssm) connection uses to transfer files (V(ansible_aws_ssm_bucket_name)).
    type: str
"""

EXAMPLES = r"""
# pcluster_nodes.yml: every ParallelCluster node in one region; the head node at its public IP, the others through it.
plugin: hpc.pcluster.nodes
regions:
  - us-east-1

---
# Only the head and login nodes of one cluster, named by private IP, with pinned host keys,
# and cached for an hour in a JSON file.
plugin: hpc.pcluster.nodes
regions: [us-east-1, us-west-2]
clusters: [ml-training-cluster]
node_types: [HeadNode, LoginNode]
hostnames: [private-ip-address, instance-id]
ssh_common_args: >-
  -o UserKnownHostsFile=~/.ssh/pcluster_known_hosts -o StrictHostKeyChecking=yes
  -i ~/.ssh/pcluster.pem
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible/pcluster_nodes
cache_timeout: 3600

---
# Session Manager instead of SSH (head nodes without a public address).
plugin: hpc.pcluster.nodes
regions: [eu-west-1]
use_ssm: true
ssm_bucket_name: my-ssm-transfer-bucket

---
# Extra groups from the standard constructed options.
plugin: hpc.pcluster.nodes
regions: [us-east-1]
keyed_groups:
  - key: instance_type
    prefix: type
groups:
  gpu: instance_type.startswith('g') or instance_type.startswith('p')
compose:
  ansible_python_interpreter: "'/usr/bin/python3'"
"""

import concurrent.futures

from ansible.errors import AnsibleError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.os_table import IMAGE_NAME_PART_OS, OS_DEFAULT_USER
from ansible_collections.hpc.pcluster.plugins.plugin_utils.ec2_instances import (
    aws_error,
    boto3_session,
    describe_instance_records,
    regional_clients,
)
from ansible_collections.hpc.pcluster.plugins.plugin_utils.inventory_options import (
    ADDRESS_SOURCES,
    NODE_TYPES,
    PRIVATE_SOURCES,
    InventoryOptions,
)
from ansible_collections.hpc.pcluster.plugins.plugin_utils.node_connection import (
    proxy_command_args,
    ssh_command,
    ssm_command,
    ssm_plugin_problem,
)
from ansible_collections.hpc.pcluster.plugins.plugin_utils.node_groups import NODE_TYPE_GROUPS, host_groups
from ansible_collections.hpc.pcluster.plugins.plugin_utils.node_names import assign_host_names
from ansible_collections.hpc.pcluster.plugins.plugin_utils.node_names import read_slurm_node_names
from ansible_collections.hpc.pcluster.plugins.plugin_utils.pcluster_tags import (
    ATTRIBUTES_TAG,
    CLUSTER_TAG,
    COMPUTE_RESOURCE_TAG,
    LOGIN_POOL_TAG,
    NODE_TYPE_TAG,
    QUEUE_TAG,
    VERSION_TAG,
    untrusted_head_node_reason,
)

IMAGE_OS_TAG = "parallelcluster:os"
LISTED_STATES = ("pending", "running")


def os_from_attributes(value):
    """OS from a parallelcluster:attributes tag: '<os>, <scheduler>, <version>, <architecture>'."""
    if not value:
        return None
    os_name = value.split(",")[0].strip()
    return os_name or None


def os_from_image(image):
    """OS of a ParallelCluster AMI (a DescribeImages entry): its parallelcluster:os tag, else its name."""
    for tag in image.get("Tags") or ():
        if tag.get("Key") == IMAGE_OS_TAG and tag.get("Value"):
            return tag["Value"]
    name = image.get("Name") or ""
    for part, os_name in IMAGE_NAME_PART_OS.items():
        if "-%s-" % part in name:
            return os_name
    return None


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "hpc.pcluster.nodes"

    def verify_file(self, path):
        if not super().verify_file(path):
            return False
        return path.endswith(("pcluster_nodes.yml", "pcluster_nodes.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        self._settings = InventoryOptions(self.get_option)
        self._settings.check()

        regions = self._settings.regions(self._session)
        query = self._settings.query_fingerprint(regions)
        cache_key = self.get_cache_key(path)

        use_cache = self.get_option("cache")
        records = None
        if use_cache and cache:
            try:
                cached = self._cache[cache_key]
            except KeyError:
                cached = None
            if isinstance(cached, dict) and cached.get("query") == query:
                records = cached["records"]
        if records is None:
            records = self._fetch(regions)
            if use_cache:
                self._cache[cache_key] = {"query": query, "records": records}

        self._populate(records)

    # -- AWS -----------------------------------------------------------------------------------------

    def _session(self):
        if getattr(self, "_boto_session", None) is None:
            self._boto_session = boto3_session(self._settings.plain("profile"))
        return self._boto_session

    def _fetch(self, regions):
        """Cluster node records of every region, with their OS and, when wanted, their Slurm node names."""
        session = self._session()
        endpoint_url = self._settings.plain("endpoint_url")
        clients = regional_clients(session, "ec2", regions, endpoint_url, self._settings.plain("profile"))
        node_tables = regional_clients(session, "dynamodb", regions, endpoint_url) if self._settings.wants_node_names() else {}

        # Only the filters that narrow the result: each tag filter costs the service time per instance.
        filters = [{"Name": "instance-state-name", "Values": list(LISTED_STATES)}]
        clusters = self._settings.plain("clusters")
        if clusters:
            filters.append({"Name": "tag:" + CLUSTER_TAG, "Values": list(clusters)})
        else:
            filters.append({"Name": "tag-key", "Values": [CLUSTER_TAG]})
        node_types = self._settings.queried_node_types()
        if node_types != set(NODE_TYPES):
            filters.append({"Name": "tag:" + NODE_TYPE_TAG, "Values": sorted(node_types)})

        records, problems = [], []
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(regions))) as pool:
            futures = {pool.submit(self._fetch_region, clients[r], r, filters, node_tables.get(r)): r for r in regions}
            for future in concurrent.futures.as_completed(futures):
                region = futures[future]
                try:
                    records.extend(future.result())
                except AnsibleError as e:
                    problems.append("%s: %s" % (region, e))
        if problems:
            raise AnsibleError("hpc.pcluster.nodes: listing cluster nodes failed:\n  - " + "\n  - ".join(sorted(problems)))
        records.sort(key=lambda r: (r["aws_region"], r["tags"].get(CLUSTER_TAG, ""), r["instance_id"]))
        return records

    def _fetch_region(self, client, region, filters, node_table_client=None):
        import botocore.exceptions

        try:
            records = describe_instance_records(client, region, filters)
            self._resolve_os(client, records)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            raise aws_error(e, "ec2:DescribeInstances and ec2:DescribeImages")
        if node_table_client is not None:
            read_slurm_node_names(node_table_client, region, records, self.display)
        return records

    def _resolve_os(self, client, records):
        """Set pcluster_os on every record: from the cluster's attributes tag, else from its AMI (one call)."""
        os_by_cluster = {}
        for record in records:
            cluster = record["tags"].get(CLUSTER_TAG, "")
            found = os_from_attributes(record["tags"].get(ATTRIBUTES_TAG))
            if found and (cluster not in os_by_cluster or record["tags"].get(NODE_TYPE_TAG) == "HeadNode"):
                os_by_cluster[cluster] = found
        unknown = [r for r in records if r["tags"].get(CLUSTER_TAG, "") not in os_by_cluster]
        image_ids = sorted({r["image_id"] for r in unknown if r.get("image_id")})
        os_by_image = {}
        if image_ids:
            import botocore.exceptions

            try:
                images = client.describe_images(ImageIds=image_ids).get("Images", [])
            except botocore.exceptions.ClientError as e:
                # Deregistered or private AMIs: the OS stays unknown and ansible_user unset.
                self.display.vvv("hpc.pcluster.nodes: DescribeImages failed: %s" % e)
                images = []
            os_by_image = {image["ImageId"]: os_from_image(image) for image in images}
        for record in records:
            cluster = record["tags"].get(CLUSTER_TAG, "")
            record["pcluster_os"] = os_by_cluster.get(cluster) or os_by_image.get(record.get("image_id"))

    # -- inventory -----------------------------------------------------------------------------------

    def _populate(self, records):
        listed_types = set(self._settings.plain("node_types"))
        hostnames = self._settings.plain("hostnames")
        preference = self._settings.plain("address_preference")
        common_args = (self._settings.plain("ssh_common_args") or "").strip()
        remote_user = self._settings.plain("remote_user")
        use_ssm = self.get_option("use_ssm")
        proxy_jump = self.get_option("proxy_jump") and not use_ssm
        strict = self.get_option("strict")
        compose = self.get_option("compose")
        groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")
        self._ssm_problem = ssm_plugin_problem() if use_ssm else None
        if self._ssm_problem:
            self.display.warning("hpc.pcluster.nodes: " + self._ssm_problem)

        records = [record for record in records if self._genuine(record)]
        # Head node of each (region, cluster): the jump host of its cluster's other nodes.
        heads = {}
        for record in records:
            if record["tags"].get(NODE_TYPE_TAG) == "HeadNode":
                key = (record["aws_region"], record["tags"].get(CLUSTER_TAG))
                if key not in heads or record["instance_state"] == "running":
                    heads[key] = record

        self.inventory.add_group("pcluster")
        for group in NODE_TYPE_GROUPS.values():
            self.inventory.add_group(group)

        listed = [record for record in records if record["tags"].get(NODE_TYPE_TAG) in listed_types]
        names = assign_host_names(listed, hostnames, ADDRESS_SOURCES,
                                  lambda name: self.inventory.get_host(name) is not None, self.display)
        for record in listed:
            tags = record["tags"]
            node_type = tags.get(NODE_TYPE_TAG)
            cluster = tags.get(CLUSTER_TAG, "")
            name = names[record["instance_id"]]
            hostvars = self._host_vars(record, preference, common_args, remote_user, use_ssm, proxy_jump, heads)
            node_groups = host_groups(cluster, node_type, queue=tags.get(QUEUE_TAG),
                                      compute_resource=tags.get(COMPUTE_RESOURCE_TAG), login_pool=tags.get(LOGIN_POOL_TAG))
            self.inventory.add_host(name, group="pcluster")
            for group in node_groups:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            for var, value in hostvars.items():
                self.inventory.set_variable(name, var, value)

            if compose or groups or keyed_groups:
                # The tags are offered to the templates without being stored on every host (the inventory of a
                # large cluster stays small); compose "ec2_tags: ec2_tags" keeps them as a host variable.
                variables = dict(hostvars, ec2_tags=tags)
                self._set_composite_vars(compose, variables, name, strict=strict)
                self._add_host_to_composed_groups(groups, variables, name, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, variables, name, strict=strict)

    def _genuine(self, record):
        """False for an instance tagged as a head node that its cluster's CloudFormation stack did not launch."""
        if record["tags"].get(NODE_TYPE_TAG) != "HeadNode":
            return True
        reason = untrusted_head_node_reason(record["tags"])
        if reason is None:
            return True
        self.display.warning(
            "hpc.pcluster.nodes: %s (%s) is tagged as the head node of cluster %s, but the cluster's CloudFormation "
            "stack did not launch it (%s): it is left out of the inventory and not used to reach the cluster's nodes"
            % (record["instance_id"], record["aws_region"], record["tags"].get(CLUSTER_TAG), reason)
        )
        return False

    @staticmethod
    def _address(record, preference):
        for entry in preference:
            value = record.get(ADDRESS_SOURCES[entry])
            if value:
                return entry, value
        return None, None

    def _login_user(self, record, remote_user):
        if remote_user:
            return remote_user
        return OS_DEFAULT_USER.get(record.get("pcluster_os") or "")

    def _host_vars(self, record, preference, common_args, remote_user, use_ssm, proxy_jump, heads):
        tags = record["tags"]
        node_type = tags.get(NODE_TYPE_TAG)
        hostvars = {
            "instance_id": record["instance_id"],
            "instance_type": record["instance_type"],
            "image_id": record["image_id"],
            "private_ip_address": record["private_ip_address"],
            "private_dns_name": record["private_dns_name"],
            "availability_zone": record["availability_zone"],
            "instance_state": record["instance_state"],
            "aws_region": record["aws_region"],
            "pcluster_node_cluster_name": tags.get(CLUSTER_TAG),
            "pcluster_node_type": node_type,
            "pcluster_node_version": tags.get(VERSION_TAG),
            "pcluster_node_os": record.get("pcluster_os"),
        }
        for optional in ("public_ip_address", "public_dns_name", "launch_time", "aws_account_id"):
            if record.get(optional):
                hostvars[optional] = record[optional]
        if node_type == "Compute":
            hostvars["pcluster_node_queue"] = tags.get(QUEUE_TAG)
            hostvars["pcluster_node_compute_resource"] = tags.get(COMPUTE_RESOURCE_TAG)
            if record.get("slurm_node_name"):
                hostvars["pcluster_node_slurm_name"] = record["slurm_node_name"]
        elif node_type == "LoginNode":
            hostvars["pcluster_node_login_pool"] = tags.get(LOGIN_POOL_TAG)

        source, address = self._address(record, preference)
        if address:
            hostvars["ansible_host"] = address
        user = self._login_user(record, remote_user)
        if user:
            hostvars["ansible_user"] = user

        if use_ssm:
            hostvars.update(self._ssm_vars(record, node_type))
        else:
            hostvars.update(self._ssh_vars(record, preference, common_args, remote_user, proxy_jump, heads,
                                           source, user, address))
        return hostvars

    def _ssm_vars(self, record, node_type):
        """Connection variables of a node reached through Session Manager."""
        hostvars = {
            "ansible_connection": "amazon.aws.aws_ssm",
            "ansible_aws_ssm_instance_id": record["instance_id"],
            "ansible_aws_ssm_region": record["aws_region"],
        }
        for var, option in (
            ("ansible_aws_ssm_bucket_name", "ssm_bucket_name"),
            ("ansible_aws_ssm_profile", "profile"),
            ("ansible_aws_ssm_endpoint_url", "endpoint_url"),
        ):
            if self.get_option(option):
                hostvars[var] = self._settings.plain(option)
        if self._ssm_problem:
            hostvars["pcluster_node_connection_problem"] = self._ssm_problem
        if node_type != "Compute":
            hostvars["pcluster_node_connect_command"] = ssm_command(
                record["instance_id"], record["aws_region"], self._settings.plain("profile"), self._settings.plain("endpoint_url"))
        return hostvars

    def _ssh_vars(self, record, preference, common_args, remote_user, proxy_jump, heads, source, user, address):
        """Connection variables of a node reached over ssh: through the head node when its address is private."""
        hostvars = {}
        tags = record["tags"]
        node_type = tags.get(NODE_TYPE_TAG)
        ssh_args = common_args
        if proxy_jump and node_type != "HeadNode" and source in PRIVATE_SOURCES:
            head = heads.get((record["aws_region"], tags.get(CLUSTER_TAG)))
            head_address = self._address(head, preference)[1] if head else None
            if head_address:
                hop = proxy_command_args(common_args, self._login_user(head, remote_user), head_address)
                ssh_args = (common_args + " " + hop).strip()
                hostvars["pcluster_node_jump_host"] = head_address
            else:
                self.display.warning(
                    "hpc.pcluster.nodes: %s (%s, cluster %s) has no running head node with an address to jump "
                    "through; it is listed without a jump" % (record["instance_id"], node_type, tags.get(CLUSTER_TAG))
                )
        if ssh_args:
            hostvars["ansible_ssh_common_args"] = ssh_args
        if node_type != "Compute" and address:
            hostvars["pcluster_node_connect_command"] = ssh_command(ssh_args, user, address)
        return hostvars
