# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Building and checking ParallelCluster 3 cluster configurations.

Two halves, shared by the ``cluster_config`` role (through the filter plugin
``hpc.pcluster.cluster_config``) and the ``config_validate`` module:

* ``build_cluster_config(variables)`` turns the role's ``cluster_config_*``
  variables into the config as a data structure, in a fixed key order, and
  records which variable produced which part of it (so that a problem found
  later in ``HeadNode.Networking.SubnetId`` can name
  ``cluster_config_public_subnet_id``).
* ``validate_config(config, cluster_name)`` checks a config offline: the
  collection's own rules (id patterns, the CustomSlurmSettings deny-list,
  cross-field rules, leftover ``${VAR}`` or Jinja2 markup) and, when
  aws-parallelcluster is installed, pcluster's own ``ClusterSchema``. Every
  problem is reported at once as ``{path, value, message, fix}`` where path is
  ``SharedStorage[1].FsxLustreSettings.DeploymentType``-style.

Nothing here calls AWS.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import os
import re
import warnings

from ansible_collections.hpc.pcluster.plugins.module_utils.config_problems import (  # noqa: F401 - re-exported
    format_path,
    parse_path,
    problem,
    short_repr as _short,
)


# --------------------------------------------------------------------------- patterns

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

SUPPORTED_OSES = ("alinux2023", "ubuntu2204", "ubuntu2404", "rhel8", "rocky8", "rhel9", "rocky9")
CAPACITY_TYPES = ("ONDEMAND", "SPOT", "CAPACITY_BLOCK")

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

GUIDE_DOCKER_POSTINSTALL_URL = (
    "https://raw.githubusercontent.com/aws-samples/aws-parallelcluster-post-install-scripts/main/docker/postinstall.sh"
)
S3_FULL_ACCESS_POLICY = "arn:aws:iam::aws:policy/AmazonS3FullAccess"

_SHELL_VAR = re.compile(r"\$\{[^}]*\}?")
_JINJA = re.compile(r"\{\{|\{%|\{#")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u0085\u2028\u2029]")


def _get(data, *keys):
    for key in keys:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def _walk(data, path=()):
    """Yield (path, key, value) for every dict key and every scalar value of a config."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield path, key, None
            yield from _walk(value, path + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _walk(value, path + (index,))
    else:
        yield path, None, data


# --------------------------------------------------------------------------- rules


def check_id(path, value, kind, problems, what=None):
    """Append a problem when value does not look like an id of this kind."""
    regex, description, example = ID_PATTERNS[kind]
    if isinstance(value, str) and re.match(regex, value):
        return True
    problems.append(
        problem(
            path,
            value,
            "%s is not %s" % (_short(value), what or description),
            "Use %s, for example %s." % (what or description, example),
        )
    )
    return False


def _check_markup(config, problems):
    """Leftover shell variables, Jinja2 markup and line breaks, in keys and values."""
    for path, key, value in _walk(config):
        if key is not None:
            text, where = key, path + (key,)
            label = "The key"
        elif isinstance(value, str):
            text, where = value, path
            label = "The value"
        else:
            continue
        if not isinstance(text, str):
            continue
        if _SHELL_VAR.search(text):
            problems.append(
                problem(
                    where,
                    text,
                    "%s holds an unsubstituted shell variable (%s)" % (label, _SHELL_VAR.search(text).group(0)),
                    "Give the real value: nothing expands shell variables here (the guide's heredoc did).",
                )
            )
        if _JINJA.search(text):
            problems.append(
                problem(
                    where,
                    text,
                    "%s holds Jinja2 template markup (%s); it would be written literally" % (label, _JINJA.search(text).group(0)),
                    "Give the final value. Template markup in data is never rendered into the cluster config.",
                )
            )
        if _CONTROL.search(text):
            problems.append(
                problem(
                    where,
                    text,
                    "%s holds a line break or control character" % label,
                    "Use a single-line value without control characters.",
                )
            )


def _script_paths(config):
    """(path, value) of every custom action script URL."""
    found = []
    for path, key, value in _walk(config):
        if key is None and path and path[-1] == "Script" and "CustomActions" in path:
            found.append((path, value))
    return found


def _security_group_paths(config):
    found = []
    for path, key, value in _walk(config):
        if key is None and len(path) >= 2 and isinstance(path[-1], int) and path[-2] in (
            "AdditionalSecurityGroups",
            "SecurityGroups",
        ):
            found.append((path, value))
    return found


def _check_tags(config, problems):
    """Tag keys and values in every Tags list: AWS's length and character rules."""
    for path, key, value in _walk(config):
        if key is not None or len(path) < 3 or path[-3] != "Tags" or path[-1] not in ("Key", "Value"):
            continue
        if "AmiSearchFilters" in path:
            continue  # AMI search filters, not resource tags: wildcards are allowed there
        if not isinstance(value, str) or _SHELL_VAR.search(value) or _JINJA.search(value):
            continue  # reported as leftover markup, more clearly
        if path[-1] == "Key" and (value.lower().startswith("aws:") or value.startswith("parallelcluster:")):
            problems.append(problem(path, value, "The tag key prefix of %s is reserved (aws: and parallelcluster:)"
                                    % _short(value), "Use a key without that prefix."))
            continue
        limit = 128 if path[-1] == "Key" else 256
        if len(value) > limit or (path[-1] == "Key" and not value) or not re.match(TAG_PATTERN, value):
            problems.append(problem(path, value,
                                    "Tag %s %s is not allowed: AWS takes at most %d letters, digits, spaces and "
                                    "+ - = . _ : / @" % (path[-1].lower(), _short(value), limit),
                                    "Use only those characters."))


def _check_name(path, name, problems, what):
    if not isinstance(name, str):
        return
    if not re.match(RESOURCE_NAME_PATTERN, name):
        problems.append(
            problem(
                path,
                name,
                "%s name %s must begin with a lowercase letter and hold only lowercase letters, digits and hyphens"
                % (what, _short(name)),
                "Rename it, for example 'compute-gpu'.",
            )
        )
    elif len(name) > RESOURCE_NAME_MAX_LENGTH:
        problems.append(
            problem(
                path,
                name,
                "%s name %s is longer than %d characters" % (what, _short(name), RESOURCE_NAME_MAX_LENGTH),
                "Use a shorter name.",
            )
        )
    elif name == "default":
        problems.append(problem(path, name, "'default' is reserved as a %s name" % what.lower(), "Use another name."))


def _check_duplicates(items, key, path, problems, what):
    seen = {}
    for index, item in enumerate(items or []):
        if not isinstance(item, dict):
            continue
        name = item.get(key)
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(
                problem(
                    path + (index, key),
                    name,
                    "%s %s is used twice (also at %s)" % (what, _short(name), format_path(path + (seen[name], key))),
                    "Give every %s a unique %s." % (what.split(" ")[0].lower(), key),
                )
            )
        else:
            seen[name] = index


def check_cluster_name(name, problems, path="cluster_name", accounting=False):
    limit = CLUSTER_NAME_MAX_LENGTH_ACCOUNTING if accounting else CLUSTER_NAME_MAX_LENGTH
    if not isinstance(name, str) or not re.match(CLUSTER_NAME_PATTERN, name):
        problems.append(
            problem(
                path,
                name,
                "The cluster name %s may hold only letters, digits and hyphens and must start with a letter" % _short(name),
                "Use a name like 'ml-training-cluster'.",
            )
        )
    elif len(name) > limit:
        problems.append(
            problem(
                path,
                name,
                "The cluster name is %d characters long; the limit is %d%s"
                % (len(name), limit, " when Slurm accounting is configured" if accounting else ""),
                "Use a shorter name.",
            )
        )


def _check_custom_slurm_settings(settings, path, level, problems, accounting):
    denied = set(SLURM_DENY_LIST[level]["Global"])
    if accounting and level == "SlurmConf":
        denied |= set(SLURM_DENY_LIST["SlurmConf"]["Accounting"])
    owner = {"SlurmConf": "ParallelCluster", "Queue": "ParallelCluster for each queue",
             "ComputeResource": "ParallelCluster for each compute resource"}[level]
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
            problems.append(
                problem(
                    where,
                    value,
                    "The Slurm setting %s is managed by %s and may not be set in CustomSlurmSettings at %s level"
                    % (key, owner, level),
                    "Remove %s from CustomSlurmSettings." % key,
                )
            )


def _check_fsx_lustre(storage, path, problems):
    settings = storage.get("FsxLustreSettings")
    if not isinstance(settings, dict) or settings.get("FileSystemId") is None:
        return
    for key, value in settings.items():
        if key != "FileSystemId":
            problems.append(
                problem(
                    path + ("FsxLustreSettings", key),
                    value,
                    "%s cannot be specified when an existing Lustre file system is used (FileSystemId): "
                    "only FileSystemId is allowed" % key,
                    "Remove %s: an existing file system keeps its own settings." % key,
                )
            )


def _check_size(path, value, problems):
    if isinstance(value, bool) or not isinstance(value, int):
        return
    if value <= 0:
        problems.append(problem(path, value, "The size must be a positive number of GiB, not %s" % value,
                                "Use a size greater than 0, or leave it out for the default."))


def check_rules(config, cluster_name=None):
    """The collection's own offline rules; returns a list of problems (never raises)."""
    problems = []
    if not isinstance(config, dict):
        return [problem("", _short(config), "The cluster config must be a mapping", "Give the config as a dict/YAML mapping.")]
    _check_markup(config, problems)
    _check_tags(config, problems)

    slurm_settings = _get(config, "Scheduling", "SlurmSettings") or {}
    accounting = isinstance(slurm_settings, dict) and bool(
        slurm_settings.get("Database") or slurm_settings.get("ExternalSlurmdbd")
    )
    if cluster_name is not None:
        check_cluster_name(cluster_name, problems, accounting=accounting)

    region = config.get("Region")
    if region is not None:
        check_id(("Region",), region, "region", problems)

    image = config.get("Image")
    if isinstance(image, dict):
        os_name = image.get("Os")
        if os_name is not None and os_name not in SUPPORTED_OSES:
            problems.append(problem(("Image", "Os"), os_name, "Unknown operating system %s" % _short(os_name),
                                    "Use one of: %s." % ", ".join(SUPPORTED_OSES)))
        if image.get("CustomAmi") is not None:
            check_id(("Image", "CustomAmi"), image["CustomAmi"], "ami", problems)

    head = config.get("HeadNode")
    if isinstance(head, dict):
        if head.get("InstanceType") is not None:
            check_id(("HeadNode", "InstanceType"), head["InstanceType"], "instance_type", problems)
        subnet = _get(head, "Networking", "SubnetId")
        if subnet is not None:
            check_id(("HeadNode", "Networking", "SubnetId"), subnet, "subnet", problems)
        key_name = _get(head, "Ssh", "KeyName")
        if key_name is not None:
            check_id(("HeadNode", "Ssh", "KeyName"), key_name, "key_name", problems)
        _check_size(("HeadNode", "LocalStorage", "RootVolume", "Size"), _get(head, "LocalStorage", "RootVolume", "Size"),
                    problems)
        if _get(head, "Image", "CustomAmi") is not None:
            check_id(("HeadNode", "Image", "CustomAmi"), _get(head, "Image", "CustomAmi"), "ami", problems)
        _check_iam(head.get("Iam"), ("HeadNode", "Iam"), problems)

    for path, value in _security_group_paths(config):
        check_id(path, value, "security_group", problems)
    for path, value in _script_paths(config):
        check_id(path, value, "script_url", problems)

    if isinstance(slurm_settings, dict):
        _check_custom_slurm_settings(slurm_settings.get("CustomSlurmSettings"),
                                     ("Scheduling", "SlurmSettings", "CustomSlurmSettings"), "SlurmConf", problems,
                                     accounting)
    queues = _get(config, "Scheduling", "SlurmQueues")
    if isinstance(queues, list):
        _check_queues(queues, problems)

    pools = _get(config, "LoginNodes", "Pools")
    if isinstance(pools, list):
        _check_duplicates(pools, "Name", ("LoginNodes", "Pools"), problems, "Login node pool name")
        for index, pool in enumerate(pools):
            if not isinstance(pool, dict):
                continue
            base = ("LoginNodes", "Pools", index)
            _check_name(base + ("Name",), pool.get("Name"), problems, "Login node pool")
            if pool.get("InstanceType") is not None:
                check_id(base + ("InstanceType",), pool["InstanceType"], "instance_type", problems)
            for sub_index, subnet in enumerate(_get(pool, "Networking", "SubnetIds") or []):
                check_id(base + ("Networking", "SubnetIds", sub_index), subnet, "subnet", problems)

    storages = config.get("SharedStorage")
    if isinstance(storages, list):
        _check_duplicates(storages, "Name", ("SharedStorage",), problems, "Shared storage name")
        _check_duplicates(storages, "MountDir", ("SharedStorage",), problems, "Shared storage mount directory")
        for index, storage in enumerate(storages):
            if not isinstance(storage, dict):
                continue
            base = ("SharedStorage", index)
            name = storage.get("Name")
            if isinstance(name, str) and (not re.match(SHARED_STORAGE_NAME_PATTERN, name) or name == "default"):
                problems.append(problem(base + ("Name",), name,
                                        "Shared storage name %s is not allowed (at most 30 letters, digits, spaces and "
                                        "+-=._:@/, not 'default')" % _short(name), "Use a name like 'fsx-lustre'."))
            if storage.get("MountDir") is not None:
                check_id(base + ("MountDir",), storage["MountDir"], "mount_dir", problems)
            _check_fsx_lustre(storage, base, problems)
            fs_id = _get(storage, "FsxLustreSettings", "FileSystemId")
            if fs_id is not None:
                check_id(base + ("FsxLustreSettings", "FileSystemId"), fs_id, "fsx_lustre", problems)
            for settings in ("FsxOpenZfsSettings", "FsxOntapSettings"):
                volume = _get(storage, settings, "VolumeId")
                if volume is not None:
                    check_id(base + (settings, "VolumeId"), volume, "fsx_volume", problems)
            _check_size(base + ("EbsSettings", "Size"), _get(storage, "EbsSettings", "Size"), problems)
            _check_size(base + ("FsxLustreSettings", "StorageCapacity"),
                        _get(storage, "FsxLustreSettings", "StorageCapacity"), problems)
    return problems


def _check_iam(iam, path, problems):
    if not isinstance(iam, dict):
        return
    for index, item in enumerate(iam.get("AdditionalIamPolicies") or []):
        if isinstance(item, dict) and item.get("Policy") is not None:
            check_id(path + ("AdditionalIamPolicies", index, "Policy"), item["Policy"], "iam_policy", problems)
    for index, item in enumerate(iam.get("S3Access") or []):
        if isinstance(item, dict) and item.get("BucketName") is not None:
            check_id(path + ("S3Access", index, "BucketName"), item["BucketName"], "s3_bucket", problems)


def _check_queues(queues, problems):
    _check_duplicates(queues, "Name", ("Scheduling", "SlurmQueues"), problems, "Queue name")
    for q_index, queue in enumerate(queues):
        if not isinstance(queue, dict):
            continue
        base = ("Scheduling", "SlurmQueues", q_index)
        _check_name(base + ("Name",), queue.get("Name"), problems, "Queue")
        capacity_type = queue.get("CapacityType")
        if capacity_type is not None and capacity_type not in CAPACITY_TYPES:
            problems.append(problem(base + ("CapacityType",), capacity_type,
                                    "Unknown capacity type %s" % _short(capacity_type),
                                    "Use one of: %s." % ", ".join(CAPACITY_TYPES)))
        for index, subnet in enumerate(_get(queue, "Networking", "SubnetIds") or []):
            check_id(base + ("Networking", "SubnetIds", index), subnet, "subnet", problems)
        _check_size(base + ("ComputeSettings", "LocalStorage", "RootVolume", "Size"),
                    _get(queue, "ComputeSettings", "LocalStorage", "RootVolume", "Size"), problems)
        if _get(queue, "Image", "CustomAmi") is not None:
            check_id(base + ("Image", "CustomAmi"), _get(queue, "Image", "CustomAmi"), "ami", problems)
        _check_iam(queue.get("Iam"), base + ("Iam",), problems)
        _check_custom_slurm_settings(queue.get("CustomSlurmSettings"), base + ("CustomSlurmSettings",), "Queue",
                                     problems, False)
        queue_reservation = queue.get("CapacityReservationTarget")
        _check_reservation(queue_reservation, base + ("CapacityReservationTarget",), problems)
        resources = queue.get("ComputeResources")
        if not isinstance(resources, list):
            continue
        _check_duplicates(resources, "Name", base + ("ComputeResources",), problems, "Compute resource name")
        for c_index, resource in enumerate(resources):
            if not isinstance(resource, dict):
                continue
            where = base + ("ComputeResources", c_index)
            _check_name(where + ("Name",), resource.get("Name"), problems, "Compute resource")
            if resource.get("InstanceType") is not None:
                check_id(where + ("InstanceType",), resource["InstanceType"], "instance_type", problems)
            for i_index, item in enumerate(resource.get("Instances") or []):
                if isinstance(item, dict) and item.get("InstanceType") is not None:
                    check_id(where + ("Instances", i_index, "InstanceType"), item["InstanceType"], "instance_type",
                             problems)
            min_count, max_count = resource.get("MinCount"), resource.get("MaxCount")
            counts_are_ints = all(isinstance(c, int) and not isinstance(c, bool) for c in (min_count, max_count))
            if counts_are_ints and min_count > max_count:
                problems.append(problem(where + ("MinCount",), min_count,
                                        "MinCount (%d) is greater than MaxCount (%d)" % (min_count, max_count),
                                        "Set MinCount <= MaxCount (MinCount nodes are static, the rest dynamic)."))
            reservation = resource.get("CapacityReservationTarget")
            _check_reservation(reservation, where + ("CapacityReservationTarget",), problems)
            if capacity_type == "CAPACITY_BLOCK":
                if not _get(reservation, "CapacityReservationId") and not _get(queue_reservation, "CapacityReservationId"):
                    problems.append(problem(where + ("CapacityReservationTarget",), None,
                                            "A CAPACITY_BLOCK queue needs the capacity block's reservation id",
                                            "Set CapacityReservationTarget.CapacityReservationId (cr-...)."))
                if counts_are_ints and min_count != max_count:
                    problems.append(problem(where + ("MaxCount",), max_count,
                                            "With CAPACITY_BLOCK every node is static: MinCount (%d) must equal "
                                            "MaxCount (%d)" % (min_count, max_count),
                                            "Set MinCount and MaxCount to the size of the capacity block."))
            _check_custom_slurm_settings(resource.get("CustomSlurmSettings"), where + ("CustomSlurmSettings",),
                                         "ComputeResource", problems, False)


def _check_reservation(target, path, problems):
    if not isinstance(target, dict):
        return
    if target.get("CapacityReservationId") is not None:
        check_id(path + ("CapacityReservationId",), target["CapacityReservationId"], "capacity_reservation", problems)
    if target.get("CapacityReservationResourceGroupArn") is not None:
        check_id(path + ("CapacityReservationResourceGroupArn",), target["CapacityReservationResourceGroupArn"],
                 "capacity_reservation_group", problems)


# --------------------------------------------------------------------------- pcluster schema

try:
    import importlib.util

    HAS_PCLUSTER_SCHEMA = importlib.util.find_spec("pcluster") is not None
except (ImportError, ValueError):  # pragma: no cover
    HAS_PCLUSTER_SCHEMA = False

_SCHEMA_FIXES = (
    ("cannot be specified when an existing", "Remove it: with an existing file system only its id is allowed."),
    ("Unknown field", "Remove the key or correct its spelling (keys are case-sensitive, PascalCase)."),
    ("Missing data for required field", "Add this required key."),
    ("Must be one of", "Use one of the values listed."),
    ("does not match expected pattern", "Use a value of the expected form (see the ParallelCluster reference)."),
    ("Not a valid integer", "Use a whole number."),
    ("Not a valid boolean", "Use true or false."),
    ("Not a valid string", "Use a string."),
    ("Invalid input type", "Use the type the ParallelCluster reference gives for this key."),
    ("greater than or equal", "Use a larger value."),
    ("less than or equal", "Use a smaller value."),
)


def _schema_fix(message, path):
    for marker, fix in _SCHEMA_FIXES:
        if marker.lower() in message.lower():
            return fix
    last = next((p for p in reversed(path) if isinstance(p, str)), "the config")
    return "See the ParallelCluster 3 cluster configuration reference for %s." % last


def _snake(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _flatten_messages(messages, path=()):
    """marshmallow's nested .messages -> [(path tuple, message)]."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema":
                yield from _flatten_messages(value, path)
            else:
                yield from _flatten_messages(value, path + (key,))
    elif isinstance(messages, (list, tuple)):
        for item in messages:
            if isinstance(item, (dict, list, tuple)):
                yield from _flatten_messages(item, path)
            else:
                yield path, str(item)
    else:
        yield path, str(messages)


def _refine(config, path, message):
    """Point a schema-level message at the key it names and say that key in PascalCase."""
    node = _get(config, *path) if path else config
    if not isinstance(node, dict):
        return path, message
    named = [key for key in node if isinstance(key, str) and re.search(r"\b%s\b" % re.escape(_snake(key)), message)]
    for key in named:
        message = re.sub(r"\b%s\b" % re.escape(_snake(key)), key, message)
    if len(named) == 1:
        return path + (named[0],), message
    return path, message


@contextlib.contextmanager
def _region_environment(region):
    """pcluster's schema asks for a region (for defaults only); give it one for the duration."""
    saved = {name: os.environ.get(name) for name in ("AWS_DEFAULT_REGION",)}
    if not os.environ.get("AWS_DEFAULT_REGION"):
        os.environ["AWS_DEFAULT_REGION"] = region if isinstance(region, str) and region else "us-east-1"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def schema_problems(config, cluster_name):
    """Run pcluster's ClusterSchema in-process; returns a list of problems.

    Raises ImportError when aws-parallelcluster is not installed.
    """
    with warnings.catch_warnings():
        # marshmallow 3 warns about pcluster's use of deprecated field arguments.
        warnings.simplefilter("ignore")
        from marshmallow import ValidationError  # pylint: disable=import-outside-toplevel
        from pcluster.schemas.cluster_schema import ClusterSchema  # pylint: disable=import-outside-toplevel

    found = []
    data = copy.deepcopy(config)
    with _region_environment(config.get("Region") if isinstance(config, dict) else None):
        try:
            ClusterSchema(cluster_name=cluster_name or "cluster").load(data)
        except ValidationError as error:
            for path, message in _flatten_messages(error.messages):
                path, message = _refine(config, path, message)
                value = _get(config, *path) if path else None
                found.append(problem(path, value if not isinstance(value, (dict, list)) else None, message,
                                     _schema_fix(message, path)))
        except Exception as error:  # pylint: disable=broad-except
            found.append(problem("", None, "pcluster's schema could not load the config: %s" % error,
                                 "Check the types of the values (mappings, lists, numbers) against the reference."))
    return found


def merge_problems(first, second):
    """first + the problems of second at paths (or below paths) first does not already cover."""
    covered = {parse_path(item["path"]) for item in first if item["path"]}
    merged = list(first)
    seen = {(item["path"], item["message"]) for item in first}
    for item in second:
        path = parse_path(item["path"])
        if any(path[: len(c)] == c for c in covered) or (item["path"], item["message"]) in seen:
            continue
        seen.add((item["path"], item["message"]))
        merged.append(item)
    return merged


def validate_config(config, cluster_name=None, use_schema=True):
    """All offline problems of a config: our rules, then pcluster's schema (deduplicated by path).

    Returns (problems, schema_checked).
    """
    problems = check_rules(config, cluster_name)
    schema_checked = False
    if use_schema and isinstance(config, dict):
        try:
            schema = schema_problems(config, cluster_name)
            schema_checked = True
        except ImportError:
            schema = []
        problems = merge_problems(problems, schema)
    return problems, schema_checked


def referenced_network_ids(config):
    """{"subnet": {id: [paths]}, "security_group": {id: [paths]}} of every subnet and security group in a config."""
    found = {"subnet": {}, "security_group": {}}
    for path, key, value in _walk(config):
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


def paths_mentioned(config, message, limit=5):
    """Paths of the config's values that a free-text message names (e.g. pcluster's errors about one id)."""
    found = []
    for path, key, value in _walk(config):
        if key is not None or not isinstance(value, str) or len(value) < 4 or not path:
            continue
        if re.search(r"(?<![\w.-])%s(?![\w-])" % re.escape(value), message or ""):
            found.append(format_path(path))
            if len(found) >= limit:
                break
    return found


# --------------------------------------------------------------------------- building from role variables

PREFIX = "cluster_config_"

# Every role variable: name -> (type, required). Types: str, int, bool, list, dict, raw (str or bool).
# Required values may be empty in inventory placeholders; the builder reports those as missing.
VARIABLES = {
    "cluster_name": ("str", True),
    "region": ("str", True),
    "output_path": ("str", True),
    "os": ("str", True),
    "custom_ami": ("str", False),
    "imds_support": ("str", True),
    "head_node_bootstrap_timeout": ("int", True),
    "compute_node_bootstrap_timeout": ("int", True),
    "head_node_instance_type": ("str", True),
    "public_subnet_id": ("str", True),
    "private_subnet_id": ("str", True),
    "security_group_id": ("str", True),
    "head_node_elastic_ip": ("raw", True),
    "head_node_root_volume_size": ("int", True),
    "head_node_root_volume_delete_on_termination": ("bool", True),
    "ssh_key_name": ("str", False),
    "ssh_allowed_ips": ("str", False),
    "iam_policies": ("list", True),
    "extra_iam_policies": ("list", False),
    "s3_access": ("list", False),
    "docker_postinstall_enabled": ("bool", True),
    "docker_postinstall_url": ("str", True),
    "head_node_bootstrap_script": ("str", True),
    "head_node_bootstrap_args": ("list", False),
    "compute_node_bootstrap_script": ("str", True),
    "compute_node_bootstrap_args": ("list", False),
    "scaledown_idletime": ("int", True),
    "queue_update_strategy": ("str", True),
    "custom_slurm_settings": ("list", False),
    "queue_name": ("str", True),
    "capacity_type": ("str", True),
    "allocation_strategy": ("str", False),
    "placement_group_enabled": ("bool", True),
    "placement_group_name": ("str", False),
    "scratch_mount_dir": ("str", False),
    "compute_root_volume_size": ("int", True),
    "job_exclusive_allocation": ("bool", True),
    "compute_resource_name": ("str", True),
    "compute_instance_type": ("str", True),
    "compute_min_count": ("int", True),
    "compute_max_count": ("int", True),
    "efa_enabled": ("bool", True),
    "efa_gdr_support": ("bool", False),
    "disable_simultaneous_multithreading": ("bool", False),
    "spot_price": ("str", False),
    "capacity_reservation_id": ("str", False),
    "capacity_reservation_resource_group_arn": ("str", False),
    "queues": ("list", False),
    "login_nodes": ("list", False),
    "fsx_openzfs_enabled": ("bool", True),
    "fsx_openzfs_volume_id": ("str", False),
    "fsx_openzfs_name": ("str", True),
    "fsx_openzfs_mount_dir": ("str", True),
    "fsx_lustre_enabled": ("bool", True),
    "fsx_lustre_id": ("str", False),
    "fsx_lustre_name": ("str", True),
    "fsx_lustre_mount_dir": ("str", True),
    "extra_shared_storage": ("list", False),
    "detailed_monitoring": ("bool", True),
    "cloudwatch_logs_enabled": ("bool", True),
    "cloudwatch_dashboard_enabled": ("bool", True),
    "tags": ("dict", False),
    "overrides": ("dict", False),
    "validate_full": ("bool", False),
    "suppress_validators": ("list", False),
}

# Facts and results the role itself sets; they share the prefix but are not inputs.
OUTPUT_NAMES = ("cluster_config", "cluster_config_file", "cluster_config_validation")

REQUIRED_HELP = {
    "region": "the AWS region, e.g. us-east-1 (or set pcluster_region)",
    "public_subnet_id": "the head node's (public) subnet id, e.g. subnet-0123456789abcdef0",
    "private_subnet_id": "the compute nodes' (private) subnet id, e.g. subnet-0fedcba9876543210",
    "security_group_id": "the extra security group id for all nodes, e.g. sg-0123456789abcdef0",
    "fsx_lustre_id": "the FSx for Lustre file system id, e.g. fs-0123456789abcdef0 "
                     "(or set cluster_config_fsx_lustre_enabled: false)",
    "fsx_openzfs_volume_id": "the FSx for OpenZFS root volume id, e.g. fsvol-0123456789abcdef0 "
                             "(or set cluster_config_fsx_openzfs_enabled: false)",
    "head_node_bootstrap_script": "the head node's OnNodeConfigured script, e.g. s3://my-bucket/head-node.sh",
    "compute_node_bootstrap_script": "the compute nodes' OnNodeConfigured script, e.g. s3://my-bucket/compute-node.sh",
}

QUEUE_KEYS = {
    "name": "str", "capacity_type": "str", "allocation_strategy": "str", "subnet_ids": "list",
    "security_group_ids": "list", "placement_group_enabled": "bool", "placement_group_name": "str",
    "scratch_mount_dir": "str", "root_volume_size": "int", "job_exclusive_allocation": "bool",
    "iam_policies": "list", "s3_access": "list", "bootstrap_script": "str", "bootstrap_args": "list",
    "docker_postinstall_enabled": "bool", "custom_slurm_settings": "dict", "capacity_reservation_id": "str",
    "capacity_reservation_resource_group_arn": "str", "custom_ami": "str", "compute_resources": "list",
}
COMPUTE_RESOURCE_KEYS = {
    "name": "str", "instance_type": "str", "instances": "list", "min_count": "int", "max_count": "int",
    "efa_enabled": "bool", "efa_gdr_support": "bool", "disable_simultaneous_multithreading": "bool",
    "spot_price": "str", "capacity_reservation_id": "str", "capacity_reservation_resource_group_arn": "str",
    "custom_slurm_settings": "dict", "static_node_priority": "int", "dynamic_node_priority": "int",
}
LOGIN_POOL_KEYS = {
    "name": "str", "instance_type": "str", "count": "int", "subnet_ids": "list", "security_group_ids": "list",
    "ssh_allowed_ips": "str", "gracetime_period": "int", "iam_policies": "list", "custom_ami": "str",
}
S3_ACCESS_KEYS = {"bucket_name": "str", "key_name": "str", "enable_write_access": "bool"}

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _blank(value):
    return value is None or (isinstance(value, str) and value.strip() == "")


class _Builder:
    """Collects the config, the problems and which variable set which config path."""

    def __init__(self, variables):
        self.raw = variables
        self.problems = []
        self.sources = {}
        self._cache = {}

    # ---- reading variables

    def coerce(self, value, kind, variable):
        """Value converted to kind (numbers and booleans may arrive as strings from extra vars)."""
        if value is None or kind == "raw":
            return value
        try:
            if kind == "str":
                if isinstance(value, (dict, list)):
                    raise ValueError
                return value if isinstance(value, str) else str(value)
            if kind == "int":
                if isinstance(value, bool):
                    raise ValueError
                if isinstance(value, str):
                    return int(value.strip())
                if isinstance(value, float) and value.is_integer():
                    return int(value)
                if isinstance(value, int):
                    return value
                raise ValueError
            if kind == "bool":
                if isinstance(value, bool):
                    return value
                if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
                    return value.strip().lower() in _TRUE
                if isinstance(value, int) and value in (0, 1):
                    return bool(value)
                raise ValueError
            if kind == "list":
                if isinstance(value, (list, tuple)):
                    return list(value)
                raise ValueError
            if kind == "dict":
                if isinstance(value, dict):
                    return dict(value)
                raise ValueError
        except (TypeError, ValueError):
            self.problems.append(problem("", _short(value), "%s must be a %s, not %s" % (
                variable, {"str": "string", "int": "whole number", "bool": "boolean", "list": "list",
                           "dict": "mapping"}[kind], type(value).__name__),
                "Give %s a %s value." % (variable, kind), variable))
            return None
        return value

    def var(self, name):
        if name not in self._cache:
            kind = VARIABLES[name][0]
            value = self.coerce(self.raw.get(PREFIX + name), kind, PREFIX + name)
            if kind == "raw" and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
                value = value.strip().lower() in _TRUE
            self._cache[name] = value
        return self._cache[name]

    def required(self, name, path, condition=True):
        """A required value; reports it as missing (naming the variable) when empty."""
        value = self.var(name)
        if _blank(value) and condition:
            help_text = REQUIRED_HELP.get(name, "a value")
            self.problems.append(problem(path, value, "%s%s is required and not set" % (PREFIX, name),
                                         "Set %s%s to %s." % (PREFIX, name, help_text), PREFIX + name))
            return None
        return value

    def source(self, path, variable):
        self.sources[format_path(path)] = variable

    def unknown_keys(self, item, allowed, variable):
        for key in item:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), list(allowed), n=1)
                self.problems.append(problem("", key, "%s has an unknown key %s" % (variable, _short(key)),
                                             ("Did you mean %s? " % close[0] if close else "")
                                             + "Known keys: %s." % ", ".join(sorted(allowed)), variable))

    def item_value(self, item, key, kind, variable, default=None):
        if key in item and item[key] is not None:
            return self.coerce(item[key], kind, "%s.%s" % (variable, key))
        return default

    # ---- pieces

    def policies(self, policies, s3_access):
        """AdditionalIamPolicies list; AmazonS3FullAccess is dropped once S3Access names buckets."""
        result = []
        for policy in policies or []:
            arn = policy.get("Policy") if isinstance(policy, dict) else policy
            if s3_access and arn == S3_FULL_ACCESS_POLICY:
                continue
            if arn not in [entry["Policy"] for entry in result]:
                result.append({"Policy": arn})
        return result

    def s3_access(self, entries, variable):
        result = []
        for index, entry in enumerate(entries or []):
            where = "%s[%d]" % (variable, index)
            if isinstance(entry, str):
                entry = {"bucket_name": entry}
            if not isinstance(entry, dict):
                self.problems.append(problem("", _short(entry), "%s must be a bucket name or a mapping" % where,
                                             "Use 'my-bucket' or {bucket_name: my-bucket, enable_write_access: true}.",
                                             where))
                continue
            self.unknown_keys(entry, S3_ACCESS_KEYS, where)
            access = {"BucketName": self.item_value(entry, "bucket_name", "str", where)}
            if not _blank(entry.get("key_name")):
                access["KeyName"] = self.item_value(entry, "key_name", "str", where)
            if entry.get("enable_write_access") is not None:
                access["EnableWriteAccess"] = self.item_value(entry, "enable_write_access", "bool", where)
            result.append(access)
        return result

    def iam(self, policies, s3_access):
        iam = {"AdditionalIamPolicies": self.policies(policies, s3_access)}
        if s3_access:
            iam["S3Access"] = s3_access
        return iam

    def on_node_configured(self, docker, docker_url, script, args):
        sequence = []
        if docker:
            sequence.append({"Script": docker_url})
        if not _blank(script):
            step = {"Script": script}
            if args:
                step["Args"] = [str(arg) for arg in args]
            sequence.append(step)
        if not sequence:
            return None
        return {"OnNodeConfigured": {"Sequence": sequence}}

    @staticmethod
    def reservation(reservation_id, group_arn):
        if not _blank(reservation_id):
            return {"CapacityReservationId": reservation_id}
        if not _blank(group_arn):
            return {"CapacityReservationResourceGroupArn": group_arn}
        return None


def build_cluster_config(variables):
    """Build the config from ``cluster_config_*`` variables.

    Returns ``{"config": dict, "problems": [...], "sources": {config path: variable}}``.
    Problems found while building name the variable; the config rules are not run here.
    """
    b = _Builder(variables or {})
    known = set(PREFIX + name for name in VARIABLES) | set(OUTPUT_NAMES)
    for name in sorted(variables or {}):
        if name.startswith(PREFIX) and name not in known:
            close = difflib.get_close_matches(name, sorted(known - set(OUTPUT_NAMES)), n=1)
            b.problems.append(problem("", None, "Unknown variable %s" % name,
                                      ("Did you mean %s? " % close[0] if close else "")
                                      + "See roles/cluster_config/README.md for the variables.", name))

    config = {}
    region = b.required("region", ("Region",))
    if region is not None:
        config["Region"] = region
        b.source(("Region",), PREFIX + "region")

    timeouts = {
        "HeadNodeBootstrapTimeout": b.var("head_node_bootstrap_timeout"),
        "ComputeNodeBootstrapTimeout": b.var("compute_node_bootstrap_timeout"),
    }
    config["DevSettings"] = {"Timeouts": timeouts}
    b.source(("DevSettings", "Timeouts", "HeadNodeBootstrapTimeout"), PREFIX + "head_node_bootstrap_timeout")
    b.source(("DevSettings", "Timeouts", "ComputeNodeBootstrapTimeout"), PREFIX + "compute_node_bootstrap_timeout")
    config["Imds"] = {"ImdsSupport": b.var("imds_support")}
    b.source(("Imds",), PREFIX + "imds_support")
    image = {"Os": b.var("os")}
    b.source(("Image", "Os"), PREFIX + "os")
    if not _blank(b.var("custom_ami")):
        image["CustomAmi"] = b.var("custom_ami")
        b.source(("Image", "CustomAmi"), PREFIX + "custom_ami")
    config["Image"] = image

    security_group = b.required("security_group_id", ("HeadNode", "Networking", "AdditionalSecurityGroups"))
    s3_access = b.s3_access(b.var("s3_access"), PREFIX + "s3_access")
    policies = list(b.var("iam_policies") or []) + list(b.var("extra_iam_policies") or [])
    docker = b.var("docker_postinstall_enabled")
    docker_url = b.var("docker_postinstall_url")

    # ---- HeadNode
    networking = {}
    subnet = b.required("public_subnet_id", ("HeadNode", "Networking", "SubnetId"))
    if subnet is not None:
        networking["SubnetId"] = subnet
    networking["ElasticIp"] = b.var("head_node_elastic_ip")
    if security_group is not None:
        networking["AdditionalSecurityGroups"] = [security_group]
    head = {"InstanceType": b.var("head_node_instance_type"), "Networking": networking}
    b.source(("HeadNode", "InstanceType"), PREFIX + "head_node_instance_type")
    b.source(("HeadNode", "Networking", "SubnetId"), PREFIX + "public_subnet_id")
    b.source(("HeadNode", "Networking", "ElasticIp"), PREFIX + "head_node_elastic_ip")
    b.source(("HeadNode", "Networking", "AdditionalSecurityGroups"), PREFIX + "security_group_id")
    ssh = {}
    if not _blank(b.var("ssh_key_name")):
        ssh["KeyName"] = b.var("ssh_key_name")
        b.source(("HeadNode", "Ssh", "KeyName"), PREFIX + "ssh_key_name")
    if not _blank(b.var("ssh_allowed_ips")):
        ssh["AllowedIps"] = b.var("ssh_allowed_ips")
        b.source(("HeadNode", "Ssh", "AllowedIps"), PREFIX + "ssh_allowed_ips")
    if ssh:
        head["Ssh"] = ssh
    head["LocalStorage"] = {"RootVolume": {
        "Size": b.var("head_node_root_volume_size"),
        "DeleteOnTermination": b.var("head_node_root_volume_delete_on_termination"),
    }}
    b.source(("HeadNode", "LocalStorage", "RootVolume", "Size"), PREFIX + "head_node_root_volume_size")
    b.source(("HeadNode", "LocalStorage", "RootVolume", "DeleteOnTermination"),
             PREFIX + "head_node_root_volume_delete_on_termination")
    head["Iam"] = b.iam(policies, s3_access)
    b.source(("HeadNode", "Iam", "AdditionalIamPolicies"), PREFIX + "iam_policies/" + PREFIX + "extra_iam_policies")
    b.source(("HeadNode", "Iam", "S3Access"), PREFIX + "s3_access")
    head_script = b.required("head_node_bootstrap_script",
                             ("HeadNode", "CustomActions", "OnNodeConfigured", "Sequence", 1 if docker else 0, "Script"))
    actions = b.on_node_configured(docker, docker_url, head_script, b.var("head_node_bootstrap_args"))
    if actions:
        head["CustomActions"] = actions
        if docker:
            b.source(("HeadNode", "CustomActions", "OnNodeConfigured", "Sequence", 0),
                     PREFIX + "docker_postinstall_url")
        b.source(("HeadNode", "CustomActions", "OnNodeConfigured", "Sequence", 1 if docker else 0),
                 PREFIX + "head_node_bootstrap_script")
    config["HeadNode"] = head

    # ---- Scheduling
    slurm_settings = {
        "ScaledownIdletime": b.var("scaledown_idletime"),
        "QueueUpdateStrategy": b.var("queue_update_strategy"),
    }
    b.source(("Scheduling", "SlurmSettings", "ScaledownIdletime"), PREFIX + "scaledown_idletime")
    b.source(("Scheduling", "SlurmSettings", "QueueUpdateStrategy"), PREFIX + "queue_update_strategy")
    custom = b.var("custom_slurm_settings")
    if custom:
        slurm_settings["CustomSlurmSettings"] = custom
        b.source(("Scheduling", "SlurmSettings", "CustomSlurmSettings"), PREFIX + "custom_slurm_settings")
    private_subnet = b.required("private_subnet_id", ("Scheduling", "SlurmQueues", 0, "Networking", "SubnetIds"),
                                condition=not b.var("queues") or _queues_need_private_subnet(b.var("queues")))
    compute_script = b.required("compute_node_bootstrap_script", ("Scheduling", "SlurmQueues", 0, "CustomActions"),
                                condition=not b.var("queues") or _queues_need_compute_script(b.var("queues")))
    queue_defaults = {
        "capacity_type": b.var("capacity_type"),
        "allocation_strategy": b.var("allocation_strategy"),
        "subnet_ids": [private_subnet] if private_subnet else [],
        "security_group_ids": [security_group] if security_group else [],
        "placement_group_enabled": b.var("placement_group_enabled"),
        "placement_group_name": b.var("placement_group_name"),
        "scratch_mount_dir": b.var("scratch_mount_dir"),
        "root_volume_size": b.var("compute_root_volume_size"),
        "job_exclusive_allocation": b.var("job_exclusive_allocation"),
        "iam_policies": policies,
        "s3_access": s3_access,
        "bootstrap_script": compute_script,
        "bootstrap_args": b.var("compute_node_bootstrap_args"),
        "docker_postinstall_enabled": docker,
        "custom_slurm_settings": None,
        "capacity_reservation_id": None,
        "capacity_reservation_resource_group_arn": None,
        "custom_ami": None,
    }
    resource_defaults = {
        "efa_enabled": b.var("efa_enabled"),
        "efa_gdr_support": b.var("efa_gdr_support"),
        "disable_simultaneous_multithreading": b.var("disable_simultaneous_multithreading"),
        "spot_price": b.var("spot_price"),
    }
    queues_var = b.var("queues")
    if queues_var:
        queues = [_build_queue(b, item, index, queue_defaults, resource_defaults, docker_url)
                  for index, item in enumerate(queues_var)]
        queues = [q for q in queues if q is not None]
    else:
        single = dict(queue_defaults)
        single["name"] = b.var("queue_name")
        single["compute_resources"] = [{
            "name": b.var("compute_resource_name"),
            "instance_type": b.var("compute_instance_type"),
            "min_count": b.var("compute_min_count"),
            "max_count": b.var("compute_max_count"),
            "capacity_reservation_id": b.var("capacity_reservation_id"),
            "capacity_reservation_resource_group_arn": b.var("capacity_reservation_resource_group_arn"),
        }]
        queues = [_build_queue(b, single, None, queue_defaults, resource_defaults, docker_url)]
        _single_queue_sources(b)
    config["Scheduling"] = {"Scheduler": "slurm", "SlurmSettings": slurm_settings, "SlurmQueues": queues}

    # ---- LoginNodes
    pools = [_build_login_pool(b, item, index, subnet, security_group, policies)
             for index, item in enumerate(b.var("login_nodes") or [])]
    pools = [p for p in pools if p is not None]
    if pools:
        config["LoginNodes"] = {"Pools": pools}

    # ---- SharedStorage
    storage = []
    if b.var("fsx_openzfs_enabled"):
        index = len(storage)
        volume = b.required("fsx_openzfs_volume_id", ("SharedStorage", index, "FsxOpenZfsSettings", "VolumeId"))
        entry = {"Name": b.var("fsx_openzfs_name"), "StorageType": "FsxOpenZfs",
                 "MountDir": b.var("fsx_openzfs_mount_dir"), "FsxOpenZfsSettings": {}}
        if volume is not None:
            entry["FsxOpenZfsSettings"]["VolumeId"] = volume
        storage.append(entry)
        b.source(("SharedStorage", index, "Name"), PREFIX + "fsx_openzfs_name")
        b.source(("SharedStorage", index, "MountDir"), PREFIX + "fsx_openzfs_mount_dir")
        b.source(("SharedStorage", index, "FsxOpenZfsSettings"), PREFIX + "fsx_openzfs_volume_id")
    if b.var("fsx_lustre_enabled"):
        index = len(storage)
        fs_id = b.required("fsx_lustre_id", ("SharedStorage", index, "FsxLustreSettings", "FileSystemId"))
        # With an existing file system FileSystemId is the only allowed key (the guide's DeploymentType is refused).
        entry = {"Name": b.var("fsx_lustre_name"), "StorageType": "FsxLustre",
                 "MountDir": b.var("fsx_lustre_mount_dir"), "FsxLustreSettings": {}}
        if fs_id is not None:
            entry["FsxLustreSettings"]["FileSystemId"] = fs_id
        storage.append(entry)
        b.source(("SharedStorage", index, "Name"), PREFIX + "fsx_lustre_name")
        b.source(("SharedStorage", index, "MountDir"), PREFIX + "fsx_lustre_mount_dir")
        b.source(("SharedStorage", index, "FsxLustreSettings"), PREFIX + "fsx_lustre_id")
    for offset, extra in enumerate(b.var("extra_shared_storage") or []):
        b.source(("SharedStorage", len(storage)), "%sextra_shared_storage[%d]" % (PREFIX, offset))
        storage.append(extra)
    if storage:
        config["SharedStorage"] = storage

    # ---- Monitoring, Tags
    config["Monitoring"] = {
        "DetailedMonitoring": b.var("detailed_monitoring"),
        "Logs": {"CloudWatch": {"Enabled": b.var("cloudwatch_logs_enabled")}},
        "Dashboards": {"CloudWatch": {"Enabled": b.var("cloudwatch_dashboard_enabled")}},
    }
    b.source(("Monitoring", "DetailedMonitoring"), PREFIX + "detailed_monitoring")
    b.source(("Monitoring", "Logs"), PREFIX + "cloudwatch_logs_enabled")
    b.source(("Monitoring", "Dashboards"), PREFIX + "cloudwatch_dashboard_enabled")
    tags = b.var("tags") or {}
    if tags:
        config["Tags"] = []
        for index, (key, value) in enumerate(tags.items()):
            if isinstance(value, (dict, list)) or value is None:
                b.problems.append(problem(("Tags", index, "Value"), _short(value),
                                          "%stags[%s] must be a string" % (PREFIX, key),
                                          "Give every tag a string value.", PREFIX + "tags"))
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            config["Tags"].append({"Key": str(key), "Value": str(value)})
        b.source(("Tags",), PREFIX + "tags")

    overrides = b.var("overrides") or {}
    if overrides:
        config = deep_merge(config, overrides)
        for path in _leaf_paths(overrides):
            b.source(path, PREFIX + "overrides")
    _drop_none(config)
    return {"config": config, "problems": b.problems, "sources": b.sources}


def _queues_need_private_subnet(queues):
    return any(isinstance(q, dict) and not q.get("subnet_ids") for q in queues)


def _queues_need_compute_script(queues):
    return any(isinstance(q, dict) and "bootstrap_script" not in q for q in queues)


def _single_queue_sources(b):
    base = ("Scheduling", "SlurmQueues", 0)
    cr = base + ("ComputeResources", 0)
    for path, name in (
        (base + ("Name",), "queue_name"),
        (base + ("CapacityType",), "capacity_type"),
        (base + ("AllocationStrategy",), "allocation_strategy"),
        (base + ("Networking", "SubnetIds"), "private_subnet_id"),
        (base + ("Networking", "AdditionalSecurityGroups"), "security_group_id"),
        (base + ("Networking", "PlacementGroup"), "placement_group_enabled"),
        (base + ("ComputeSettings", "LocalStorage", "EphemeralVolume"), "scratch_mount_dir"),
        (base + ("ComputeSettings", "LocalStorage", "RootVolume"), "compute_root_volume_size"),
        (base + ("JobExclusiveAllocation",), "job_exclusive_allocation"),
        (cr + ("Name",), "compute_resource_name"),
        (cr + ("InstanceType",), "compute_instance_type"),
        (cr + ("MinCount",), "compute_min_count"),
        (cr + ("MaxCount",), "compute_max_count"),
        (cr + ("Efa",), "efa_enabled"),
        (cr + ("SpotPrice",), "spot_price"),
        (cr + ("CapacityReservationTarget", "CapacityReservationId"), "capacity_reservation_id"),
        (cr + ("CapacityReservationTarget", "CapacityReservationResourceGroupArn"),
         "capacity_reservation_resource_group_arn"),
    ):
        b.source(path, PREFIX + name)
    b.source(base + ("Iam", "AdditionalIamPolicies"), PREFIX + "iam_policies/" + PREFIX + "extra_iam_policies")
    b.source(base + ("Iam", "S3Access"), PREFIX + "s3_access")
    b.source(base + ("CustomActions",), PREFIX + "compute_node_bootstrap_script")


def _build_queue(b, item, index, defaults, resource_defaults, docker_url):
    variable = PREFIX + "queues[%d]" % index if index is not None else None
    if index is not None:
        if not isinstance(item, dict):
            b.problems.append(problem("", _short(item), "%s must be a mapping" % variable,
                                      "Give each queue as a mapping with at least name and compute_resources.",
                                      variable))
            return None
        b.unknown_keys(item, QUEUE_KEYS, variable)
        settings = dict(defaults)
        for key, kind in QUEUE_KEYS.items():
            if key in item and item[key] is not None:
                settings[key] = b.coerce(item[key], kind, "%s.%s" % (variable, key))
        if "s3_access" in item:
            settings["s3_access"] = b.s3_access(item["s3_access"], variable + ".s3_access")
        path = ("Scheduling", "SlurmQueues", index)
        b.source(path, variable)
        for key in ("name", "compute_resources"):
            if _blank(item.get(key)) or item.get(key) == []:
                b.problems.append(problem(path + ({"name": "Name", "compute_resources": "ComputeResources"}[key],),
                                          None, "%s.%s is required" % (variable, key),
                                          "Set %s.%s." % (variable, key), variable))
        if not settings["subnet_ids"]:
            b.problems.append(problem(path + ("Networking", "SubnetIds"), None,
                                      "%s has no subnet_ids and cluster_config_private_subnet_id is not set" % variable,
                                      "Set %s.subnet_ids or cluster_config_private_subnet_id." % variable, variable))
    else:
        settings = item
    queue = {"Name": settings.get("name"), "CapacityType": settings.get("capacity_type")}
    if not _blank(settings.get("allocation_strategy")):
        queue["AllocationStrategy"] = settings["allocation_strategy"]
    networking = {"SubnetIds": list(settings.get("subnet_ids") or [])}
    placement = {"Enabled": bool(settings.get("placement_group_enabled"))}
    if settings.get("placement_group_enabled") and not _blank(settings.get("placement_group_name")):
        placement["Name"] = settings["placement_group_name"]
    networking["PlacementGroup"] = placement
    if settings.get("security_group_ids"):
        networking["AdditionalSecurityGroups"] = list(settings["security_group_ids"])
    queue["Networking"] = networking
    local_storage = {}
    if not _blank(settings.get("scratch_mount_dir")):
        local_storage["EphemeralVolume"] = {"MountDir": settings["scratch_mount_dir"]}
    local_storage["RootVolume"] = {"Size": settings.get("root_volume_size")}
    queue["ComputeSettings"] = {"LocalStorage": local_storage}
    if settings.get("job_exclusive_allocation") is not None:
        queue["JobExclusiveAllocation"] = settings["job_exclusive_allocation"]
    if settings.get("custom_slurm_settings"):
        queue["CustomSlurmSettings"] = settings["custom_slurm_settings"]
    reservation = b.reservation(settings.get("capacity_reservation_id"),
                                settings.get("capacity_reservation_resource_group_arn"))
    if reservation:
        queue["CapacityReservationTarget"] = reservation
    if not _blank(settings.get("custom_ami")):
        queue["Image"] = {"CustomAmi": settings["custom_ami"]}
    resources = []
    for c_index, resource in enumerate(settings.get("compute_resources") or []):
        built = _build_compute_resource(b, resource, variable, c_index, resource_defaults)
        if built is not None:
            resources.append(built)
    queue["ComputeResources"] = resources
    queue["Iam"] = b.iam(settings.get("iam_policies"), settings.get("s3_access"))
    actions = b.on_node_configured(settings.get("docker_postinstall_enabled"), docker_url,
                                   settings.get("bootstrap_script"), settings.get("bootstrap_args"))
    if actions:
        queue["CustomActions"] = actions
    return queue


def _build_compute_resource(b, item, queue_variable, index, defaults):
    if queue_variable is not None:
        variable = "%s.compute_resources[%d]" % (queue_variable, index)
        if not isinstance(item, dict):
            b.problems.append(problem("", _short(item), "%s must be a mapping" % variable,
                                      "Give each compute resource as a mapping (name, instance_type, min_count, "
                                      "max_count).", variable))
            return None
        b.unknown_keys(item, COMPUTE_RESOURCE_KEYS, variable)
        settings = dict(defaults)
        settings.update({"min_count": 0, "max_count": 1})
        for key, kind in COMPUTE_RESOURCE_KEYS.items():
            if key in item and item[key] is not None:
                settings[key] = b.coerce(item[key], kind, "%s.%s" % (variable, key))
        q_index = int(re.search(r"\[(\d+)\]$", queue_variable).group(1))
        b.source(("Scheduling", "SlurmQueues", q_index, "ComputeResources", index), variable)
    else:
        settings = dict(defaults)
        settings.update(item)
    resource = {"Name": settings.get("name")}
    if settings.get("instances"):
        resource["Instances"] = [{"InstanceType": i.get("instance_type", i.get("InstanceType"))}
                                 if isinstance(i, dict) else {"InstanceType": i} for i in settings["instances"]]
    else:
        resource["InstanceType"] = settings.get("instance_type")
    resource["MinCount"] = settings.get("min_count")
    resource["MaxCount"] = settings.get("max_count")
    if not _blank(settings.get("spot_price")):
        try:
            resource["SpotPrice"] = float(settings["spot_price"])
        except (TypeError, ValueError):
            resource["SpotPrice"] = settings["spot_price"]
    if settings.get("disable_simultaneous_multithreading"):
        resource["DisableSimultaneousMultithreading"] = True
    for key, name in (("static_node_priority", "StaticNodePriority"), ("dynamic_node_priority", "DynamicNodePriority")):
        if settings.get(key) is not None:
            resource[name] = settings[key]
    reservation = b.reservation(settings.get("capacity_reservation_id"),
                                settings.get("capacity_reservation_resource_group_arn"))
    if reservation:
        resource["CapacityReservationTarget"] = reservation
    efa = {"Enabled": bool(settings.get("efa_enabled"))}
    if settings.get("efa_enabled") and settings.get("efa_gdr_support"):
        efa["GdrSupport"] = True
    resource["Efa"] = efa
    if settings.get("custom_slurm_settings"):
        resource["CustomSlurmSettings"] = settings["custom_slurm_settings"]
    return resource


def _build_login_pool(b, item, index, public_subnet, security_group, policies):
    variable = PREFIX + "login_nodes[%d]" % index
    if not isinstance(item, dict):
        b.problems.append(problem("", _short(item), "%s must be a mapping" % variable,
                                  "Give each pool as a mapping (name, instance_type, count).", variable))
        return None
    b.unknown_keys(item, LOGIN_POOL_KEYS, variable)
    path = ("LoginNodes", "Pools", index)
    b.source(path, variable)
    for key in ("name", "instance_type"):
        if _blank(item.get(key)):
            b.problems.append(problem(path + ({"name": "Name", "instance_type": "InstanceType"}[key],), None,
                                      "%s.%s is required" % (variable, key), "Set %s.%s." % (variable, key), variable))
    subnets = b.item_value(item, "subnet_ids", "list", variable, [public_subnet] if public_subnet else [])
    groups = b.item_value(item, "security_group_ids", "list", variable, [security_group] if security_group else [])
    pool = {
        "Name": b.item_value(item, "name", "str", variable),
        "InstanceType": b.item_value(item, "instance_type", "str", variable),
        "Count": b.item_value(item, "count", "int", variable, 1),
        "Networking": {"SubnetIds": subnets},
    }
    if groups:
        pool["Networking"]["AdditionalSecurityGroups"] = groups
    # Login nodes use the head node's key pair (ParallelCluster >= 3.15 refuses a KeyName here).
    allowed_ips = b.item_value(item, "ssh_allowed_ips", "str", variable)
    if not _blank(allowed_ips):
        pool["Ssh"] = {"AllowedIps": allowed_ips}
    if item.get("gracetime_period") is not None:
        pool["GracetimePeriod"] = b.item_value(item, "gracetime_period", "int", variable)
    if not _blank(item.get("custom_ami")):
        pool["Image"] = {"CustomAmi": b.item_value(item, "custom_ami", "str", variable)}
    pool_policies = b.item_value(item, "iam_policies", "list", variable, policies)
    pool["Iam"] = {"AdditionalIamPolicies": b.policies(pool_policies, None)}
    return pool


def deep_merge(base, extra):
    """A copy of base with extra merged in: mappings recursively, everything else replaced."""
    result = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _leaf_paths(data, path=()):
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaf_paths(value, path + (key,))
    else:
        yield path


def _drop_none(data):
    """Remove keys whose value is None (unset optional values), in place."""
    if isinstance(data, dict):
        for key in [k for k, v in data.items() if v is None]:
            del data[key]
        for value in data.values():
            _drop_none(value)
    elif isinstance(data, list):
        for value in data:
            _drop_none(value)


def variable_for(path, sources):
    """The variable that produced a config path (longest matching prefix of the recorded sources)."""
    parts = parse_path(path)
    for length in range(len(parts), 0, -1):
        key = format_path(parts[:length])
        if key in sources:
            return sources[key]
    if path == "cluster_name":
        return PREFIX + "cluster_name"
    return None


def format_problems(problems, sources=None, cluster_name=None):
    """A human-readable multi-line report of problems, naming variables where known."""
    lines = ["The cluster configuration%s has %d problem%s:" % (
        " of '%s'" % cluster_name if cluster_name else "", len(problems), "" if len(problems) == 1 else "s")]
    for item in problems:
        variable = item.get("variable") or (variable_for(item["path"], sources) if sources else None)
        where = item["path"] or "(config)"
        if variable and item["path"]:
            where = "%s (from %s)" % (item["path"], variable)
        elif variable:
            where = variable
        value = "" if item.get("value") in (None, "") else " [value: %s]" % _short(item["value"], 80)
        lines.append("- %s: %s%s. Fix: %s" % (where, item["message"].rstrip("."), value, item["fix"]))
    return "\n".join(lines)
