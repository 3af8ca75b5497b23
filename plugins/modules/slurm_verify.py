#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: slurm_verify
short_description: Check a ParallelCluster Slurm cluster from its head node in one run
version_added: 0.1.0
description:
  - Runs every post-deploy probe of the C(hpc.pcluster.verify) role on the head node in a single
    module call, so a verification costs one connection instead of one per check.
  - Reads Slurm through its machine-readable output (C(scontrol -o), C(sinfo --format)), never prose.
  - Starts one C(srun) per partition across every expected static compute node that Slurm can use,
    reporting each node's hostname, GPUs (C(nvidia-smi -L) when present, else the GPUs Slurm granted),
    shared storage, container runtimes and EFA.
  - Every check yields C(check), C(node), C(expected), C(seen), C(status) (V(passed), V(failed) or
    V(not_available)) and C(hint).
  - Finds the Slurm commands on E(PATH) or under C(/opt/slurm/bin), where ParallelCluster installs them.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  head_node:
    description: Name used in the C(node) field of checks made on the head node. Defaults to the host name.
    type: str
  slurm_bin_dir:
    description: Directory holding C(scontrol), C(sinfo), C(squeue) and C(srun). Found automatically when empty.
    type: str
    default: ""
  os:
    description: Expected operating system of the head node, as C(ID) and C(VERSION_ID) prefix of C(/etc/os-release).
    type: dict
    suboptions:
      id:
        description: Expected C(ID), for example V(ubuntu) or V(amzn).
        type: str
        required: true
      version:
        description: Expected C(VERSION_ID) or its prefix, for example V(22.04) or V(9).
        type: str
        required: true
      label:
        description: How the expectation is shown in the report, for example V(ubuntu2204).
        type: str
  partitions:
    description: Partitions (queues) that must exist and be C(UP).
    type: list
    elements: str
    default: []
  nodes:
    description: Expected compute nodes.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Slurm node name, for example V(compute-gpu-st-distributed-ml-1).
        type: str
        required: true
      partition:
        description: Partition (queue) of the node.
        type: str
        required: true
      static:
        description: V(true) for a static node (must be up), V(false) for a dynamic node (may be powered down).
        type: bool
        default: true
      instance_type:
        description: EC2 instance type of the node, shown in the report.
        type: str
        default: ""
      gpus:
        description: Number of GPUs the instance type carries; V(-1) when unknown.
        type: int
        default: 0
      efa:
        description: Whether EFA is enabled for the node's compute resource.
        type: bool
        default: false
  storage:
    description:
      - Shared storage that must be mounted read-write, writable and of the expected file system type.
      - Writability is tested where the user running the checks writes, by creating a file with a random
        name (C(mkstemp), C(mktemp)) in C(<mount>/<user>) when that directory exists, else in the mount.
        A mount only root can write to (a fresh FSx file system) where the user has no directory yet is
        reported V(not_available) with how to create the directory, not V(failed).
    type: list
    elements: dict
    default: []
    suboptions:
      mount:
        description: Mount directory, for example V(/fsx).
        type: str
        required: true
      name:
        description: Name of the storage in the cluster config.
        type: str
        default: ""
      storage_type:
        description: ParallelCluster storage type, for example V(FsxLustre).
        type: str
        default: ""
      fstypes:
        description: Accepted file system types as listed in C(/proc/mounts); empty accepts any.
        type: list
        elements: str
        default: []
  slurm_settings:
    description:
      - Slurm settings the cluster config asks for, checked against C(scontrol show config).
      - Numbers compare without their unit (V(1000) is C(1000 sec)); a negative or unset C(SuspendTime) is
        power saving off, however Slurm shows it.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Setting as C(scontrol show config) names it, for example V(SlurmdTimeout).
        type: str
        required: true
      value:
        description: Expected value, for example V(1000).
        type: str
        required: true
      source:
        description: What in the cluster config asks for it, shown in the report.
        type: str
        default: ""
  partition_settings:
    description: Partition settings the cluster config asks for, checked against C(scontrol show partition).
    type: list
    elements: dict
    default: []
    suboptions:
      partition:
        description: Partition (queue) name.
        type: str
        required: true
      name:
        description: Setting as C(scontrol show partition) names it, for example V(OverSubscribe).
        type: str
        required: true
      value:
        description: Expected value, for example V(EXCLUSIVE).
        type: str
        required: true
      source:
        description: What in the cluster config asks for it, shown in the report.
        type: str
        default: ""
  storage_on_compute:
    description: Also check the shared storage on every compute node (inside the test job).
    type: bool
    default: true
  containers:
    description: Check Docker, Enroot and Pyxis.
    type: bool
    default: true
  docker:
    description:
      - With O(containers), check Docker too.
      - False when the nodes are not meant to have Docker (the containers playbook's
        C(containers_docker_enabled=false)); Enroot and Pyxis are checked either way.
    type: bool
    default: true
  pyxis_plugin_path:
    description: Where the Pyxis SPANK plugin must be.
    type: str
    default: /usr/local/lib/slurm/spank_pyxis.so
  container_smoke_image:
    description: When set, run C(srun --container-image=IMAGE true) on one node through Pyxis.
    type: str
    default: ""
  job_comp_loc:
    description: When set, the job-completion log that must record the test job (C(JobCompLoc)).
    type: str
    default: ""
  require_nvidia_smi:
    description: Fail (rather than report not available) when a node expected to carry GPUs has no C(nvidia-smi).
    type: bool
    default: true
  srun_dynamic_nodes:
    description: Also run the test job on dynamic nodes (which may have to be launched first).
    type: bool
    default: false
  srun_timeout:
    description: Seconds to wait for the test job, including the wait for its nodes.
    type: int
    default: 300
  srun_immediate:
    description: Seconds Slurm may wait for free nodes before the test job gives up (C(srun --immediate)).
    type: int
    default: 120
  srun_extra_args:
    description: Extra arguments for every C(srun), for example V(--account=ml).
    type: list
    elements: str
    default: []
  not_available:
    description:
      - Checks (by check name) that cannot be shown in this environment, with the reason.
      - They are still probed where that is harmless, but reported as V(not_available), never V(passed).
    type: dict
    default: {}
notes:
  - In check mode the probes that write (storage writability) or run jobs (C(srun)) are not run and are
    reported as V(not_available).
attributes:
  check_mode:
    support: full
    description: Only reads; the probes that write or run jobs are reported as not available.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
"""

EXAMPLES = r"""
- name: Check the cluster from the head node
  hpc.pcluster.slurm_verify:
    os: {id: ubuntu, version: "22.04", label: ubuntu2204}
    partitions: [compute-gpu]
    nodes:
      - {name: compute-gpu-st-distributed-ml-1, partition: compute-gpu, instance_type: g5.8xlarge, gpus: 1, efa: true}
      - {name: compute-gpu-st-distributed-ml-2, partition: compute-gpu, instance_type: g5.8xlarge, gpus: 1, efa: true}
    storage:
      - {mount: /lustre, storage_type: FsxLustre, fstypes: [lustre]}
      - {mount: /fsx, storage_type: FsxOpenZfs, fstypes: [nfs, nfs4]}
    job_comp_loc: /home/slurm/slurm-job-completions.txt
    slurm_settings:
      - {name: SlurmdTimeout, value: "1000", source: CustomSlurmSettings}
      - {name: SuspendTime, value: "-60", source: "ScaledownIdletime: -1"}
    partition_settings:
      - {partition: compute-gpu, name: OverSubscribe, value: EXCLUSIVE, source: "JobExclusiveAllocation: true"}
    not_available:
      efa: not available in the sandbox
  register: verify
"""

RETURN = r"""
checks:
  description: One entry per check and node.
  returned: always
  type: list
  elements: dict
  sample:
    - check: node_state
      node: compute-gpu-st-distributed-ml-1
      expected: idle, alloc or mix
      seen: IDLE
      status: passed
      hint: ""
failed_checks:
  description: Number of checks whose status is V(failed).
  returned: always
  type: int
  sample: 0
elapsed:
  description: Seconds all probes took on the head node, test job included.
  returned: always
  type: float
  sample: 1.7
slurm_bin_dir:
  description: Directory the Slurm commands were run from.
  returned: always
  type: str
  sample: /opt/slurm/bin
jobs:
  description: The test jobs that were run, one per partition.
  returned: always
  type: list
  elements: dict
  sample:
    - partition: compute-gpu
      nodes: [compute-gpu-st-distributed-ml-1]
      job_id: "42"
      rc: 0
      elapsed: 1.2
      command: [srun, --partition=compute-gpu]
"""

import os
import pwd
import socket
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.pcluster.plugins.module_utils.verify.container_checks import check_containers
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.node_checks import (
    check_node_results,
    check_storage,
    job_groups,
    node_probe_script,
    run_jobs,
    write_probe,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.slurm import node_setup_holds
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.slurm_checks import (
    check_controller,
    check_job_completion,
    check_nodes,
    check_os,
    check_partition_settings,
    check_partitions,
    check_slurm_settings,
    check_squeue,
    find_slurm_bin,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.slurm.parsers import (
    parse_mounts,
    parse_scontrol_config,
    parse_scontrol_records,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.check_report import CheckReport, CommandRunner

ARGUMENT_SPEC = dict(
    head_node=dict(type="str"),
    slurm_bin_dir=dict(type="str", default=""),
    os=dict(type="dict", options=dict(id=dict(type="str", required=True), version=dict(type="str", required=True),
                                      label=dict(type="str"))),
    partitions=dict(type="list", elements="str", default=[]),
    nodes=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True), partition=dict(type="str", required=True),
        static=dict(type="bool", default=True), instance_type=dict(type="str", default=""),
        gpus=dict(type="int", default=0), efa=dict(type="bool", default=False))),
    storage=dict(type="list", elements="dict", default=[], options=dict(
        mount=dict(type="str", required=True), name=dict(type="str", default=""),
        storage_type=dict(type="str", default=""), fstypes=dict(type="list", elements="str", default=[]))),
    slurm_settings=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True), value=dict(type="str", required=True),
        source=dict(type="str", default=""))),
    partition_settings=dict(type="list", elements="dict", default=[], options=dict(
        partition=dict(type="str", required=True), name=dict(type="str", required=True),
        value=dict(type="str", required=True), source=dict(type="str", default=""))),
    storage_on_compute=dict(type="bool", default=True),
    containers=dict(type="bool", default=True),
    docker=dict(type="bool", default=True),
    pyxis_plugin_path=dict(type="str", default="/usr/local/lib/slurm/spank_pyxis.so"),
    container_smoke_image=dict(type="str", default=""),
    job_comp_loc=dict(type="str", default=""),
    require_nvidia_smi=dict(type="bool", default=True),
    srun_dynamic_nodes=dict(type="bool", default=False),
    srun_timeout=dict(type="int", default=300),
    srun_immediate=dict(type="int", default=120),
    srun_extra_args=dict(type="list", elements="str", default=[]),
    not_available=dict(type="dict", default={}),
)


def read_file(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return ""


def check_head_storage(report, head, storage, check_mode):
    """The shared storage on the head node, written where the user running the checks writes."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    mounts = parse_mounts(read_file("/proc/mounts"))
    for item in storage:
        mount = mounts.get(item["mount"])
        written = write_probe(item["mount"], user) if mount is not None and not check_mode else None
        check_storage(report, head, item, mount, written, user, check_mode=check_mode)


def check_slurm(report, runner, params, head):
    """Controller, partitions (and their settings), node states, squeue; returns (Slurm nodes, usable names)."""
    scontrol = runner.slurm("scontrol")
    check_controller(report, head, *runner.run([scontrol, "ping"]))
    rc, out, err = runner.run([scontrol, "-o", "show", "partition"])
    partitions = parse_scontrol_records(out, "PartitionName")
    check_partitions(report, params["partitions"], partitions, rc, err)
    check_partition_settings(report, params["partition_settings"], partitions, rc)
    rc, out, err = runner.run([scontrol, "-o", "show", "node"])
    slurm_nodes = parse_scontrol_records(out, "NodeName")
    held = node_setup_holds.holds(runner.run([scontrol, "show", "reservation", "--oneliner"])[1])
    usable = check_nodes(report, params["nodes"], slurm_nodes, rc, err, run_dynamic=params["srun_dynamic_nodes"],
                         holds=held)
    check_squeue(report, head, *runner.run([runner.slurm("squeue"), "--noheader", "--format=%i|%P|%T|%N"]))
    return slurm_nodes, usable


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    started = time.time()
    params = module.params
    head = params["head_node"] or socket.gethostname()
    check_mode = module.check_mode
    report = CheckReport(params["not_available"])
    slurm_bin = find_slurm_bin(params["slurm_bin_dir"], os.environ.get("PATH", ""))
    runner = CommandRunner(module, slurm_bin)

    check_os(report, head, params["os"], read_file("/etc/os-release"))
    slurm_nodes, usable = check_slurm(report, runner, params, head)

    # One srun per partition (and GPU request) across every usable expected node, all started at once.
    script = node_probe_script([s["mount"] for s in params["storage"]], params["storage_on_compute"] and not check_mode,
                               any(n.get("efa") for n in params["nodes"]), params["containers"])
    jobs = [] if check_mode else run_jobs(runner, params, job_groups(params["nodes"], usable, slurm_nodes), script)
    check_node_results(report, params, params["nodes"], usable, jobs, check_mode)
    check_head_storage(report, head, params["storage"], check_mode)

    slurm_config, rc_c, err_c = {}, 0, ""
    if params["containers"] or params["job_comp_loc"] or params["slurm_settings"]:
        rc_c, out_c, err_c = runner.run([runner.slurm("scontrol"), "show", "config"])
        slurm_config = parse_scontrol_config(out_c)
    check_slurm_settings(report, head, params["slurm_settings"], slurm_config, rc_c, err_c)
    if params["containers"]:
        check_containers(report, runner, params, head, slurm_config, usable, check_mode, read_file)
    if params["job_comp_loc"]:
        check_job_completion(report, head, params["job_comp_loc"], slurm_config, jobs, check_mode, read_file)

    for job in jobs:
        job.pop("stdout", None)
    module.exit_json(changed=False, checks=report.checks, slurm_bin_dir=slurm_bin, jobs=jobs,
                     failed_checks=len(report.failed), elapsed=round(time.time() - started, 2))


if __name__ == "__main__":
    main()
