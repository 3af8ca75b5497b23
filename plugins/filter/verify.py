# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the verify role: expectations from a ParallelCluster config, and the report formats.

Expectations (what the cluster must look like) are derived from the same config dict that
``hpc.pcluster.cluster_config`` builds and ``pcluster`` stores, so a user states them once:

- ``verify_os``            Image.Os -> {id, version, label} of /etc/os-release
- ``verify_partitions``    queue names
- ``verify_instance_types`` compute instance types (to ask EC2 for their GPUs)
- ``verify_gpu_counts``    EC2 DescribeInstanceTypes answer (+ built-in table fallback) -> {type: info}
- ``verify_nodes``         Slurm node names ParallelCluster gives the compute resources
- ``verify_storage``       SharedStorage -> mounts and accepted file system types
- ``verify_job_comp_loc``  the job-completion log file, when CustomSlurmSettings asks for one
- ``verify_slurm_settings`` Slurm settings the config sets (CustomSlurmSettings, SuspendTime from ScaledownIdletime)
- ``verify_partition_settings`` partition settings it sets (OverSubscribe from JobExclusiveAllocation)

``verify_group_data`` keeps in report.json what each group of checks returned besides its checks.

The report's lines the role prints (shared with the slurm_verify_report module, which writes report.md and
junit.xml, in module_utils/verify/report.py): ``verify_summary_line``, ``verify_failure_message``,
``verify_check_line``, ``verify_not_available_lines``.
"""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.module_utils.instance_types import instance_gpus
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.os_table import OS_RELEASE
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.report import (
    verify_check_line,
    verify_failure_message,
    verify_not_available_lines,
    verify_summary_line,
)

# File system types /proc/mounts shows for each ParallelCluster storage type.
STORAGE_FSTYPES = {
    "FsxLustre": ["lustre"],
    "FileCache": ["lustre"],
    "FsxOpenZfs": ["nfs", "nfs4"],
    "FsxOntap": ["nfs", "nfs4"],
    "Efs": ["nfs4", "nfs", "efs"],
    "Ebs": ["ext4", "xfs"],
}


def _queues(config):
    return ((config or {}).get("Scheduling") or {}).get("SlurmQueues") or []


def _resource_types(resource):
    """Instance types of a compute resource (InstanceType, or the Instances list of a flexible one)."""
    if resource.get("InstanceType"):
        return [resource["InstanceType"]]
    return [i["InstanceType"] for i in resource.get("Instances") or [] if i.get("InstanceType")]


def verify_os(config):
    """Image.Os -> {id, version, label}; None when the config names no OS."""
    label = ((config or {}).get("Image") or {}).get("Os")
    if not label:
        return None
    os_id, version = OS_RELEASE.get(label, (label, ""))
    if not version:
        return None
    return {"id": os_id, "version": version, "label": label}


def verify_partitions(config):
    return [q["Name"] for q in _queues(config) if q.get("Name")]


def verify_instance_types(config):
    types = []
    for queue in _queues(config):
        for resource in queue.get("ComputeResources") or []:
            for itype in _resource_types(resource):
                if itype not in types:
                    types.append(itype)
    return types


def verify_gpu_counts(ec2_instance_types, wanted, overrides=None):
    """GPU count per instance type: EC2's answer, else the built-in table; ``overrides`` ({type: count}) win."""
    return instance_gpus(ec2_instance_types, wanted, overrides)


def verify_nodes(config, gpu_counts=None):
    """Expected Slurm nodes: static ``<queue>-st-<cr>-<n>`` (MinCount) and dynamic ``-dy-`` (the rest)."""
    gpu_counts = gpu_counts or {}
    nodes = []
    for queue in _queues(config):
        for resource in queue.get("ComputeResources") or []:
            types = _resource_types(resource)
            counts = [gpu_counts.get(t, {}).get("count", -1) for t in types] or [-1]
            known = [c for c in counts if c >= 0]
            gpus = min(known) if known and len(known) == len(counts) else -1
            low = int(resource.get("MinCount", 0) or 0)
            high = int(resource.get("MaxCount", 10) if resource.get("MaxCount") is not None else 10)
            efa = bool((resource.get("Efa") or {}).get("Enabled"))
            common = {"partition": queue["Name"], "instance_type": ",".join(types), "gpus": gpus, "efa": efa}
            for index in range(1, low + 1):
                nodes.append(dict(common, name="%s-st-%s-%d" % (queue["Name"], resource["Name"], index), static=True))
            for index in range(1, max(high - low, 0) + 1):
                nodes.append(dict(common, name="%s-dy-%s-%d" % (queue["Name"], resource["Name"], index), static=False))
    return nodes


def verify_storage(config):
    storage = []
    for item in (config or {}).get("SharedStorage") or []:
        storage_type = item.get("StorageType", "")
        storage.append({"name": item.get("Name", ""), "mount": item.get("MountDir", ""), "storage_type": storage_type,
                        "fstypes": list(STORAGE_FSTYPES.get(storage_type, []))})
    return [s for s in storage if s["mount"]]


def verify_job_comp_loc(config):
    """JobCompLoc when CustomSlurmSettings writes job completions to a text file, else ''."""
    settings = {}
    custom = (((config or {}).get("Scheduling") or {}).get("SlurmSettings") or {}).get("CustomSlurmSettings") or []
    for entry in custom:
        if isinstance(entry, dict):
            for key, value in entry.items():
                settings[key.lower()] = value
    if str(settings.get("jobcomptype", "")).lower() != "jobcomp/filetxt":
        return ""
    loc = settings.get("jobcomploc", "")
    return loc if str(loc).startswith("/") else ""


def _slurm_settings(config):
    scheduling = (config or {}).get("Scheduling") or {}
    if not scheduling or str(scheduling.get("Scheduler", "slurm")).lower() != "slurm":
        return None
    return scheduling.get("SlurmSettings") or {}


def verify_slurm_settings(config):
    """[{name, value, source}] of what ``scontrol show config`` must report for the config.

    The global CustomSlurmSettings, and SuspendTime, which ParallelCluster writes as ScaledownIdletime
    (minutes, 10 when unset) times 60.
    """
    slurm = _slurm_settings(config)
    if slurm is None:
        return []
    idle = slurm.get("ScaledownIdletime")
    settings = {"suspendtime": {
        "name": "SuspendTime", "value": str(int(10 if idle is None else idle) * 60),
        "source": "Scheduling.SlurmSettings.ScaledownIdletime: %s" % ("10 (default)" if idle is None else idle)}}
    for entry in slurm.get("CustomSlurmSettings") or []:
        for key, value in (entry.items() if isinstance(entry, dict) else ()):
            settings[str(key).lower()] = {"name": str(key), "value": str(value),
                                          "source": "Scheduling.SlurmSettings.CustomSlurmSettings"}
    return list(settings.values())


def verify_partition_settings(config):
    """[{partition, name, value, source}]: OverSubscribe of each queue's partition (JobExclusiveAllocation)."""
    if _slurm_settings(config) is None:
        return []
    settings = []
    for queue in _queues(config):
        if not queue.get("Name"):
            continue
        exclusive = bool(queue.get("JobExclusiveAllocation", False))
        settings.append({"partition": queue["Name"], "name": "OverSubscribe", "value": "EXCLUSIVE" if exclusive else "NO",
                         "source": "SlurmQueues[%s].JobExclusiveAllocation: %s" % (queue["Name"], str(exclusive).lower())})
    return settings


def verify_group_data(groups):
    """{group: its module result without the checks and Ansible's own keys}: what report.json keeps of each group."""
    internal = ("checks", "invocation", "changed", "failed", "failed_checks", "_ansible_no_log", "warnings", "deprecations")
    return dict((name, dict((k, v) for k, v in (result or {}).items() if k not in internal))
                for name, result in (groups or {}).items())


class FilterModule:
    def filters(self):
        return {
            "verify_os": verify_os,
            "verify_partitions": verify_partitions,
            "verify_instance_types": verify_instance_types,
            "verify_gpu_counts": verify_gpu_counts,
            "verify_nodes": verify_nodes,
            "verify_storage": verify_storage,
            "verify_job_comp_loc": verify_job_comp_loc,
            "verify_slurm_settings": verify_slurm_settings,
            "verify_partition_settings": verify_partition_settings,
            "verify_group_data": verify_group_data,
            "verify_failure_message": verify_failure_message,
            "verify_summary_line": verify_summary_line,
            "verify_check_line": verify_check_line,
            "verify_not_available_lines": verify_not_available_lines,
        }
