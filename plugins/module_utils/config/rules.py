# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's own offline rules for cluster configs, and validate_config that adds pcluster's schema."""

from __future__ import annotations

import re

from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import (
    format_path,
    merge_problems,
    problem,
    short_repr,
    value_at,
    walk,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.config import schema as config_schema
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.os_table import SUPPORTED_OSES

# (regex, human description, example) per kind of identifier. The regexes are
# pcluster 3.16's own where it has one, so nothing pcluster accepts is refused.
ID_PATTERNS = {
    "region": (r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$", "an AWS region name", "us-east-1"),
    "subnet": (r"^subnet-[0-9a-z]{8}$|^subnet-[0-9a-z]{17}$", "a subnet id", "subnet-0123456789abcdef0"),
    "security_group": (r"^sg-[0-9a-z]{8}$|^sg-[0-9a-z]{17}$", "a security group id", "sg-0123456789abcdef0"),
    "fsx_lustre": (r"^fs-[0-9a-z]{17}$", "an FSx for Lustre file system id", "fs-0123456789abcdef0"),
    "fsx_volume": (r"^fsvol-[0-9a-f]{17}$", "an FSx volume id", "fsvol-0123456789abcdef0"),
    "capacity_reservation": (r"^cr-[0-9a-f]{17}$", "an EC2 capacity reservation id", "cr-0123456789abcdef0"),
    "ami": (r"^ami-[0-9a-z]{8}$|^ami-[0-9a-z]{17}$", "an AMI id", "ami-0123456789abcdef0"),
    "instance_type": (r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$", "an EC2 instance type", "g5.8xlarge"),
    "key_name": (r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$", "an EC2 key pair name", "my-key"),
    "iam_policy": (
        r"^arn:aws[a-z-]*:iam::(aws|\d{12}):policy/[\w+=,.@/-]+$",
        "an IAM policy ARN",
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    ),
    "s3_bucket": (r"^[\*a-z0-9.-]{1,63}$", "an S3 bucket name", "my-training-data"),
    "mount_dir": (r"^\/?[^\/.\\][^\/\\]*(\/[^\/.\\][^\/]*)*$", "a directory path", "/fsx"),
    "script_url": (r"^(s3|https)://[^\s]+$", "an s3:// or https:// URL", "s3://my-bucket/on-node-configured.sh"),
    "capacity_reservation_group": (
        r"^arn:aws[a-z-]*:resource-groups:[a-z0-9-]+:\d{12}:group/[\w.-]+$",
        "a resource group ARN",
        "arn:aws:resource-groups:us-east-1:123456789012:group/my-reservations",
    ),
}

CLUSTER_NAME_PATTERN = r"^[a-zA-Z][a-zA-Z0-9-]*$"
CLUSTER_NAME_MAX_LENGTH = 60
CLUSTER_NAME_MAX_LENGTH_ACCOUNTING = 40
# Queue, compute resource and login node pool names (pcluster's NameValidator).
RESOURCE_NAME_PATTERN = r"^[a-z][a-z0-9-]*$"
RESOURCE_NAME_MAX_LENGTH = 25
SHARED_STORAGE_NAME_PATTERN = r"^[\w+\-=._:@/ ]{1,30}$"
TAG_PATTERN = r"^[\w +\-=.:/@]*$"

CAPACITY_TYPES = ("ONDEMAND", "SPOT", "CAPACITY_BLOCK")
# A compute resource's node counts when the config leaves them out (pcluster.constants).
DEFAULT_MIN_COUNT, DEFAULT_MAX_COUNT = 0, 10

# pcluster/validators/slurm_settings_validator.py (3.16), compared case-insensitively.
SLURM_DENY_LIST = {
    "SlurmConf": {
        "Global": (
            "epilog", "grestypes", "launchparameters", "prolog", "reconfigflags", "resumefailprogram",
            "resumeprogram", "resumetimeout", "slurmctldhost", "slurmctldlogfile", "slurmctldparameters",
            "slurmdlogfile", "slurmuser", "suspendexcnodes", "suspendprogram", "suspendtime", "taskplugin",
            "treewidth",
        ),
        "Accounting": (
            "accountingstoragetype", "accountingstoragehost", "accountingstorageport", "accountingstorageuser",
            "jobacctgathertype",
        ),
    },
    "Queue": {"Global": ("nodes", "partitionname", "resumetimeout", "state", "suspendtime", "oversubscribe")},
    "ComputeResource": {"Global": ("cpus", "gres", "nodeaddr", "nodehostname", "nodename", "state", "weight")},
}

_SHELL_VAR = re.compile(r"\$\{[^}]*\}?")
_JINJA = re.compile(r"\{\{|\{%|\{#")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u0085\u2028\u2029]")
# Keys whose value ParallelCluster reads as JSON text: line breaks and tabs there are JSON whitespace, and its own
# full example writes DevSettings.Cookbook.ExtraChefAttributes as a "|" block (JSON plus a line break).
_JSON_TEXT_KEYS = ("ExtraChefAttributes",)
_CONTROL_IN_JSON = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u0085\u2028\u2029]")
_SLURM_LEVEL_OWNER = {"SlurmConf": "ParallelCluster", "Queue": "ParallelCluster for each queue",
                      "ComputeResource": "ParallelCluster for each compute resource"}


def check_id(path, value, kind, problems, what=None):
    """Append a problem when value does not look like an id of this kind."""
    regex, description, example = ID_PATTERNS[kind]
    if isinstance(value, str) and re.match(regex, value):
        return True
    problems.append(problem(path, value, "%s is not %s" % (short_repr(value), what or description),
                            "Use %s, for example %s." % (what or description, example)))
    return False


def _check_optional_id(path, value, kind, problems):
    if value is not None:
        check_id(path, value, kind, problems)


def _markup_problems(text, where, label):
    found = []
    json_text = label == "The value" and bool(where) and where[-1] in _JSON_TEXT_KEYS
    if _SHELL_VAR.search(text):
        found.append(problem(where, text, "%s holds an unsubstituted shell variable (%s)"
                             % (label, _SHELL_VAR.search(text).group(0)),
                             "Give the real value: nothing expands shell variables here (the guide's heredoc did)."))
    if _JINJA.search(text):
        found.append(problem(where, text, "%s holds Jinja2 template markup (%s); it would be written literally"
                             % (label, _JINJA.search(text).group(0)),
                             "Give the final value. Template markup in data is never rendered into the cluster config."))
    if (_CONTROL_IN_JSON if json_text else _CONTROL).search(text):
        what = "control character" if json_text else "line break or control character"
        found.append(problem(where, text, "%s holds a %s" % (label, what),
                             "Use a value without control characters." if json_text else
                             "Use a single-line value without control characters."))
    return found


def _check_markup(config, problems):
    """Leftover shell variables, Jinja2 markup and line breaks, in keys and values."""
    for path, key, value in walk(config):
        if key is not None and isinstance(key, str):
            problems.extend(_markup_problems(key, path + (key,), "The key"))
        elif key is None and isinstance(value, str):
            problems.extend(_markup_problems(value, path, "The value"))


def script_paths(config):
    """(path, value) of every custom action script URL."""
    return [(path, value) for path, key, value in walk(config)
            if key is None and path and path[-1] == "Script" and "CustomActions" in path]


def _security_group_paths(config):
    return [(path, value) for path, key, value in walk(config)
            if key is None and len(path) >= 2 and isinstance(path[-1], int)
            and path[-2] in ("AdditionalSecurityGroups", "SecurityGroups")]


def _check_tags(config, problems):
    """Tag keys and values in every Tags list: AWS's length and character rules."""
    for path, key, value in walk(config):
        if key is not None or len(path) < 3 or path[-3] != "Tags" or path[-1] not in ("Key", "Value"):
            continue
        if "AmiSearchFilters" in path:
            continue  # AMI search filters, not resource tags: wildcards are allowed there
        if not isinstance(value, str) or _SHELL_VAR.search(value) or _JINJA.search(value):
            continue  # reported as leftover markup, more clearly
        if path[-1] == "Key" and (value.lower().startswith("aws:") or value.startswith("parallelcluster:")):
            problems.append(problem(path, value, "The tag key prefix of %s is reserved (aws: and parallelcluster:)"
                                    % short_repr(value), "Use a key without that prefix."))
            continue
        limit = 128 if path[-1] == "Key" else 256
        if len(value) > limit or (path[-1] == "Key" and not value) or not re.match(TAG_PATTERN, value):
            problems.append(problem(path, value,
                                    "Tag %s %s is not allowed: AWS takes at most %d letters, digits, spaces and "
                                    "+ - = . _ : / @" % (path[-1].lower(), short_repr(value), limit),
                                    "Use only those characters."))


def _check_name(path, name, problems, what):
    if not isinstance(name, str):
        return
    if not re.match(RESOURCE_NAME_PATTERN, name):
        problems.append(problem(path, name, "%s name %s must begin with a lowercase letter and hold only lowercase "
                                "letters, digits and hyphens" % (what, short_repr(name)),
                                "Rename it, for example 'compute-gpu'."))
    elif len(name) > RESOURCE_NAME_MAX_LENGTH:
        problems.append(problem(path, name, "%s name %s is longer than %d characters"
                                % (what, short_repr(name), RESOURCE_NAME_MAX_LENGTH), "Use a shorter name."))
    elif name == "default":
        problems.append(problem(path, name, "'default' is reserved as a %s name" % what.lower(), "Use another name."))


def _check_duplicates(items, key, path, problems, what):
    seen = {}
    for index, item in enumerate(items or []):
        name = item.get(key) if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(problem(path + (index, key), name, "%s %s is used twice (also at %s)"
                                    % (what, short_repr(name), format_path(path + (seen[name], key))),
                                    "Give every %s a unique %s." % (what.split(" ")[0].lower(), key)))
        else:
            seen[name] = index


def check_cluster_name(name, problems, path="cluster_name", accounting=False):
    """Append a problem when the cluster name is not one ParallelCluster accepts."""
    limit = CLUSTER_NAME_MAX_LENGTH_ACCOUNTING if accounting else CLUSTER_NAME_MAX_LENGTH
    if not isinstance(name, str) or not re.match(CLUSTER_NAME_PATTERN, name):
        problems.append(problem(path, name, "The cluster name %s may hold only letters, digits and hyphens and must "
                                "start with a letter" % short_repr(name), "Use a name like 'ml-training-cluster'."))
    elif len(name) > limit:
        problems.append(problem(path, name, "The cluster name is %d characters long; the limit is %d%s"
                                % (len(name), limit, " when Slurm accounting is configured" if accounting else ""),
                                "Use a shorter name."))


def _check_custom_slurm_settings(settings, path, level, problems, accounting=False):
    denied = set(SLURM_DENY_LIST[level]["Global"])
    if accounting and level == "SlurmConf":
        denied |= set(SLURM_DENY_LIST["SlurmConf"]["Accounting"])
    entries = []
    if level == "SlurmConf":
        for index, item in enumerate(settings if isinstance(settings, list) else []):
            # Multi-key items define custom nodes or partitions: pcluster does not check them either.
            if isinstance(item, dict) and len(item) == 1:
                entries.extend((path + (index, key), key, value) for key, value in item.items())
    elif isinstance(settings, dict):
        entries = [(path + (key,), key, value) for key, value in settings.items()]
    for where, key, value in entries:
        if isinstance(key, str) and key.lower() in denied:
            problems.append(problem(where, value, "The Slurm setting %s is managed by %s and may not be set in "
                                    "CustomSlurmSettings at %s level" % (key, _SLURM_LEVEL_OWNER[level], level),
                                    "Remove %s from CustomSlurmSettings." % key))


def _check_size(path, value, problems):
    if isinstance(value, bool) or not isinstance(value, int):
        return
    if value <= 0:
        problems.append(problem(path, value, "The size must be a positive number of GiB, not %s" % value,
                                "Use a size greater than 0, or leave it out for the default."))


def _check_iam(iam, path, problems):
    if not isinstance(iam, dict):
        return
    for index, item in enumerate(iam.get("AdditionalIamPolicies") or []):
        if isinstance(item, dict):
            _check_optional_id(path + ("AdditionalIamPolicies", index, "Policy"), item.get("Policy"), "iam_policy",
                               problems)
    for index, item in enumerate(iam.get("S3Access") or []):
        if isinstance(item, dict):
            _check_optional_id(path + ("S3Access", index, "BucketName"), item.get("BucketName"), "s3_bucket", problems)


def _check_reservation(target, path, problems):
    if isinstance(target, dict):
        _check_optional_id(path + ("CapacityReservationId",), target.get("CapacityReservationId"),
                           "capacity_reservation", problems)
        _check_optional_id(path + ("CapacityReservationResourceGroupArn",),
                           target.get("CapacityReservationResourceGroupArn"), "capacity_reservation_group", problems)


def _check_image_and_region(config, problems):
    _check_optional_id(("Region",), config.get("Region"), "region", problems)
    image = config.get("Image")
    if not isinstance(image, dict):
        return
    os_name = image.get("Os")
    if os_name is not None and os_name not in SUPPORTED_OSES:
        problems.append(problem(("Image", "Os"), os_name, "Unknown operating system %s" % short_repr(os_name),
                                "Use one of: %s." % ", ".join(SUPPORTED_OSES)))
    _check_optional_id(("Image", "CustomAmi"), image.get("CustomAmi"), "ami", problems)


def _check_head_node(head, problems):
    if not isinstance(head, dict):
        return
    base = ("HeadNode",)
    _check_optional_id(base + ("InstanceType",), head.get("InstanceType"), "instance_type", problems)
    _check_optional_id(base + ("Networking", "SubnetId"), value_at(head, ("Networking", "SubnetId")), "subnet",
                       problems)
    _check_optional_id(base + ("Ssh", "KeyName"), value_at(head, ("Ssh", "KeyName")), "key_name", problems)
    _check_size(base + ("LocalStorage", "RootVolume", "Size"), value_at(head, ("LocalStorage", "RootVolume", "Size")),
                problems)
    _check_optional_id(base + ("Image", "CustomAmi"), value_at(head, ("Image", "CustomAmi")), "ami", problems)
    _check_iam(head.get("Iam"), base + ("Iam",), problems)


def _check_login_pools(pools, problems):
    if not isinstance(pools, list):
        return
    _check_duplicates(pools, "Name", ("LoginNodes", "Pools"), problems, "Login node pool name")
    for index, pool in enumerate(pools):
        if not isinstance(pool, dict):
            continue
        base = ("LoginNodes", "Pools", index)
        _check_name(base + ("Name",), pool.get("Name"), problems, "Login node pool")
        _check_optional_id(base + ("InstanceType",), pool.get("InstanceType"), "instance_type", problems)
        for sub_index, subnet in enumerate(value_at(pool, ("Networking", "SubnetIds")) or []):
            check_id(base + ("Networking", "SubnetIds", sub_index), subnet, "subnet", problems)


def _check_fsx_lustre(storage, path, problems):
    settings = storage.get("FsxLustreSettings")
    if not isinstance(settings, dict) or settings.get("FileSystemId") is None:
        return
    for key, value in settings.items():
        if key != "FileSystemId":
            problems.append(problem(path + ("FsxLustreSettings", key), value,
                                    "%s cannot be specified when an existing Lustre file system is used "
                                    "(FileSystemId): only FileSystemId is allowed" % key,
                                    "Remove %s: an existing file system keeps its own settings." % key))


def _check_storage(storage, base, problems):
    name = storage.get("Name")
    if isinstance(name, str) and (not re.match(SHARED_STORAGE_NAME_PATTERN, name) or name == "default"):
        problems.append(problem(base + ("Name",), name, "Shared storage name %s is not allowed (at most 30 letters, "
                                "digits, spaces and +-=._:@/, not 'default')" % short_repr(name),
                                "Use a name like 'fsx-lustre'."))
    _check_optional_id(base + ("MountDir",), storage.get("MountDir"), "mount_dir", problems)
    _check_fsx_lustre(storage, base, problems)
    _check_optional_id(base + ("FsxLustreSettings", "FileSystemId"),
                       value_at(storage, ("FsxLustreSettings", "FileSystemId")), "fsx_lustre", problems)
    for settings in ("FsxOpenZfsSettings", "FsxOntapSettings"):
        _check_optional_id(base + (settings, "VolumeId"), value_at(storage, (settings, "VolumeId")), "fsx_volume",
                           problems)
    for path in (("EbsSettings", "Size"), ("FsxLustreSettings", "StorageCapacity")):
        _check_size(base + path, value_at(storage, path), problems)


def _check_shared_storage(storages, problems):
    if not isinstance(storages, list):
        return
    _check_duplicates(storages, "Name", ("SharedStorage",), problems, "Shared storage name")
    _check_duplicates(storages, "MountDir", ("SharedStorage",), problems, "Shared storage mount directory")
    for index, storage in enumerate(storages):
        if isinstance(storage, dict):
            _check_storage(storage, ("SharedStorage", index), problems)


def _check_counts(resource, where, capacity_block, queue_reservation, problems):
    min_count, max_count = resource.get("MinCount"), resource.get("MaxCount")
    counts_are_ints = all(isinstance(c, int) and not isinstance(c, bool) for c in (min_count, max_count))
    if counts_are_ints and min_count > max_count:
        problems.append(problem(where + ("MinCount",), min_count,
                                "MinCount (%d) is greater than MaxCount (%d)" % (min_count, max_count),
                                "Set MinCount <= MaxCount (MinCount nodes are static, the rest dynamic)."))
    if not capacity_block:
        return
    reservation = resource.get("CapacityReservationTarget")
    if not value_at(reservation, ("CapacityReservationId",)) and not value_at(queue_reservation,
                                                                              ("CapacityReservationId",)):
        problems.append(problem(where + ("CapacityReservationTarget",), None,
                                "A CAPACITY_BLOCK queue needs the capacity block's reservation id",
                                "Set CapacityReservationTarget.CapacityReservationId (cr-...)."))
    if counts_are_ints and min_count != max_count:
        problems.append(problem(where + ("MaxCount",), max_count,
                                "With CAPACITY_BLOCK every node is static: MinCount (%d) must equal MaxCount (%d)"
                                % (min_count, max_count),
                                "Set MinCount and MaxCount to the size of the capacity block."))


def _check_compute_resource(resource, where, queue, problems):
    _check_name(where + ("Name",), resource.get("Name"), problems, "Compute resource")
    _check_optional_id(where + ("InstanceType",), resource.get("InstanceType"), "instance_type", problems)
    for index, item in enumerate(resource.get("Instances") or []):
        if isinstance(item, dict):
            _check_optional_id(where + ("Instances", index, "InstanceType"), item.get("InstanceType"),
                               "instance_type", problems)
    _check_counts(resource, where, queue.get("CapacityType") == "CAPACITY_BLOCK",
                  queue.get("CapacityReservationTarget"), problems)
    _check_reservation(resource.get("CapacityReservationTarget"), where + ("CapacityReservationTarget",), problems)
    _check_custom_slurm_settings(resource.get("CustomSlurmSettings"), where + ("CustomSlurmSettings",),
                                 "ComputeResource", problems)


def _check_queue(queue, base, problems):
    _check_name(base + ("Name",), queue.get("Name"), problems, "Queue")
    capacity_type = queue.get("CapacityType")
    if capacity_type is not None and capacity_type not in CAPACITY_TYPES:
        problems.append(problem(base + ("CapacityType",), capacity_type,
                                "Unknown capacity type %s" % short_repr(capacity_type),
                                "Use one of: %s." % ", ".join(CAPACITY_TYPES)))
    for index, subnet in enumerate(value_at(queue, ("Networking", "SubnetIds")) or []):
        check_id(base + ("Networking", "SubnetIds", index), subnet, "subnet", problems)
    root_size = ("ComputeSettings", "LocalStorage", "RootVolume", "Size")
    _check_size(base + root_size, value_at(queue, root_size), problems)
    _check_optional_id(base + ("Image", "CustomAmi"), value_at(queue, ("Image", "CustomAmi")), "ami", problems)
    _check_iam(queue.get("Iam"), base + ("Iam",), problems)
    _check_custom_slurm_settings(queue.get("CustomSlurmSettings"), base + ("CustomSlurmSettings",), "Queue", problems)
    _check_reservation(queue.get("CapacityReservationTarget"), base + ("CapacityReservationTarget",), problems)
    resources = queue.get("ComputeResources")
    if not isinstance(resources, list):
        return
    _check_duplicates(resources, "Name", base + ("ComputeResources",), problems, "Compute resource name")
    for index, resource in enumerate(resources):
        if isinstance(resource, dict):
            _check_compute_resource(resource, base + ("ComputeResources", index), queue, problems)


def _dynamic_compute_resources(queues):
    """Paths of the compute resources with dynamic nodes (MinCount < MaxCount; ParallelCluster's defaults 0 and 10)."""
    found = []
    for q_index, queue in enumerate(queues if isinstance(queues, list) else []):
        resources = queue.get("ComputeResources") if isinstance(queue, dict) else None
        for r_index, resource in enumerate(resources if isinstance(resources, list) else []):
            if not isinstance(resource, dict):
                continue
            counts = (resource.get("MinCount", DEFAULT_MIN_COUNT), resource.get("MaxCount", DEFAULT_MAX_COUNT))
            if all(isinstance(c, int) and not isinstance(c, bool) for c in counts) and counts[0] < counts[1]:
                found.append(("Scheduling", "SlurmQueues", q_index, "ComputeResources", r_index))
    return found


def _check_power_saving(slurm_settings, queues, problems):
    """ScaledownIdletime -1 turns Slurm's power saving off: dynamic nodes would never be powered up."""
    if not isinstance(slurm_settings, dict) or slurm_settings.get("ScaledownIdletime") != -1:
        return
    dynamic = _dynamic_compute_resources(queues)
    if dynamic:
        problems.append(problem(
            ("Scheduling", "SlurmSettings", "ScaledownIdletime"), -1,
            "ScaledownIdletime -1 makes ParallelCluster write SuspendTime=-1, which turns Slurm's power saving off "
            "altogether: the dynamic nodes of %s (MinCount < MaxCount) would never be powered up, and jobs that need "
            "them would wait forever" % ", ".join(format_path(path) for path in dynamic),
            "Set ScaledownIdletime to 1 or more (minutes an idle dynamic node waits before it stops; ParallelCluster's "
            "default is 10), or MinCount = MaxCount so that every node is static."))


def _check_scheduling(config, problems):
    slurm_settings = value_at(config, ("Scheduling", "SlurmSettings"))
    if isinstance(slurm_settings, dict):
        _check_custom_slurm_settings(slurm_settings.get("CustomSlurmSettings"),
                                     ("Scheduling", "SlurmSettings", "CustomSlurmSettings"), "SlurmConf", problems,
                                     has_accounting(config))
    queues = value_at(config, ("Scheduling", "SlurmQueues"))
    _check_power_saving(slurm_settings, queues, problems)
    if isinstance(queues, list):
        _check_duplicates(queues, "Name", ("Scheduling", "SlurmQueues"), problems, "Queue name")
        for index, queue in enumerate(queues):
            if isinstance(queue, dict):
                _check_queue(queue, ("Scheduling", "SlurmQueues", index), problems)


def has_accounting(config):
    """Whether the config sets up Slurm accounting (a database), which denies more Slurm settings."""
    settings = value_at(config, ("Scheduling", "SlurmSettings"))
    return isinstance(settings, dict) and bool(settings.get("Database") or settings.get("ExternalSlurmdbd"))


def check_rules(config, cluster_name=None):
    """The collection's own offline rules; returns a list of problems (never raises)."""
    if not isinstance(config, dict):
        return [problem("", short_repr(config), "The cluster config must be a mapping",
                        "Give the config as a dict/YAML mapping.")]
    problems = []
    _check_markup(config, problems)
    _check_tags(config, problems)
    if cluster_name is not None:
        check_cluster_name(cluster_name, problems, accounting=has_accounting(config))
    _check_image_and_region(config, problems)
    _check_head_node(config.get("HeadNode"), problems)
    for path, value in _security_group_paths(config):
        check_id(path, value, "security_group", problems)
    for path, value in script_paths(config):
        check_id(path, value, "script_url", problems)
    _check_scheduling(config, problems)
    _check_login_pools(value_at(config, ("LoginNodes", "Pools")), problems)
    _check_shared_storage(config.get("SharedStorage"), problems)
    return problems


def validate_config(config, cluster_name=None, use_schema=True):
    """Every offline problem of a config: these rules, then pcluster's schema (deduplicated by path). No AWS call.

    Returns (problems, schema_checked, note); note says why the schema did not run, else is empty.
    """
    problems = check_rules(config, cluster_name)
    if not use_schema or not isinstance(config, dict):
        return problems, False, ""
    try:
        schema = config_schema.schema_problems(config, cluster_name)
    except ImportError:
        return problems, False, "aws-parallelcluster is not installed: only the collection's rules ran"
    except config_schema.SchemaNeedsAws as refused:
        return problems, False, ("ParallelCluster's schema asked AWS (%s) about this config, which the offline check "
                                 "does not do: only the collection's rules ran; the checks against AWS (full) run "
                                 "ParallelCluster's own" % refused.operation)
    return merge_problems(problems, schema), True, ""
