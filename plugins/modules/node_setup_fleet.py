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
  - Runs on the head node. Finds the compute nodes that are idle, or held out of scheduling for their setup (a
    Slurm maintenance reservation C(hpc-pcluster-node-setup-<node>)), reserves them for root (a maintenance
    reservation of the job's own, which Slurm refuses when one of them has taken a job since C(sinfo) was read - the
    nodes are then planned again, so a node allocated in between leaves the rest of its partition to be set up),
    then starts one job per partition in that reservation with one task per node (C(srun --ntasks-per-node=1)).
  - Each task runs the node-setup loader (O(loader)), which checks that only root can have written the bundle and
    then applies it to its own node (C(run.py fleet)); it prints its result, a JSON text, as numbered lines of at
    most 1000 bytes that the module puts back together.
  - Slurm carries each task's output to C(srun) in messages of at most 1024 bytes and C(srun) writes the messages of
    all tasks as they arrive, so a longer line can be cut by another node's output; lines that fit arrive whole.
  - Nodes with jobs (C(alloc), C(mix), completing, draining) are left alone - the roles restart Docker, whose
    containers stop, and slurmd - and named; they get the setup at their next boot, or from the next run once they
    are free. Powered-down nodes apply the bundle when they boot.
  - A node the job could not set up (no result, or a failed one) is held out of scheduling until a later run or
    its next boot sets it up; the holds of nodes set up now, or powered down, are released.
  - Returns each node's result (status C(ok), C(up-to-date) or C(failed); the play's ok/changed/failed counts;
    the failed task and its message), the nodes it left out, held and released.
  - Does not fail when a node fails; RV(failed_nodes) names them, so that the caller can show the whole summary
    first (role C(hpc.pcluster.node_setup) then fails the play).
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  bundle_dir:
    description: The node-setup directory on shared storage (its C(current) bundle is applied).
    type: path
    required: true
  loader:
    description:
      - The text of the node-setup loader (C(roles/node_setup/files/hpc-pcluster-node-setup.sh) of the collection the
        controller runs), which each task runs with C(bash -c); it is never read from shared storage.
    type: str
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
    description: Where C(sinfo), C(srun) and C(scontrol) are; empty to look in C(PATH), then C(/opt/slurm/bin).
    type: path
    default: ""
attributes:
  check_mode:
    support: full
    description: Lists the nodes it would run on; starts no job, holds and releases nothing.
  diff_mode:
    support: none
    description: No diff is shown.
"""

EXAMPLES = r"""
- name: Set up every running compute node with one Slurm job
  hpc.pcluster.node_setup_fleet:
    bundle_dir: /opt/slurm/hpc-pcluster/node-setup
    loader: "{{ lookup('ansible.builtin.file', 'hpc-pcluster-node-setup.sh') }}"
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
  description:
    - Nodes not set up now, by reason - C(busy) (with jobs), C(powered_down), C(unavailable) (down, drained, in a
      maintenance reservation of someone else's, not responding) - node name to Slurm state.
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
held:
  description: The nodes this run held out of scheduling until their setup succeeds, with what failed.
  returned: always
  type: dict
  sample: {compute-gpu-st-distributed-ml-2: srun}
released:
  description: The nodes whose hold this run released (set up now, or powered down).
  returned: always
  type: list
  elements: str
  sample: [compute-gpu-st-distributed-ml-1]
targets:
  description: The nodes the jobs ran on (check mode - would run on), by partition.
  returned: always
  type: dict
summary:
  description: One human-readable line per node, failures with their task and message, then the holds.
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

from ansible_collections.hpc.pcluster.plugins.module_utils.slurm import node_setup_holds
from ansible_collections.hpc.pcluster.plugins.module_utils.slurm.node_states import node_setup_kind

RESULT_MARK = "HPC_PCLUSTER_NODE_SETUP_RESULT"
# How often the nodes are planned and reserved again when one takes a job in between.
RESERVE_ATTEMPTS = 3
OK_STATUSES = ("ok", "up-to-date")


def plan(sinfo_lines, partitions=(), held=()):
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
        kind = node_setup_kind(state, node in held)
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


def srun_argv(srun, partition, nodes, params, reservation):
    """One task per node, in the fleet job's reservation, each running the loader (its text, from the controller's
    collection, never from shared storage): it checks that only root can have written the bundle, then runs it."""
    return [srun, "--partition=%s" % partition, "--nodelist=%s" % ",".join(nodes), "--nodes=%d" % len(nodes),
            "--ntasks=%d" % len(nodes), "--ntasks-per-node=1", "--cpus-per-task=1",
            "--job-name=%s" % params["job_name"], "--time=%d" % params["time_limit_minutes"],
            "--immediate=%d" % params["allocation_wait_seconds"], "--reservation=%s" % reservation,
            "--kill-on-bad-exit=0", "--no-kill", "--quiet",
            "/bin/bash", "-c", params["loader"], "hpc-pcluster-node-setup", "--dir", params["bundle_dir"], "--fleet"] + (
                ["--force"] if params["force"] else [])


def run_jobs(run_command, srun, targets, params, reservation):
    """One srun per partition, all at once (run_command: AnsibleModule.run_command); the jobs and every node's
    result from the job's output. Each job ends by Slurm's time limit at the latest (srun --time, --immediate)."""
    jobs, threads = [], []

    def run(partition, nodes):
        started = time.time()
        rc, out, err = run_command(srun_argv(srun, partition, nodes, params, reservation))
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


class Fleet:
    """The Slurm commands of the fleet job, on the head node."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        opt_dirs = [self.params["slurm_bin_dir"]] if self.params["slurm_bin_dir"] else ["/opt/slurm/bin"]
        self.sinfo, self.srun, self.scontrol = (module.get_bin_path(name, required=True, opt_dirs=opt_dirs)
                                                for name in ("sinfo", "srun", "scontrol"))

    def run(self, argv):
        return self.module.run_command(argv)

    def read(self, argv, what):
        rc, out, err = self.run(argv)
        if rc != 0:
            self.module.fail_json(msg="%s failed (%d): %s" % (what, rc, err.strip() or out.strip()))
        return out

    def holds(self):
        return node_setup_holds.holds(self.read([self.scontrol, "show", "reservation", "--oneliner"],
                                                "scontrol show reservation"))

    def plan(self, held):
        out = self.read([self.sinfo, "--noheader", "--Node", "--format=%N|%P|%t"], "sinfo")
        return plan(out.splitlines(), self.params["partitions"], held)

    def reserve(self, held):
        """(the fleet job's reservation, targets, left_out): the target nodes reserved for root, planned again
        when one of them took a job since sinfo was read (Slurm refuses the reservation then)."""
        for _attempt in range(RESERVE_ATTEMPTS):
            targets, left_out = self.plan(held)
            if not targets:
                return None, targets, left_out
            name = "%s-%d" % (node_setup_holds.job_reservation_name(), os.getpid())
            nodes = sorted(n for members in targets.values() for n in members)
            rc, out, err = self.run(node_setup_holds.job_reservation_argv(
                self.scontrol, name, nodes, self.params["time_limit_minutes"] + 1))
            if rc == 0:
                return name, targets, left_out
            if node_setup_holds.BUSY_MARK not in (out + err).lower():
                self.module.fail_json(msg="reserving the nodes for the node-setup job failed: %s" % (err or out).strip())
        self.module.fail_json(msg="the compute nodes took jobs each of the %d times they were about to be reserved "
                                  "for the node-setup job: run the play again" % RESERVE_ATTEMPTS)

    def settle_holds(self, results, held, powered_down):
        """Release the holds of nodes now set up, or powered down (they apply the bundle when they boot); hold the
        nodes the job could not set up. Returns (held {node: why}, released [node], errors {node: error})."""
        now_held, released, errors = {}, [], {}
        done = [n for n, r in results.items() if r.get("status") in OK_STATUSES] + list(powered_down)
        for node in sorted(set(done) & set(held)):
            error = node_setup_holds.release(self.run, self.scontrol, held[node])
            if error:
                errors[node] = error
            else:
                released.append(node)
        for node, result in sorted(results.items()):
            if result.get("status") in OK_STATUSES:
                continue
            error = None if node in held else node_setup_holds.hold(self.run, self.scontrol, node)
            if error:
                errors[node] = error
            else:
                now_held[node] = result.get("failed_task") or "no result"
        return now_held, released, errors


def hold_lines(now_held, released, errors):
    lines = ["%s: held out of scheduling until its setup succeeds (Slurm reservation %s; failed: %s)"
             % (node, node_setup_holds.hold_name(node), why) for node, why in sorted(now_held.items())]
    if released:
        lines.append("released from their hold for setup: %s" % ", ".join(released))
    lines.extend("%s: its hold for setup could not be changed: %s" % item for item in sorted(errors.items()))
    return lines


def main():
    module = AnsibleModule(argument_spec=dict(
        bundle_dir=dict(type="path", required=True), loader=dict(type="str", required=True),
        partitions=dict(type="list", elements="str", default=[]),
        force=dict(type="bool", default=False), time_limit_minutes=dict(type="int", default=30),
        allocation_wait_seconds=dict(type="int", default=120),
        job_name=dict(type="str", default="hpc-pcluster-node-setup"),
        slurm_bin_dir=dict(type="path", default="")), supports_check_mode=True)
    params = module.params
    runner = os.path.join(params["bundle_dir"], "current", "run.py")
    if not os.path.isfile(runner):
        module.fail_json(msg="no node-setup bundle at %s: stage it first (role hpc.pcluster.node_setup, entry point "
                             "stage)" % os.path.join(params["bundle_dir"], "current"))
    fleet = Fleet(module)
    held = fleet.holds()
    if module.check_mode:
        targets, left_out = fleet.plan(held)
        module.exit_json(changed=False, nodes=[], failed_nodes=[], left_out=left_out, jobs=[], targets=targets,
                         held={}, released=[], summary=["would set up %s (partition %s)" % (", ".join(n), p)
                                                        for p, n in targets.items()])
    reservation, targets, left_out = fleet.reserve(held)
    jobs, results = [], {}
    if reservation:
        try:
            jobs, results = run_jobs(module.run_command, fleet.srun, targets, params, reservation)
        finally:
            node_setup_holds.release(fleet.run, fleet.scontrol, reservation)
    now_held, released, errors = fleet.settle_holds(results, held, left_out["powered_down"])
    nodes = [results[name] for name in sorted(results)]
    module.exit_json(
        changed=bool(now_held or released) or any(r.get("changed") or (r.get("slurmd") or {}).get("restarted")
                                                  for r in nodes),
        nodes=nodes, failed_nodes=sorted({r["node"] for r in nodes if r.get("status") == "failed"} | set(errors)),
        left_out=left_out, jobs=jobs, targets=targets, held=now_held, released=released,
        summary=([summary_line(r) for r in nodes] or ["no compute node is up and free"])
        + hold_lines(now_held, released, errors))


if __name__ == "__main__":
    main()
