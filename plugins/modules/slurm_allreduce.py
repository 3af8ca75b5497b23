#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: slurm_allreduce
short_description: Run an all-reduce across the compute nodes of a Slurm cluster and judge it
version_added: 0.1.0
description:
  - Runs, from the head node, one all-reduce per group of compute nodes and judges what it printed. The run
    must finish on every node, C(#wrong) must be 0 for every message size, the bus bandwidth at the
    largest message must reach a fraction of the expected figure, and on GPU nodes NCCL must use EFA.
  - "O(runs[].backend=nccl): nccl-tests C(all_reduce_perf), one task per GPU, through Pyxis
    (C(srun --container-image)) with the NCCL/EFA environment of O(nccl_env)."
  - "O(runs[].backend=mpi): an MPI all-reduce (mpi4py, one rank per node) started by C(mpirun) inside
    C(salloc); the program is passed with C(python -c), so nothing is copied to the nodes. It prints the
    nccl-tests table, so both are read and judged the same way."
  - Every check yields C(check), C(node) (the group's nodes as a Slurm host list), C(expected), C(seen),
    C(status) and C(hint), and C(detail) (the bandwidth table) where there is one.
  - Used by the C(distributed) checks of the C(hpc.pcluster.verify) role.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  runs:
    description: The groups to run an all-reduce on, normally one per compute resource with static nodes.
    type: list
    elements: dict
    required: true
    suboptions:
      label:
        description: Name of the group in the checks' C(node) field, for example V(compute-gpu-st-distributed-ml-[1-2]).
        type: str
        required: true
      backend:
        description: V(nccl) for GPU nodes, V(mpi) for the others.
        type: str
        required: true
        choices: [nccl, mpi]
      partition:
        description: Slurm partition (queue) of the nodes.
        type: str
        required: true
      nodes:
        description: Slurm node names to run on (the usable static nodes of the group).
        type: list
        elements: str
        required: true
      excluded:
        description: Nodes of the group left out because they are not usable, each C({name, reason}).
        type: list
        elements: dict
        default: []
      instance_type:
        description: EC2 instance type of the nodes, shown in the checks.
        type: str
        default: ""
      gpus_per_node:
        description: GPUs per node; the NCCL run starts one task per GPU.
        type: int
        default: 0
      efa:
        description: EFA is enabled for the nodes, so NCCL must use it.
        type: bool
        default: false
      expected_busbw:
        description: Expected bus bandwidth in GB/s (the nodes' network bandwidth); unset when unknown.
        type: float
      expected_source:
        description: Where O(runs[].expected_busbw) comes from, shown in the report.
        type: str
        default: ""
      min_fraction:
        description: Pass when the bus bandwidth at the largest message is at least this fraction of the expected one.
        type: float
        default: 0.5
      skip_reason:
        description: When set, the group is not run and its checks are reported V(not_available) with this reason.
        type: str
        default: ""
  slurm_bin_dir:
    description: Directory holding C(srun) and C(salloc). Found on E(PATH) or in C(/opt/slurm/bin) when empty.
    type: str
    default: ""
  timeout:
    description: Seconds one run may take, including the wait for its nodes and, for NCCL, the image pull.
    type: int
    default: 900
  immediate:
    description: Seconds Slurm may wait for the nodes before the run gives up (C(--immediate)).
    type: int
    default: 120
  extra_args:
    description: Extra arguments for every C(srun) and C(salloc), for example V(--account=ml).
    type: list
    elements: str
    default: []
  nccl_image:
    description: Container image with nccl-tests and aws-ofi-nccl, as C(srun --container-image) takes it (registry
      reference C(registry#image:tag) or a C(.sqsh) path on shared storage).
    type: str
    default: ""
  nccl_command:
    description: The benchmark and its arguments, run inside the container.
    type: list
    elements: str
    default: [/opt/nccl-tests/build/all_reduce_perf, -b, "8", -e, 2G, -f, "2", -g, "1", -c, "1", -n, "20"]
  nccl_env:
    description: Environment of the NCCL run (libfabric and NCCL variables); Pyxis passes it into the container.
    type: dict
    default: {}
  nccl_srun_args:
    description: Further C(srun) arguments of the NCCL run.
    type: list
    elements: str
    default: [--mpi=pmix, --cpu-bind=none]
  nccl_container_mounts:
    description: C(--container-mounts) of the NCCL run; empty mounts nothing.
    type: str
    default: ""
  mpirun:
    description: The C(mpirun) to use; empty finds it on E(PATH), then C(/opt/amazon/openmpi/bin/mpirun).
    type: str
    default: ""
  mpirun_args:
    description: Further C(mpirun) arguments, for example the transport (V(--mca), V(btl), V(tcp,self)).
    type: list
    elements: str
    default: []
  mpi_python:
    description: Python with mpi4py on the compute nodes.
    type: str
    default: /usr/bin/python3
  mpi_min_bytes:
    description: Smallest message of the MPI all-reduce, in bytes.
    type: int
    default: 1024
  mpi_max_bytes:
    description: Largest message of the MPI all-reduce, in bytes; the bandwidth is judged there.
    type: int
    default: 16777216
  mpi_factor:
    description: Factor between one message size and the next.
    type: int
    default: 4
  mpi_iters:
    description: Timed all-reduces per size (after one untimed warm-up).
    type: int
    default: 5
  not_available:
    description:
      - "Checks that cannot be shown in this environment, C({name: reason}); a name is a check name, C(check:node),
        the family V(nccl) or V(mpi), or V(distributed). Reported V(not_available), never V(passed)."
      - A group whose every check is named here is not run.
    type: dict
    default: {}
notes:
  - In check mode nothing runs; the checks are reported V(not_available).
attributes:
  check_mode:
    support: full
    description: Nothing runs in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
"""

EXAMPLES = r"""
- name: MPI all-reduce across two CPU nodes
  hpc.pcluster.slurm_allreduce:
    runs:
      - label: compute-st-c5n-[1-2]
        backend: mpi
        partition: compute
        nodes: [compute-st-c5n-1, compute-st-c5n-2]
        instance_type: c5n.18xlarge
        expected_busbw: 12.5
        expected_source: "c5n.18xlarge: 100 Gbps (EC2 DescribeInstanceTypes)"
        min_fraction: 0.25

- name: nccl-tests across two p5.48xlarge through Pyxis
  hpc.pcluster.slurm_allreduce:
    nccl_image: /fsx/images/nccl-tests.sqsh
    nccl_env: {FI_PROVIDER: efa, FI_EFA_FORK_SAFE: "1", NCCL_DEBUG: INFO}
    runs:
      - label: gpu-st-p5-[1-2]
        backend: nccl
        partition: gpu
        nodes: [gpu-st-p5-1, gpu-st-p5-2]
        gpus_per_node: 8
        efa: true
        expected_busbw: 400
        expected_source: "p5.48xlarge: 3200 Gbps"
"""

RETURN = r"""
checks:
  description: One entry per check and group.
  returned: always
  type: list
  elements: dict
  sample:
    - check: mpi_allreduce_bandwidth
      node: compute-gpu-st-distributed-ml-[1-2]
      expected: ">= 0.1 x 0.780 GB/s = 0.078 GB/s bus bandwidth at the largest message (...)"
      seen: "0.231 GB/s at 16 MiB (peak 0.231 GB/s; average over 8 sizes 0.061 GB/s)"
      status: passed
      hint: ""
      detail: "size  busbw oop GB/s ..."
failed_checks:
  description: Number of checks whose status is V(failed).
  returned: always
  type: int
  sample: 0
runs:
  description: What each group's run did and measured, for the report.
  returned: always
  type: list
  elements: dict
  sample:
    - backend: mpi
      label: compute-gpu-st-distributed-ml-[1-2]
      nodes: [compute-gpu-st-distributed-ml-1, compute-gpu-st-distributed-ml-2]
      rc: 0
      sizes: [{size: 16777216, busbw_oop: 0.231, busbw_ip: 0.226, wrong_oop: 0, wrong_ip: 0}]
      busbw_at_largest: 0.231
      expected: {busbw: 0.78, fraction: 0.1, threshold: 0.078, source: "..."}
elapsed:
  description: Seconds all runs took.
  returned: always
  type: float
  sample: 4.2
"""

import math
import os
import shutil
import time
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.pcluster.plugins.module_utils.allreduce.judge import (
    finish_checks,
    judge_run,
    not_run_checks,
    planned_checks,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.allreduce.program import program_argv
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.check_report import FAILED

JOB_NAME = "hpc-pcluster-verify-allreduce"
SLURM_BIN_CANDIDATES = ("/opt/slurm/bin", "/usr/bin", "/usr/local/bin")
MPIRUN_CANDIDATES = ("/opt/amazon/openmpi/bin/mpirun", "/usr/bin/mpirun")
TAIL_LINES = 40


def find_command(preferred, name, candidates):
    """preferred, else name on PATH, else the first candidate that exists, else name."""
    if preferred:
        return preferred
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return name


def allocation_args(spec, params, tasks_per_node, job_name):
    minutes = max(1, int(math.ceil(params["timeout"] / 60.0)))
    return ["--partition=%s" % spec["partition"], "--nodes=%d" % len(spec["nodes"]),
            "--nodelist=%s" % ",".join(spec["nodes"]), "--ntasks-per-node=%d" % tasks_per_node,
            "--job-name=%s" % job_name, "--time=%d" % minutes, "--immediate=%d" % params["immediate"], "--quiet"]


def nccl_command(spec, params, slurm_bin, job_name):
    """(argv, environment, argv to show) of the nccl-tests run through Pyxis."""
    gpus = max(int(spec.get("gpus_per_node") or 0), 1)
    argv = [os.path.join(slurm_bin, "srun")] + allocation_args(spec, params, gpus, job_name)
    argv += ["--gpus-per-node=%d" % gpus, "--exclusive", "--container-image=%s" % params["nccl_image"]]
    if params["nccl_container_mounts"]:
        argv.append("--container-mounts=%s" % params["nccl_container_mounts"])
    argv += list(params["nccl_srun_args"]) + list(params["extra_args"]) + list(params["nccl_command"])
    env = dict((str(k), str(v)) for k, v in (params["nccl_env"] or {}).items())
    return argv, env, argv


def mpi_command(spec, params, slurm_bin, job_name):
    """(argv, environment, argv to show) of the MPI all-reduce: salloc, then mpirun inside the allocation."""
    mpirun = find_command(params["mpirun"], "mpirun", MPIRUN_CANDIDATES)
    program = program_argv(params["mpi_python"], params["mpi_min_bytes"], params["mpi_max_bytes"],
                           params["mpi_factor"], params["mpi_iters"], 1)
    argv = [os.path.join(slurm_bin, "salloc")] + allocation_args(spec, params, 1, job_name) + list(params["extra_args"])
    argv += [mpirun] + list(params["mpirun_args"]) + program
    env = {}
    if os.geteuid() == 0:
        # Open MPI refuses root unless told; the checks run as root only with verify_become.
        env = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    shown = [a if a != program[2] else "<mpi4py all-reduce program>" for a in argv]
    return argv, env, shown


def run_group(module, spec, params, slurm_bin):
    """(checks, summary) of one group."""
    job_name = "%s-%s" % (JOB_NAME, uuid.uuid4().hex[:8])
    if spec["backend"] == "nccl":
        argv, env, shown = nccl_command(spec, params, slurm_bin, job_name)
    else:
        argv, env, shown = mpi_command(spec, params, slurm_bin, job_name)
    started = time.time()
    # stdin is a pipe, never the terminal become may have opened: salloc with a terminal on stdin wants to be its
    # foreground job ("no controlling terminal: please set --no-shell" under su).
    rc, out, err = module.run_command(["timeout", "--kill-after=15", str(int(params["timeout"]))] + argv,
                                      check_rc=False, environ_update=env, data="\n", binary_data=True)
    elapsed = round(time.time() - started, 2)
    killed = rc == 124
    text = out + ("\n" + err if err else "")
    if killed:
        # srun/salloc stopped at the time limit may leave their job behind: end it by its unique name.
        module.run_command([os.path.join(slurm_bin, "scancel"), "--name=%s" % job_name], check_rc=False)
        text += "\ntimed out after %ss (verify_distributed_timeout)" % params["timeout"]
    elif rc == 127 and not out.strip():
        text += "\nerror: %s: command not found" % argv[0]
    checks, summary = judge_run(spec, text, rc, elapsed, killed=killed)
    summary.update(command=shown, environment=env, job_name=job_name, output_tail=text.splitlines()[-TAIL_LINES:])
    return checks, summary


def planned_summary(spec, reason):
    return {"backend": spec["backend"], "label": spec["label"], "partition": spec["partition"],
            "instance_type": spec.get("instance_type", ""), "nodes": list(spec["nodes"]),
            "excluded": list(spec.get("excluded") or []), "gpus_per_node": spec.get("gpus_per_node", 0),
            "efa": bool(spec.get("efa")), "not_run": reason, "sizes": [],
            "expected": {"busbw": spec.get("expected_busbw"), "fraction": spec.get("min_fraction"),
                         "threshold": round(spec["expected_busbw"] * spec["min_fraction"], 4)
                         if spec.get("expected_busbw") else None,
                         "source": spec.get("expected_source", "")}}


def families(spec):
    return (spec["backend"], "distributed")


def skip_reason(spec, params, check_mode):
    """Why a group is not run (reported not_available), or '' to run it."""
    if spec.get("skip_reason"):
        return spec["skip_reason"]
    if check_mode:
        return "not run in check mode"
    planned = finish_checks(planned_checks(spec), params["not_available"], families(spec))
    if all(c["status"] == "not_available" for c in planned):
        return planned[0]["hint"]
    return ""


def argument_spec():
    run_options = dict(
        label=dict(type="str", required=True), backend=dict(type="str", required=True, choices=["nccl", "mpi"]),
        partition=dict(type="str", required=True), nodes=dict(type="list", elements="str", required=True),
        excluded=dict(type="list", elements="dict", default=[]), instance_type=dict(type="str", default=""),
        gpus_per_node=dict(type="int", default=0), efa=dict(type="bool", default=False),
        expected_busbw=dict(type="float"), expected_source=dict(type="str", default=""),
        min_fraction=dict(type="float", default=0.5), skip_reason=dict(type="str", default=""))
    return dict(
        runs=dict(type="list", elements="dict", required=True, options=run_options),
        slurm_bin_dir=dict(type="str", default=""),
        timeout=dict(type="int", default=900),
        immediate=dict(type="int", default=120),
        extra_args=dict(type="list", elements="str", default=[]),
        nccl_image=dict(type="str", default=""),
        nccl_command=dict(type="list", elements="str", default=[
            "/opt/nccl-tests/build/all_reduce_perf", "-b", "8", "-e", "2G", "-f", "2", "-g", "1", "-c", "1", "-n", "20"]),
        nccl_env=dict(type="dict", default={}),
        nccl_srun_args=dict(type="list", elements="str", default=["--mpi=pmix", "--cpu-bind=none"]),
        nccl_container_mounts=dict(type="str", default=""),
        mpirun=dict(type="str", default=""),
        mpirun_args=dict(type="list", elements="str", default=[]),
        mpi_python=dict(type="str", default="/usr/bin/python3"),
        mpi_min_bytes=dict(type="int", default=1024),
        mpi_max_bytes=dict(type="int", default=16777216),
        mpi_factor=dict(type="int", default=4),
        mpi_iters=dict(type="int", default=5),
        not_available=dict(type="dict", default={}),
    )


def argument_problems(params):
    """Every problem with the arguments, each naming the argument, the value and the fix."""
    problems = []
    if params["mpi_factor"] < 2:
        problems.append("mpi_factor must be 2 or more (got %d)" % params["mpi_factor"])
    if params["mpi_min_bytes"] < 4 or params["mpi_min_bytes"] > params["mpi_max_bytes"]:
        problems.append("mpi_min_bytes must be 4 or more and at most mpi_max_bytes (got %d and %d)"
                        % (params["mpi_min_bytes"], params["mpi_max_bytes"]))
    if any(r["backend"] == "nccl" and not r.get("skip_reason") for r in params["runs"]) and not params["nccl_image"]:
        problems.append("nccl_image is empty: set verify_distributed_nccl_image to an image with nccl-tests")
    return problems


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    problems = argument_problems(params)
    if problems:
        module.fail_json(msg="slurm_allreduce: " + "; ".join(problems))
    slurm_bin = params["slurm_bin_dir"] or os.path.dirname(
        find_command("", "srun", [os.path.join(d, "srun") for d in SLURM_BIN_CANDIDATES]))
    started = time.time()
    checks, runs = [], []
    for spec in params["runs"]:
        reason = skip_reason(spec, params, module.check_mode)
        if reason:
            found, summary = not_run_checks(spec, reason, True), planned_summary(spec, reason)
        elif len(spec["nodes"]) < 2:
            reason = "fewer than 2 usable nodes (see node_state)"
            found, summary = not_run_checks(spec, reason, False), planned_summary(spec, reason)
        else:
            found, summary = run_group(module, spec, params, slurm_bin)
        checks += finish_checks(found, params["not_available"], families(spec))
        runs.append(summary)
    module.exit_json(changed=False, checks=checks, runs=runs,
                     failed_checks=len([c for c in checks if c["status"] == FAILED]),
                     elapsed=round(time.time() - started, 2))


if __name__ == "__main__":
    main()
