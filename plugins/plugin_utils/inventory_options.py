# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of the hpc.pcluster.nodes inventory: every problem at once, their values as plain data, and what they
make the plugin ask AWS for (regions, node types, the query a cached result must match)."""

from __future__ import annotations

import os
import shlex

from ansible.errors import AnsibleError

from ansible_collections.hpc.pcluster.plugins.module_utils.plain_data import to_plain
from ansible_collections.hpc.pcluster.plugins.plugin_utils.node_names import NODE_NAME_SOURCE

NODE_TYPES = ("HeadNode", "LoginNode", "Compute")

# Record field that each hostnames / address_preference source reads.
ADDRESS_SOURCES = {
    "instance-id": "instance_id",
    "private-ip-address": "private_ip_address",
    "public-ip-address": "public_ip_address",
    "private-dns-name": "private_dns_name",
    "public-dns-name": "public_dns_name",
    "dns-name": "public_dns_name",
}
CONNECT_SOURCES = ("public-ip-address", "private-ip-address", "public-dns-name", "private-dns-name")
PRIVATE_SOURCES = ("private-ip-address", "private-dns-name")

# Bumped whenever the cached record layout changes, so an old cache is refetched instead of misread.
CACHE_FORMAT = 2


def list_problems(get_option):
    """A problem for each entry of hostnames, address_preference and node_types that is not one of their choices."""
    problems = []
    for entry in get_option("hostnames"):
        if entry != NODE_NAME_SOURCE and entry not in ADDRESS_SOURCES and not (
                isinstance(entry, str) and entry.startswith("tag:") and entry[4:]):
            problems.append("hostnames: %r is not one of %s or tag:<key>"
                            % (entry, ", ".join([NODE_NAME_SOURCE] + sorted(ADDRESS_SOURCES))))
    preference = get_option("address_preference")
    if not preference:
        problems.append("address_preference: give at least one of %s" % ", ".join(CONNECT_SOURCES))
    problems += ["address_preference: %r is not one of %s" % (entry, ", ".join(CONNECT_SOURCES))
                 for entry in preference if entry not in CONNECT_SOURCES]
    node_types = get_option("node_types")
    if not node_types:
        problems.append("node_types: give at least one of %s" % ", ".join(NODE_TYPES))
    problems += ["node_types: %r is not one of %s" % (entry, ", ".join(NODE_TYPES))
                 for entry in node_types if entry not in NODE_TYPES]
    return problems


class InventoryOptions:
    """The inventory's options, read through the plugin's get_option."""

    def __init__(self, get_option):
        self.get = get_option

    def plain(self, option):
        """An option's value as plain data (no Ansible data tags), so records and the cache stay small."""
        return to_plain(self.get(option))

    def problems(self):
        problems = list_problems(self.get)
        for option in ("regions", "clusters"):
            problems += ["%s: %r is not a non-empty string" % (option, entry) for entry in self.get(option)
                         if not isinstance(entry, str) or not entry.strip()]
        try:
            shlex.split(self.get("ssh_common_args") or "")
        except ValueError as e:
            problems.append("ssh_common_args: cannot be split like a shell command line (%s)" % e)
        if self.get("ssm_bucket_name") and not self.get("use_ssm"):
            problems.append("ssm_bucket_name: only used with use_ssm: true")
        return problems

    def check(self):
        """Raise one AnsibleError naming every problem of the options."""
        problems = self.problems()
        if problems:
            raise AnsibleError("hpc.pcluster.nodes: invalid inventory options:\n  - " + "\n  - ".join(problems))

    def regions(self, session):
        """The regions option, else the environment's region, else the profile's (session() a boto3 session)."""
        regions = list(dict.fromkeys(self.plain("regions")))
        if regions:
            return regions
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or session().region_name
        if not region:
            raise AnsibleError("hpc.pcluster.nodes: no region: set the 'regions' option in the inventory file, "
                               "or AWS_REGION / AWS_DEFAULT_REGION, or a region for the AWS profile")
        return [region]

    def query_fingerprint(self, regions):
        """Everything that changes what AWS returns; a cached result made with other values is not used."""
        return {
            "format": CACHE_FORMAT,
            "regions": regions,
            "clusters": sorted(self.plain("clusters")),
            "node_types": sorted(self.queried_node_types()),
            "profile": self.plain("profile"),
            "endpoint_url": self.plain("endpoint_url"),
            "node_names": self.wants_node_names(),
        }

    def wants_node_names(self):
        """Whether the Slurm node names are needed: node-name is a host name source and compute nodes are listed."""
        return NODE_NAME_SOURCE in self.plain("hostnames") and "Compute" in self.plain("node_types")

    def queried_node_types(self):
        node_types = set(self.plain("node_types"))
        # Jumping through the head node needs its address even when head nodes are not listed.
        if self.get("proxy_jump") and not self.get("use_ssm"):
            node_types.add("HeadNode")
        return node_types
