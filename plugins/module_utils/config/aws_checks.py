# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of a cluster config against the AWS account: networks and the key pair that must exist, pcluster's dryrun
as problems."""

from __future__ import annotations

import re

from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import (
    format_path,
    parse_path,
    problem,
    value_at,
    walk,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.config.rules import ID_PATTERNS

DRYRUN_LEVELS = ("INFO", "WARNING", "ERROR")
# Operating systems whose ParallelCluster AMI refuses RSA key pairs (pcluster's KeyPairValidator).
NO_RSA_KEY_OS = ("ubuntu2204", "ubuntu2404")
KEY_PAIR_PATH = ("HeadNode", "Ssh", "KeyName")


def referenced_network_ids(config):
    """{"subnet": {id: [paths]}, "security_group": {id: [paths]}} of every subnet and security group in a config."""
    found = {"subnet": {}, "security_group": {}}
    for path, key, value in walk(config):
        if key is not None or not isinstance(value, str) or not path:
            continue
        if path[-1] == "SubnetId" or (len(path) >= 2 and path[-2] == "SubnetIds" and isinstance(path[-1], int)):
            kind = "subnet"
        elif len(path) >= 2 and path[-2] in ("AdditionalSecurityGroups", "SecurityGroups") and isinstance(path[-1], int):
            kind = "security_group"
        else:
            continue
        found[kind].setdefault(value, []).append(format_path(path))
    return found


def missing_network_problems(config, ec2, region=None):
    """Problems for subnets and security groups that do not exist, asked of EC2 with one call per kind.

    ``ec2`` is a boto3 EC2 client. Filters are used instead of ids, so one missing
    id does not hide the others (DescribeSubnets with SubnetIds fails on the first).
    """
    found = referenced_network_ids(config)
    problems = []
    where = " in %s" % region if region else ""
    for kind, operation, filter_name, key, label, noun in (
        ("subnet", "describe_subnets", "subnet-id", "Subnets", "SubnetId", "subnet"),
        ("security_group", "describe_security_groups", "group-id", "SecurityGroups", "GroupId", "security group"),
    ):
        ids = sorted(i for i in found[kind] if re.match(ID_PATTERNS[kind][0], i))
        if not ids:
            continue
        existing = set()
        for page in ec2.get_paginator(operation).paginate(Filters=[{"Name": filter_name, "Values": ids}]):
            existing.update(item[label] for item in page.get(key, []))
        for missing in ids:
            if missing in existing:
                continue
            for path in found[kind][missing]:
                problems.append(problem(path, missing, "The %s %s does not exist%s" % (noun, missing, where),
                                        "Use the id of an existing %s of this account and region." % noun))
    return problems


def key_pair_problems(config, ec2, region=None):
    """The head node's key pair must exist, and be ed25519 where ParallelCluster refuses RSA (Ubuntu 22.04/24.04).

    ``ec2`` is a boto3 EC2 client. Said here, at the config's path, rather than as the dryrun's KeyPairValidator
    message, whose fix would be to suppress the validator: a cluster nobody can log in to.
    """
    name = value_at(config, KEY_PAIR_PATH)
    if not isinstance(name, str) or not name:
        return []
    path, where = format_path(KEY_PAIR_PATH), " in %s" % region if region else ""
    pairs = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}]).get("KeyPairs") or []
    if not pairs:
        return [problem(path, name, "The key pair %s does not exist%s" % (name, where),
                        "Create it (aws ec2 create-key-pair --key-type ed25519 --key-name %s) or import your public "
                        "key (aws ec2 import-key-pair), or name an existing key pair of this region." % name)]
    os_name = value_at(config, ("Image", "Os"))
    if os_name in NO_RSA_KEY_OS and (pairs[0].get("KeyType") or "").lower() == "rsa":
        return [problem(path, name, "The key pair %s is RSA, which ParallelCluster refuses on %s (its KeyPairValidator: "
                        "the AMI's SSH server does not accept RSA keys)" % (name, os_name),
                        "Create an ed25519 key pair (aws ec2 create-key-pair --key-type ed25519 --key-name <name>, or "
                        "import an ed25519 public key) and name it, or choose another Image.Os.")]
    return []


def paths_mentioned(config, message, limit=5):
    """Paths of the config's values that a free-text message names (e.g. pcluster's errors about one id)."""
    found = []
    for path, key, value in walk(config):
        if key is not None or not isinstance(value, str) or len(value) < 4 or not path:
            continue
        if re.search(r"(?<![\w.-])%s(?![\w-])" % re.escape(value), message or ""):
            found.append(format_path(path))
            if len(found) >= limit:
                break
    return found


def dryrun_problems(config, dryrun, failure_level="ERROR"):
    """The problems of a create-cluster dryrun result ({success, message, validation_messages by level}).

    Messages at or above failure_level are problems; a dryrun that stopped before its
    validators (e.g. an unknown instance type) is pointed at the values its message names.
    """
    grouped = dryrun.get("validation_messages") or {}
    blocking = []
    for level in DRYRUN_LEVELS[DRYRUN_LEVELS.index(failure_level):]:
        for message in grouped.get(level) or []:
            validator = message.get("type") or message.get("id") or "pcluster"
            blocking.append(problem(
                "", None, "[%s %s] %s" % (level, validator, message.get("message")),
                "Fix the resource in the AWS account or the config. A validator that cannot work for this account "
                "can be skipped: add 'type:%s' to cluster_config_suppress_validators (the module's "
                "suppress_validators)." % (message.get("type") or "ValidatorName"),
            ))
    if not dryrun.get("success") and not blocking:
        message = "ParallelCluster rejected the config: %s" % dryrun.get("message")
        fix = "Correct the value ParallelCluster names: it was checked against the AWS account and region."
        paths = paths_mentioned(config, dryrun.get("message")) or [""]
        blocking.extend(problem(path, value_at(config, parse_path(path)) if path else None, message, fix)
                        for path in paths)
    return blocking
