#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_setup_fleet
short_description: Apply the node-setup bundle on every running compute node with one Slurm job
version_added: 0.1.0
description:
  - Runs on the head node. Finds the compute nodes that are up and free (C(sinfo)), then starts one job per
    partition with one task per node (C(srun --ntasks-per-node=1)); each task applies the node-setup bundle staged
    by role C(hpc.pcluster.node_setup) to its own node (C(run.py fleet)) and prints its result, a JSON text, as
    numbered lines of at most 1000 bytes that the module puts back together.
  - Slurm carries each task's output to C(srun) in messages of at most 1024 bytes and C(srun) writes the messages of
    all tasks as they arrive, so a longer line can be cut by another node's output; lines that fit arrive whole.
  - Returns each node's result (status C(ok), C(up-to-date) or C(failed); the play's ok/changed/failed counts;
    the failed task and its message) and the nodes it left out - busy with jobs, powered down (they apply the
    bundle when they boot), or down/drained/not responding.
  - Does not fail when a node fails; RV(failed_nodes) names them, so that the caller can show the whole summary
    first (role C(hpc.pcluster.node_setup) then fails the play).
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  bundle_dir:
    description: The node-setup directory on shared storage (its C(current) bundle is applied).
    type: path
    required: true
  partitions:
    description: Only nodes of these partitions (queues); empty for every partition.
    type: list
    elements: str
    default: []
  force:
    description: Run the setup play even on nodes that already applied this bundle since they booted.
    type: bool
    default: false
  time_limit_minutes:
    description: The jobs' time limit (C(srun --time)).
    type: int
    default: 30
  allocation_wait_seconds:
    description: How long a job may wait for its nodes (C(srun --immediate)) before it gives up on them.
    type: int
    default: 120
  job_name:
    description: The jobs' name.
    type: str
    default: hpc-pcluster-node-setup
  slurm_bin_dir:
    description: Where C(sinfo) and C(srun) are; empty to look in C(PATH), then C(/opt/slurm/bin).
    type: path
    default: ""
attributes:
  check_mode:
    support: full
    description: Lists the nodes it would run on; starts no job.
  diff_mode:
    support: none
    description: No diff is shown.
"""

EXAMPLES = r"""
- name: Set up every running compute node with one Slurm job
  hpc.pcluster.node_setup_fleet:
    bundle_dir: /opt/slurm/hpc-pcluster/node-setup
  register: fleet

- name: Show one line per node
  ansible.builtin.debug:
    var: fleet.summary
"""

RETURN = r"""
nodes:
  description: One result per node the jobs ran on, sorted by node name.
  returned: always
  type: list
  elements: dict
  sample:
    - node: compute-gpu-st-distributed-ml-1
      status: ok
      ok: 21
      changed: 0
      failed: 0
      changed_tasks: []
      seconds: 14.2
failed_nodes:
  description: The nodes whose setup failed or that gave no result.
  returned: always
  type: list
  elements: str
  sample: [compute-gpu-st-distributed-ml-2]
left_out:
  description: Nodes not set up now, by reason - C(busy), C(powered_down), C(unavailable) (node name to Slurm state).
  returned: always
  type: dict
  sample: {busy: {}, powered_down: {compute-gpu-dy-distributed-ml-1: "idle~"}, unavailable: {}}
jobs:
  description:
    - The jobs started, one per partition - C(partition), C(nodes), C(rc), C(seconds), C(stderr).
    - When the job's output lacks a node's whole result, also C(lines_missing) (those nodes, reported failed) and
      C(stdout_tail) (the end of that output).
  returned: always
  type: list
  elements: dict
summary:
  description: One human-readable line per node, failures with their task and message.
  returned: always
  type: list
  elements: str
"""

import json
import os
import re
import threading
import time

from ansible.module_utils.basic import AnsibleModule

RESULT_MARK = "HPC_PCLUSTER_NODE_SETUP_RESULT"
# sinfo's compact state flags that mean a node is not up to take a job now.
POWER_FLAGS = "~#!%"
UNRESPONSIVE_FLAGS = "*@^$"
FREE = ("idle", "mix")
BUSY = ("alloc", "comp", "drng")


def classify(state):
    """A compact sinfo state (%t, e.g. idle, idle~, alloc, down*) -> target, busy, powered_down or unavailable."""
    base = state.rstrip(POWER_FLAGS + UNRESPONSIVE_FLAGS + "-")
    flags = state[len(base):]
    if any(flag in POWER_FLAGS for flag in flags) or base in ("pow_dn", "pow_up"):
        return "powered_down"
    if any(flag in UNRESPONSIVE_FLAGS for flag in flags):
        return "unavailable"
    if base in FREE:
        return "target"
    if base in BUSY:
        return "busy"
    return "unavailable"


def plan(sinfo_lines, partitions=()):
    """sinfo --Node --format=%N|%P|%t lines -> ({partition: [target nodes]}, {reason: {node: state}})."""
    targets, left_out, seen = {}, {"busy": {}, "powered_down": {}, "unavailable": {}}, set()
    for line in sinfo_lines:
        fields = line.strip().split("|")
        if len(fields) != 3:
            continue
        node, partition, state = fields
        partition = partition.rstrip("*")
        if node in seen or (partitions and partition not in partitions):
            continue
        seen.add(node)
        kind = classify(state)
        if kind == "target":
            targets.setdefault(partition, []).append(node)
        else:
            left_out[kind][node] = state
    return {p: sorted(n) for p, n in sorted(targets.items())}, left_out


RESULT_LINE = re.compile(r"^%s (\S+) (\d+)/(\d+) (.*)$" % RESULT_MARK)


def parse_results(stdout):
    """{node: result} from the tasks' RESULT_MARK lines (run.py's result_lines: a JSON text in numbered parts, the
    lines of different nodes in any order); a node whose parts are not all there, or do not make JSON, is left out."""
    parts = {}
    for line in stdout.splitlines():
        match = RESULT_LINE.match(line)
        if match:
            node, index, count, text = match.groups()
            parts.setdefault((node, int(count)), {})[int(index)] = text
    results = {}
    for (node, count), found in parts.items():
        if sorted(found) != list(range(1, count + 1)):
            continue
        try:
            result = json.loads("".join(found[index] for index in range(1, count + 1)))
        except ValueError:
            continue
        if isinstance(result, dict) and result.get("node"):
            results[result["node"]] = result
    return results


def summary_line(result):
    line = "%s: %s (ok=%s changed=%s failed=%s, %s s)" % (
        result["node"], result.get("status"), result.get("ok", 0), result.get("changed", 0), result.get("failed", 0),
        result.get("seconds", "?"))
    if result.get("changed_tasks"):
        line += "; changed: %s" % ", ".join(result["changed_tasks"])
    if (result.get("slurmd") or {}).get("restarted"):
        line += "; slurmd restarted (its SPANK configuration changed)"
    if result.get("status") == "failed":
        line += "; failed task: %s: %s" % (result.get("failed_task"), " ".join(str(result.get("message", "")).split()))
    return line


def srun_argv(srun, partition, nodes, params):
    bundle = os.path.join(params["bundle_dir"], "current")
    return [srun, "--partition=%s" % partition, "--nodelist=%s" % ",".join(nodes), "--nodes=%d" % len(nodes),
            "--ntasks=%d" % len(nodes), "--ntasks-per-node=1", "--cpus-per-task=1",
            "--job-name=%s" % params["job_name"], "--time=%d" % params["time_limit_minutes"],
            "--immediate=%d" % params["allocation_wait_seconds"], "--kill-on-bad-exit=0", "--no-kill", "--quiet",
            os.path.join(bundle, "venv", "bin", "python"), os.path.join(bundle, "run.py"), "fleet"] + (
                ["--force"] if params["force"] else [])


def run_jobs(run_command, srun, targets, params):
    """One srun per partition, all at once (run_command: AnsibleModule.run_command); the jobs and every node's
    result from the job's output. Each job ends by Slurm's time limit at the latest (srun --time, --immediate)."""
    jobs, threads = [], []

    def run(partition, nodes):
        started = time.time()
        rc, out, err = run_command(srun_argv(srun, partition, nodes, params))
        jobs.append({"partition": partition, "nodes": nodes, "rc": rc, "stdout": out, "stderr": err[-4000:],
                     "seconds": round(time.time() - started, 2)})

    for partition, nodes in targets.items():
        thread = threading.Thread(target=run, args=(partition, nodes))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    results = {}
    for job in sorted(jobs, key=lambda j: j["partition"]):
        stdout = job.pop("stdout") or ""
        found = parse_results(stdout)
        missing = [n for n in job["nodes"] if n not in found]
        if missing:
            # Kept to tell why the job's output lacks results: the nodes concerned and the end of that output.
            job.update(lines_missing=missing, stdout_tail=stdout[-2000:])
        for node in job["nodes"]:
            results[node] = found.get(node) or {
                "node": node, "status": "failed", "failed": 1, "failed_task": "srun",
                "message": "no result from this node (srun exit status %s): %s" % (job["rc"], job["stderr"][-1000:])}
    return sorted(jobs, key=lambda j: j["partition"]), results


def main():
    module = AnsibleModule(argument_spec=dict(
        bundle_dir=dict(type="path", required=True), partitions=dict(type="list", elements="str", default=[]),
        force=dict(type="bool", default=False), time_limit_minutes=dict(type="int", default=30),
        allocation_wait_seconds=dict(type="int", default=120),
        job_name=dict(type="str", default="hpc-pcluster-node-setup"),
        slurm_bin_dir=dict(type="path", default="")), supports_check_mode=True)
    params = module.params
    runner = os.path.join(params["bundle_dir"], "current", "run.py")
    if not os.path.isfile(runner):
        module.fail_json(msg="no node-setup bundle at %s: stage it first (role hpc.pcluster.node_setup, entry point "
                             "stage)" % os.path.join(params["bundle_dir"], "current"))
    opt_dirs = [params["slurm_bin_dir"]] if params["slurm_bin_dir"] else ["/opt/slurm/bin"]
    sinfo = module.get_bin_path("sinfo", required=True, opt_dirs=opt_dirs)
    srun = module.get_bin_path("srun", required=True, opt_dirs=opt_dirs)
    rc, out, err = module.run_command([sinfo, "--noheader", "--Node", "--format=%N|%P|%t"])
    if rc != 0:
        module.fail_json(msg="sinfo failed (%d): %s" % (rc, err.strip() or out.strip()))
    targets, left_out = plan(out.splitlines(), params["partitions"])
    result = dict(changed=False, nodes=[], failed_nodes=[], left_out=left_out, jobs=[], summary=[],
                  targets=dict(targets))
    if not targets or module.check_mode:
        result["summary"] = ["would set up %s (partition %s)" % (", ".join(n), p) for p, n in targets.items()] \
            if module.check_mode else ["no compute node is up and free"]
        module.exit_json(**result)
    jobs, results = run_jobs(module.run_command, srun, targets, params)
    nodes = [results[name] for name in sorted(results)]
    result.update(jobs=jobs, nodes=nodes, summary=[summary_line(r) for r in nodes],
                  failed_nodes=[r["node"] for r in nodes if r.get("status") == "failed"],
                  changed=any(r.get("changed") or (r.get("slurmd") or {}).get("restarted") for r in nodes))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
