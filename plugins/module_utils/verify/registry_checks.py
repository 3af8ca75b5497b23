# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verify role's checks of an image from a private registry, started on every compute node through Pyxis.

- ``container_registry``: one ``srun --container-image=<registry image>`` per partition across the usable
  compute nodes; each node pulls the image with its own credentials (Enroot's credentials file) and starts it.
- ``container_staged``: the same job from the image staged once on shared storage (module
  enroot_stage_image), when it is there: no node pulls.

Each is timed (the job's wall time: pull or import included) and each node's answer is its name printed from
inside the container. A node that fails to authenticate is asked, with one more job, what ``aws ecr
get-login-password`` says there, and the check says the node has no ECR credentials and names the policy.
"""

from __future__ import annotations

import re
import time
import uuid

from ansible_collections.hpc.pcluster.plugins.module_utils.registry.ecr import registry_region, unauthorized_hint

MARK = "hpc-pcluster-container-ok"
DIAG_MARK = "hpc-pcluster-ecr-password"
# Printed from inside the container: the mark and the node (Pyxis passes the job's environment in).
CONTAINER_COMMAND = ["sh", "-c", 'echo "%s $SLURMD_NODENAME"' % MARK]
# Run on a node that could not pull (outside any container): what the AWS CLI says when asked for a password.
DIAG_SCRIPT = ('if err=$("$0" ecr get-login-password --region "$1" 2>&1 >/dev/null); then echo "%s $SLURMD_NODENAME ok"; '
               'else echo "%s $SLURMD_NODENAME $(printf %%s "$err" | tr "\\n" " " | cut -c1-300)"; fi' % (DIAG_MARK, DIAG_MARK))


# What Slurm prefixes a node's error lines with, and the lines of a failed pull worth showing.
_NODE_PREFIX = re.compile(r"^slurmstepd-(?P<node>[^:]+): (error: )?(pyxis: )?\s*")
_SHOWN = re.compile(r"\[ERROR\]|failed to import|Authenticat|Using credentials|error code: [0-9]{3}|curl: ")


def pull_failure(text, node=None):
    """What a failed pull's output says (of node's lines, when it has some): (kind, the lines that show it).

    kind: auth (HTTP 401, or Enroot stopped after "Authenticating with user" without "Authentication succeeded":
    Enroot 4.1.2 does not print a 401 from a registry with Basic authentication), not_found, network or other."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    mine = [line for line in lines if node and line.startswith("slurmstepd-%s:" % node)]
    lines = [_NODE_PREFIX.sub("", line) for line in (mine or lines)]
    joined = "\n".join(lines)
    if "401" in joined or "Unauthorized" in joined or (
            "Authenticating with user" in joined and "Authentication succeeded" not in joined):
        kind = "auth"
    elif "404" in joined or "manifest unknown" in joined.lower():
        kind = "not_found"
    elif "Could not resolve host" in joined or "Failed to connect" in joined or "timed out" in joined:
        kind = "network"
    else:
        kind = "other"
    shown = [line for line in lines if _SHOWN.search(line)][-5:] or lines[-3:]
    return kind, "; ".join(shown)[:600]


def group_by_partition(runner, names):
    """{partition: [node names]}: each node in the first partition sinfo lists it in (the default one first)."""
    _rc, out, _err = runner.run([runner.slurm("sinfo"), "--noheader", "--Node", "--format=%N %P"])
    partition_of = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] not in partition_of:
            partition_of[fields[0]] = fields[1].rstrip("*")
    groups = {}
    for name in names:
        groups.setdefault(partition_of.get(name, ""), []).append(name)
    return groups


def run_image(runner, params, partition, names, image):
    """One srun starting image on every node of names; returns the run's record (nodes that answered, time)."""
    argv = [runner.slurm("srun")] + (["--partition=%s" % partition] if partition else []) + [
        "--nodes=%d" % len(names), "--ntasks-per-node=1", "--nodelist=%s" % ",".join(names),
        "--job-name=hpc-pcluster-verify-image-" + uuid.uuid4().hex[:8], "--quiet",
        "--immediate=%d" % params["srun_immediate"], "--container-image=%s" % image]
    argv += list(params["srun_extra_args"]) + CONTAINER_COMMAND
    started = time.monotonic()
    rc, out, err = runner.run(argv, timeout=params["timeout"])
    answered = sorted(set(line.split()[1] for line in out.splitlines()
                          if line.startswith(MARK + " ") and len(line.split()) > 1) & set(names))
    return dict(partition=partition, nodes=list(names), image=image, rc=rc, seconds=round(time.monotonic() - started, 2),
                answered=answered, stderr=(err or "")[-3000:])


def ask_password(runner, params, partition, names, registry):
    """{node: what `aws ecr get-login-password` says there}, from one job on the nodes."""
    argv = [runner.slurm("srun")] + (["--partition=%s" % partition] if partition else []) + [
        "--nodes=%d" % len(names), "--ntasks-per-node=1", "--nodelist=%s" % ",".join(names), "--quiet",
        "--immediate=%d" % params["srun_immediate"]] + list(params["srun_extra_args"]) + [
        "/bin/sh", "-c", DIAG_SCRIPT, params["aws_cli"], registry_region(registry)]
    _rc, out, _err = runner.run(argv, timeout=120)
    said = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 3 and parts[0] == DIAG_MARK:
            said[parts[1]] = parts[2]
    return said


AUTH_NOTE = ", the registry refused the node's password (Enroot stopped after authenticating)"


def _failure_hint(kind, registry, said):
    if kind != "auth":
        return {"not_found": "the registry has no such image or tag: check the image's name",
                "network": "the node could not reach the registry: check its name resolution and route (VPC endpoints "
                           "or NAT for ECR)"}.get(kind, "the image could not be pulled or started: see the error")
    hint = unauthorized_hint(registry)
    if said and said != "ok":
        hint += " On the node, aws ecr get-login-password says: %s" % said
    elif said == "ok":
        hint += " (the node's AWS CLI gets an ECR password: check Enroot's credentials file for %s)" % registry
    return hint


def check_pull(report, runner, params, run, registry):
    """container_registry for each node of one run, asking the failed nodes for their ECR password when they
    could not authenticate."""
    failed = [name for name in run["nodes"] if name not in run["answered"]]
    kinds = dict((name, pull_failure(run["stderr"], name)) for name in failed)
    auth = [name for name in failed if kinds[name][0] == "auth"]
    said = ask_password(runner, params, run["partition"], auth, registry) if auth and registry_region(registry) else {}
    run["failure"] = dict(nodes=failed, kinds=dict((name, kinds[name][0]) for name in failed),
                          detail=dict((name, kinds[name][1]) for name in failed), password=said) if failed else {}
    expected = "pulls %s with its own credentials and starts it through Pyxis" % params["image"]
    for name in run["nodes"]:
        if name in run["answered"]:
            report.add("container_registry", name, expected, "pulled and started: one srun on %d node(s) took %s s"
                       % (len(run["nodes"]), run["seconds"]), True)
            continue
        kind, detail = kinds[name]
        report.add("container_registry", name, expected, "failed (srun rc %s after %s s)%s: %s"
                   % (run["rc"], run["seconds"], AUTH_NOTE if kind == "auth" else "", detail or "no answer"), False,
                   _failure_hint(kind, registry, said.get(name)))


def check_staged(report, run, staged):
    """container_staged for each node of one run from the staged squashfs."""
    record = staged.get("record") or {}
    expected = "starts %s (staged once: %s) through Pyxis" % (staged["path"], staged.get("digest") or "?")
    imported = ("imported once in %s s at %s" % (record.get("import_seconds"), record.get("imported_at"))
                if record else "no staging record")
    for name in run["nodes"]:
        ok = name in run["answered"]
        if ok:
            seen = "started: one srun on %d node(s) took %s s; %s" % (len(run["nodes"]), run["seconds"], imported)
        else:
            seen = "failed (srun rc %s after %s s): %s" % (run["rc"], run["seconds"], pull_failure(run["stderr"], name)[1])
        report.add("container_staged", name, expected, seen, ok,
                   "the staged squashfs did not start: stage the image again (role hpc.pcluster.enroot, "
                   "tasks_from: stage_image) and check that every node mounts %s" % staged["path"].rsplit("/", 1)[0])


def not_run(report, params, nodes, staged, check_mode):
    """The checks when no job runs: not available in check mode, else failed (no usable compute node)."""
    reason = "not run in check mode" if check_mode else "no usable compute node (see node_state)"
    for name in nodes or ["cluster"]:
        report.add("container_registry", name, "pulls %s" % params["image"], "not run", False, reason,
                   unavailable_reason=reason if check_mode else None)
        if staged:
            report.add("container_staged", name, "starts %s" % staged["path"], "not run", False, reason,
                       unavailable_reason=reason if check_mode else None)
