# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the cluster's nodes may reach: IAM policies, S3 buckets and SSH ingress, least privilege by default."""

from __future__ import annotations

import re

from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import (
    format_path,
    problem,
    short_repr,
    value_at,
    variable_for,
    walk,
)
from ansible_collections.hpc.pcluster.plugins.plugin_utils.role_variables import PREFIX, blank

S3_FULL_ACCESS = "arn:aws:iam::aws:policy/AmazonS3FullAccess"
# The workshop guide's full-access policies: only with cluster_config_iam_full_access.
GUIDE_FULL_ACCESS_POLICIES = (
    S3_FULL_ACCESS,
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryFullAccess",
    "arn:aws:iam::aws:policy/AmazonElasticContainerRegistryPublicFullAccess",
)
# What the SSM agent of a node needs to register, so that Session Manager reaches it.
SSM_CORE = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
# Read-only ECR access, which the guide's full-access policy includes.
ECR_READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
OPEN_TO_THE_WORLD = ("0.0.0.0/0", "::/0")
# Keys of a cluster_config_s3_access entry (the argument spec takes a bucket name or a mapping: raw).
S3_ACCESS_KEYS = {"bucket_name": "BucketName", "key_name": "KeyName", "enable_write_access": "EnableWriteAccess"}
_RAW_GITHUB_REF = re.compile(r"^https://raw\.githubusercontent\.com/[^/]+/[^/]+/([^/]+)/")


def policies(arns, full_access=False):
    """AdditionalIamPolicies from policy ARNs (duplicates dropped), plus the guide's full-access ones when asked
    (which replace the read-only ECR policy they include)."""
    result = []
    for arn in list(arns or []) + (list(GUIDE_FULL_ACCESS_POLICIES) if full_access else []):
        arn = arn.get("Policy") if isinstance(arn, dict) else arn
        if full_access and arn == ECR_READ_ONLY:
            continue
        if arn not in [entry["Policy"] for entry in result]:
            result.append({"Policy": arn})
    return result


def s3_access(variables, entries, variable):
    """S3Access entries from bucket names or {bucket_name, key_name, enable_write_access} mappings."""
    result = []
    for index, entry in enumerate(entries or []):
        where = "%s[%d]" % (variable, index)
        if isinstance(entry, str):
            entry = {"bucket_name": entry}
        if not isinstance(entry, dict):
            variables.problems.append(problem("", short_repr(entry), "%s must be a bucket name or a mapping" % where,
                                              "Use 'my-bucket' or {bucket_name: my-bucket, enable_write_access: "
                                              "true}.", where))
            continue
        settings = variables.item(entry, where, {"bucket_name": {"type": "str"}, "key_name": {"type": "str"},
                                                 "enable_write_access": {"type": "bool"}})
        access = {S3_ACCESS_KEYS[key]: value for key, value in settings.items() if not blank(value)}
        if blank(settings.get("bucket_name")):
            variables.problems.append(problem("", None, "%s.bucket_name is required" % where,
                                              "Set %s.bucket_name." % where, where))
        result.append(access)
    return result


def iam(arns, buckets, full_access=False):
    """The Iam section of a head node or queue."""
    section = {"AdditionalIamPolicies": policies(arns, full_access)}
    if buckets:
        section["S3Access"] = list(buckets)
    return section


def script_bucket(url):
    """The bucket of an s3:// URL, else None."""
    if isinstance(url, str) and url.startswith("s3://"):
        return url[len("s3://"):].split("/", 1)[0] or None
    return None


def _node_sections(config, login_pools=False):
    """(path, section) of the head node, every queue and, with login_pools, every login node pool."""
    found = [(("HeadNode",), config.get("HeadNode"))]
    for index, queue in enumerate(value_at(config, ("Scheduling", "SlurmQueues")) or []):
        found.append((("Scheduling", "SlurmQueues", index), queue))
    if login_pools:
        for index, pool in enumerate(value_at(config, ("LoginNodes", "Pools")) or []):
            found.append((("LoginNodes", "Pools", index), pool))
    return [(path, section) for path, section in found if isinstance(section, dict)]


def add_script_buckets(config, sources):
    """Grant each node read access to the buckets of its own s3:// custom action scripts.

    The entries are added to the node's S3Access (after the buckets the user named) unless a
    whole-bucket entry is there already, the node has AmazonS3FullAccess, or it uses its own
    instance role or profile (ParallelCluster then takes no S3Access).
    """
    for base, section in _node_sections(config):
        iam_section = section.setdefault("Iam", {})
        if not isinstance(iam_section, dict) or iam_section.get("InstanceRole") or iam_section.get("InstanceProfile"):
            continue
        if S3_FULL_ACCESS in [p.get("Policy") for p in iam_section.get("AdditionalIamPolicies") or []
                              if isinstance(p, dict)]:
            continue
        access = iam_section.setdefault("S3Access", [])
        for path, key, url in walk(section.get("CustomActions") or {}, base + ("CustomActions",)):
            bucket = script_bucket(url) if key is None and path[-1] == "Script" else None
            covered = [a.get("BucketName") for a in access if isinstance(a, dict) and not a.get("KeyName")]
            if bucket and bucket not in covered:
                sources.add(base + ("Iam", "S3Access", len(access)), variable_for(format_path(path), sources.paths))
                access.append({"BucketName": bucket})
        if not access:
            del iam_section["S3Access"]


def _required_and_not_set(variables, name, path, why, fix):
    """A problem for the required cluster_config_<name> left empty: why it is needed and how to choose its value."""
    variables.problems.append(problem(path, variables.get(name), "%s%s is required and not set: %s" % (PREFIX, name, why),
                                      fix, PREFIX + name))


def ssh_allowed_ips(variables, path):
    """HeadNode.Ssh.AllowedIps: required, never ParallelCluster's default of 0.0.0.0/0 by omission."""
    value = variables.get("ssh_allowed_ips")
    if blank(value):
        _required_and_not_set(
            variables, "ssh_allowed_ips", path,
            "left out, ParallelCluster opens the head node's SSH port to the whole internet (0.0.0.0/0)",
            "Set %sssh_allowed_ips to who may reach SSH: your address (e.g. 203.0.113.7/32), the VPC's CIDR "
            "(e.g. 10.0.0.0/16: over a VPN or bastion, or with Session Manager (use_ssm), which needs no SSH "
            "ingress from outside), or a managed prefix list (pl-...). '0.0.0.0/0' opens it to the world, as the "
            "guide does." % PREFIX)
        return None
    return value


def ssh_key_name(variables, path, policies_path):
    """HeadNode.Ssh.KeyName: required unless the nodes are reached through Session Manager (use_ssm), which then
    needs the SSM policy on the nodes."""
    value = variables.get("ssh_key_name")
    if variables.get("use_ssm"):
        arns = list(variables.get("iam_policies") or []) + list(variables.get("extra_iam_policies") or [])
        if SSM_CORE not in [arn.get("Policy") if isinstance(arn, dict) else arn for arn in arns]:
            variables.problems.append(problem(
                policies_path, arns, "%suse_ssm is true, but the nodes do not get %s: their SSM agent cannot register, "
                "so Session Manager cannot reach them" % (PREFIX, SSM_CORE),
                "Add %s to %siam_policies (it is in the default), or set %suse_ssm: false and a key pair in "
                "%sssh_key_name." % (SSM_CORE, PREFIX, PREFIX, PREFIX), PREFIX + "iam_policies"))
        return None if blank(value) else value
    if blank(value):
        _required_and_not_set(
            variables, "ssh_key_name", path,
            "without an EC2 key pair nobody can log in to the head node, and the inventory's SSH connections to the "
            "nodes fail",
            "Set %sssh_key_name to a key pair of the cluster's region - ed25519 on Ubuntu, where ParallelCluster "
            "refuses RSA key pairs (aws ec2 create-key-pair --key-type ed25519 --key-name pcluster --query KeyMaterial "
            "--output text > ~/.ssh/pcluster.pem) - or set %suse_ssm: true to reach the nodes through Session "
            "Manager only (use_ssm: true in the inventory's pcluster_nodes.yml)." % (PREFIX, PREFIX))
        return None
    return value


def warnings(config, variables):
    """What the play output warns about: access the user chose to open wider than the defaults."""
    found = []
    wide, where = {}, {}  # insertion-ordered sets
    for base, section in _node_sections(config, login_pools=True):
        for item in value_at(section, ("Iam", "AdditionalIamPolicies")) or []:
            arn = item.get("Policy") if isinstance(item, dict) else None
            if arn in GUIDE_FULL_ACCESS_POLICIES:
                wide[arn.rsplit("/", 1)[-1]] = True
                where[format_path(base)] = True
    if wide:
        found.append("%s get %s: any user who can run a job can use them through the instance role (for example "
                     "to overwrite the bootstrap scripts in S3). Set %siam_full_access: false and name the buckets "
                     "the jobs need in %ss3_access instead." % (", ".join(where), ", ".join(wide), PREFIX, PREFIX))
    allowed = value_at(config, ("HeadNode", "Ssh", "AllowedIps"))
    if allowed in OPEN_TO_THE_WORLD:
        found.append("The head node's SSH port is open to the whole internet (%sssh_allowed_ips: %s)."
                     % (PREFIX, allowed))
    ref = _RAW_GITHUB_REF.match(variables.get("docker_postinstall_url") or "")
    if variables.get("docker_postinstall_enabled") and ref and not re.match(r"^[0-9a-f]{40}$", ref.group(1)):
        found.append("%sdocker_postinstall_url runs the script of '%s' as root at every node's boot: whatever that "
                     "ref holds then. Pin a commit (as the default does)." % (PREFIX, ref.group(1)))
    return found
