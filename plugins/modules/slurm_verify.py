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
    description: Shared storage that must be mounted, writable and of the expected file system type.
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
  storage_on_compute:
    description: Also check the shared storage on every compute node (inside the test job).
    type: bool
    default: true
  containers:
    description: Check Docker, Enroot and Pyxis.
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

import glob
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid

from ansible.module_utils.basic import AnsibleModule

PASSED = "passed"
FAILED = "failed"
NOT_AVAILABLE = "not_available"

SLURM_BIN_CANDIDATES = ("/opt/slurm/bin", "/usr/bin", "/usr/local/bin")
GOOD_NODE_STATES = ("IDLE", "ALLOCATED", "MIXED", "COMPLETING")
BAD_NODE_FLAGS = ("DRAIN", "DRAINING", "DRAINED", "FAIL", "FAILING", "NOT_RESPONDING", "REBOOT_REQUESTED",
                  "REBOOT_ISSUED", "MAINTENANCE", "POWERING_DOWN", "INVALID_REG")
DYNAMIC_OK_FLAGS = ("POWERED_DOWN", "POWERING_UP", "POWER_DOWN", "POWER_UP", "CLOUD")
# Other names a check answers to in not_available: a family name covers several checks.
CHECK_ALIASES = {
    "pyxis_plugin": ("pyxis",),
    "pyxis_loaded": ("pyxis",),
    "container_smoke": ("pyxis",),
    "nvidia_smi": ("gpu",),
    "gpu_count": ("gpu",),
    "storage_mount": ("storage",),
    "storage_type": ("storage",),
}
# Storage types whose file system type check also answers to these names.
STORAGE_ALIASES = {
    "FsxLustre": "fsx_lustre",
    "FsxOpenZfs": "fsx_openzfs",
    "FsxOntap": "fsx_ontap",
    "FileCache": "file_cache",
    "Efs": "efs",
    "Ebs": "ebs",
}
PROBE_TAG = "@@hpc-pcluster-verify"
EXTRA_PATH = "/opt/amazon/efa/bin:/usr/local/bin:/usr/bin:/bin:/opt/slurm/bin"

# ---------------------------------------------------------------------------
# Parsers of machine-readable command output (pure functions, unit tested).
# ---------------------------------------------------------------------------

_KEY_RE = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/.\-]*)=")


def parse_scontrol_record(line):
    """Parse one ``scontrol -o show ...`` line into a dict.

    Values may hold spaces (``Reason=node lost [root@...]``, ``OS=Linux 6.1 #1 SMP``): a value runs
    until the next ``Key=`` token.
    """
    record = {}
    matches = list(_KEY_RE.finditer(line))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(line)
        record[match.group(1)] = line[match.end():end].strip()
    return record


def parse_scontrol_records(text, key):
    """``scontrol -o show node|partition`` output -> {record[key]: record}."""
    records = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line.startswith(key + "="):
            continue
        record = parse_scontrol_record(line)
        records[record.get(key, "")] = record
    return records


def parse_node_state(state):
    """Split a Slurm node state such as ``IDLE*+CLOUD+POWERED_DOWN`` into (base, flags).

    A trailing ``*`` on the base state means the node is not responding; it becomes the
    ``NOT_RESPONDING`` flag. sinfo's short suffixes (``~``, ``#``, ``%``, ``!``) become flags too.
    """
    text = (state or "").strip()
    parts = [p for p in text.split("+") if p]
    if not parts:
        return "UNKNOWN", set()
    base = parts[0].upper()
    flags = set(p.upper() for p in parts[1:])
    suffixes = {"*": "NOT_RESPONDING", "~": "POWERED_DOWN", "#": "POWERING_UP", "%": "POWERING_DOWN",
                "!": "POWER_DOWN", "$": "MAINTENANCE", "@": "REBOOT_REQUESTED", "^": "REBOOT_ISSUED",
                "-": "PLANNED"}
    while base and base[-1] in suffixes:
        flags.add(suffixes[base[-1]])
        base = base[:-1]
    aliases = {"ALLOC": "ALLOCATED", "MIX": "MIXED", "COMP": "COMPLETING", "DRAIN": "IDLE", "DRNG": "ALLOCATED",
               "DRAINED": "IDLE", "DRAINING": "ALLOCATED"}
    if base in ("DRAIN", "DRAINED", "DRAINING", "DRNG"):
        flags.add("DRAIN")
    base = aliases.get(base, base)
    return base, flags


def judge_node_state(state, static):
    """Return (ok, description) for a node state; static nodes must be usable now."""
    base, flags = parse_node_state(state)
    bad = sorted(flags.intersection(BAD_NODE_FLAGS))
    if static:
        if base in GOOD_NODE_STATES and not bad and not flags.intersection(("POWERED_DOWN", "POWERING_UP")):
            return True, ""
        return False, "static node must be idle, alloc or mix and responding"
    if base in ("DOWN", "FUTURE", "UNKNOWN") and "POWERED_DOWN" not in flags:
        return False, "dynamic node is %s" % base.lower()
    if bad and "POWERING_DOWN" not in bad:
        return False, "dynamic node is %s" % ", ".join(b.lower() for b in bad)
    return True, ""


def parse_gres_gpus(gres):
    """GPU count in a Slurm Gres string: ``gpu:a10g:1(S:0),gpu:2`` -> 3; ``(null)`` -> 0."""
    total = 0
    for item in re.split(r",(?![^()]*\))", gres or ""):
        item = re.sub(r"\(.*\)$", "", item.strip())
        fields = item.split(":")
        if not fields or fields[0] != "gpu":
            continue
        count = fields[-1] if len(fields) > 1 else "1"
        if count.isdigit():
            total += int(count)
        elif len(fields) == 2:
            total += 1
    return total


def parse_os_release(text):
    """``/etc/os-release`` -> dict of its keys with quotes removed."""
    data = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        data[key.strip()] = value.strip().strip("'\"")
    return data


def parse_mounts(text):
    """``/proc/mounts`` -> {mount point: fstype} (octal escapes such as ``\\040`` decoded)."""
    mounts = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        mounts[point] = fields[2]
    return mounts


def parse_scontrol_ping(text):
    """``scontrol ping`` -> list of (role, host, 'UP'|'DOWN')."""
    return re.findall(r"Slurmctld\((\w+)\) at (\S+) is (UP|DOWN)", text or "")


def parse_scontrol_config(text):
    """``scontrol show config`` (``Key = value`` lines) -> dict."""
    config = {}
    for line in (text or "").splitlines():
        match = re.match(r"^([A-Za-z][A-Za-z0-9_]*)\s+= ?(.*)$", line)
        if match:
            config[match.group(1)] = match.group(2).strip()
    return config


def parse_version(text, pattern):
    match = re.search(pattern, text or "")
    return match.group(1) if match else ""


def docker_version(text):
    return parse_version(text, r"[Vv]ersion\s+v?([0-9][0-9A-Za-z.\-+~]*)")


def enroot_version(text):
    return parse_version(text, r"([0-9]+\.[0-9]+(?:\.[0-9]+)?[0-9A-Za-z.\-+~]*)")


def parse_probe_output(text):
    """Lines ``@@hpc-pcluster-verify<TAB>node<TAB>key<TAB>value`` -> {node: {key: [values]}}."""
    nodes = {}
    for line in (text or "").splitlines():
        if not line.startswith(PROBE_TAG + "\t"):
            continue
        fields = line.split("\t", 3)
        if len(fields) < 3:
            continue
        node, key = fields[1], fields[2]
        value = fields[3] if len(fields) > 3 else ""
        nodes.setdefault(node, {}).setdefault(key, []).append(value)
    return nodes


def count_visible_devices(value):
    value = (value or "").strip()
    if not value or value.lower() in ("nodevfiles", "none", "void"):
        return 0
    return len([v for v in value.split(",") if v.strip()])


def plugstack_references(paths_text, plugin_path):
    """Whether plugstack text has a non-comment ``required|optional <plugin_path>`` line."""
    for line in (paths_text or "").splitlines():
        line = line.split("#", 1)[0].strip()
        fields = line.split()
        if len(fields) >= 2 and fields[0] in ("required", "optional") and fields[1] == plugin_path:
            return True
    return False


def node_probe_script(storage_mounts, check_storage, want_efa, want_containers):
    """POSIX sh run by srun on every node: one tagged line per fact."""
    lines = [
        'PATH="$PATH:%s"; export PATH' % EXTRA_PATH,
        'n="${SLURMD_NODENAME:-$(hostname)}"',
        "say() { printf '%s\\t%%s\\t%%s\\t%%s\\n' \"$n\" \"$1\" \"$2\"; }" % PROBE_TAG,
        'say hostname "$(hostname)"',
        'say job_id "${SLURM_JOB_ID:-}"',
        'say cuda_visible_devices "${CUDA_VISIBLE_DEVICES-unset}"',
        'say job_gpus "${SLURM_STEP_GPUS:-${SLURM_JOB_GPUS:-}}"',
        "if command -v nvidia-smi >/dev/null 2>&1; then",
        "  out=$(nvidia-smi -L 2>&1); rc=$?",
        '  say nvidia_smi_rc "$rc"',
        '  printf "%s\\n" "$out" | while IFS= read -r l; do [ -n "$l" ] && say nvidia_smi "$l"; done',
        "else say nvidia_smi_rc absent; fi",
    ]
    if check_storage:
        for mount in storage_mounts:
            quoted = "'" + mount.replace("'", "'\\''") + "'"
            lines += [
                "m=%s" % quoted,
                "t=$(awk -v m=\"$m\" '$2==m {t=$3} END {print t}' /proc/mounts)",
                'say "fstype:$m" "$t"',
                'f="$m/.hpc-pcluster-verify.$n.$$"',
                'if ( : > "$f" ) 2>/dev/null; then rm -f "$f"; say "writable:$m" yes; else say "writable:$m" no; fi',
            ]
    if want_efa:
        lines += [
            "if command -v fi_info >/dev/null 2>&1; then",
            "  if fi_info -p efa -t FI_EP_RDM >/dev/null 2>&1; then say efa ok; else say efa no-provider; fi",
            "else say efa absent; fi",
        ]
    if want_containers:
        lines += [
            "if command -v docker >/dev/null 2>&1; then say docker \"$(docker --version 2>&1 | head -n1)\"; else say docker absent; fi",
            "if command -v enroot >/dev/null 2>&1; then say enroot \"$(enroot version 2>&1 | head -n1)\"; else say enroot absent; fi",
        ]
    lines.append("say done 1")
    return "\n".join(lines) + "\n"


def find_slurm_bin(preferred, environ_path):
    """Directory holding scontrol: the option, then PATH, then ParallelCluster's /opt/slurm/bin."""
    if preferred:
        return preferred
    found = shutil.which("scontrol", path=environ_path or "")
    if found:
        return os.path.dirname(found)
    for candidate in SLURM_BIN_CANDIDATES:
        if os.access(os.path.join(candidate, "scontrol"), os.X_OK):
            return candidate
    return ""


# ---------------------------------------------------------------------------
# The checks.
# ---------------------------------------------------------------------------


class Report:
    """Collects checks; a check named in not_available is reported as such, never as passed."""

    def __init__(self, not_available):
        self.not_available = dict(not_available or {})
        self.checks = []

    def reason(self, check, node, aliases=()):
        for key in ["%s:%s" % (check, node), check] + list(aliases) + list(CHECK_ALIASES.get(check, ())):
            if key in self.not_available:
                return str(self.not_available[key])
        return None

    def add(self, check, node, expected, seen, ok, hint="", unavailable_reason=None, aliases=()):
        listed = self.reason(check, node, aliases)
        if listed is not None:
            status, hint = NOT_AVAILABLE, listed
        elif unavailable_reason:
            status, hint = NOT_AVAILABLE, unavailable_reason
        else:
            status = PASSED if ok else FAILED
            hint = "" if ok else hint
        self.checks.append(dict(check=check, node=node, expected=str(expected), seen=str(seen),
                                status=status, hint=hint))


class Runner:
    def __init__(self, module, slurm_bin):
        self.module = module
        self.slurm_bin = slurm_bin

    def slurm(self, name):
        return os.path.join(self.slurm_bin, name) if self.slurm_bin else name

    def run(self, argv, timeout=60):
        """(rc, stdout, stderr) of argv, killed after timeout seconds (rc 124); rc 127 when it is missing."""
        command = ["timeout", "--kill-after=10", str(int(timeout))] + list(argv)
        rc, out, err = self.module.run_command(command, check_rc=False)
        if rc == 124:
            err = "timed out after %ss. %s" % (timeout, err)
        elif rc == 127 and not err.strip():
            err = "%s: command not found" % argv[0]
        return rc, out, err


def check_os(report, head, expected, os_release_text):
    data = parse_os_release(os_release_text)
    seen = "%s %s" % (data.get("ID", "?"), data.get("VERSION_ID", "?"))
    if data.get("PRETTY_NAME"):
        seen += " (%s)" % data["PRETTY_NAME"]
    if not expected:
        report.add("os_release", head, "any", seen, True)
        return
    label = expected.get("label") or "%s %s" % (expected["id"], expected["version"])
    version = data.get("VERSION_ID", "")
    ok = data.get("ID") == expected["id"] and (version == expected["version"] or
                                               version.startswith(expected["version"] + "."))
    report.add("os_release", head, "%s (%s %s)" % (label, expected["id"], expected["version"]), seen, ok,
               "the head node runs another OS than Image.Os of the cluster config")


def check_controller(report, head, rc, out, err):
    pings = parse_scontrol_ping(out)
    up = [p for p in pings if p[2] == "UP"]
    seen = "; ".join("%s %s %s" % p for p in pings) or (err or out).strip() or "no answer (rc %s)" % rc
    report.add("slurm_controller", head, "slurmctld UP", seen, rc == 0 and bool(up),
               "slurmctld does not answer: on the head node see /var/log/slurmctld.log and "
               "'systemctl status slurmctld'")


def check_partitions(report, expected, partitions, rc, err):
    for name in expected:
        record = partitions.get(name)
        if rc != 0:
            report.add("partition", name, "exists, State=UP", "scontrol failed: %s" % err.strip(), False,
                       "scontrol show partition failed")
        elif record is None:
            report.add("partition", name, "exists, State=UP", "missing (have: %s)" % (", ".join(sorted(partitions)) or "none"),
                       False, "the queue is not in slurm.conf; check Scheduling.SlurmQueues")
        else:
            state = record.get("State", "?")
            report.add("partition", name, "exists, State=UP", "State=%s Nodes=%s" % (state, record.get("Nodes", "")),
                       state == "UP", "bring it up: scontrol update partitionname=%s state=up" % name)


def check_nodes(report, expected_nodes, slurm_nodes, rc, err):
    """node_state for each expected node; returns the names usable by the test job."""
    usable = []
    for node in expected_nodes:
        name = node["name"]
        static = node.get("static", True)
        expected = "idle, alloc or mix" if static else "idle, idle~ (powered down), alloc or mix"
        record = slurm_nodes.get(name)
        if rc != 0:
            report.add("node_state", name, expected, "scontrol failed: %s" % err.strip(), False, "")
            continue
        if record is None:
            report.add("node_state", name, expected, "not defined in Slurm", False,
                       "the node name is missing from slurm.conf; check MinCount/MaxCount of the compute resource")
            continue
        state = record.get("State", "UNKNOWN")
        reason = record.get("Reason", "")
        ok, why = judge_node_state(state, static)
        seen = state + (" Reason=%s" % reason if reason and reason != "(null)" else "")
        report.add("node_state", name, expected, seen, ok,
                   "%s; after fixing it: scontrol update nodename=%s state=resume" % (why, name))
        base, flags = parse_node_state(state)
        if ok and not flags.intersection(("POWERED_DOWN", "POWERING_UP")):
            usable.append(name)
        elif ok and node.get("run_dynamic"):
            usable.append(name)
    return usable


def _run_job(runner, argv, timeout, result):
    start = time.time()
    rc, out, err = runner.run(argv, timeout=timeout)
    result.update(rc=rc, stdout=out, stderr=err.strip(), elapsed=round(time.time() - start, 2))


def run_jobs(runner, params, groups, script, check_mode):
    """Start one srun per (partition, GPU request) group, all at once; return their results."""
    results = []
    if check_mode:
        return results
    threads = []
    job_name = "hpc-pcluster-verify-" + uuid.uuid4().hex[:8]
    for (partition, gpus), names in sorted(groups.items()):
        argv = [runner.slurm("srun"), "--partition=%s" % partition, "--nodes=%d" % len(names),
                "--ntasks-per-node=1", "--nodelist=%s" % ",".join(names), "--job-name=%s" % job_name,
                "--time=10", "--quiet", "--immediate=%d" % params["srun_immediate"]]
        if gpus > 0:
            argv.append("--gpus-per-node=%d" % gpus)
        argv += list(params["srun_extra_args"]) + ["/bin/sh", "-c", script]
        result = dict(partition=partition, nodes=list(names), gpus_per_node=gpus, command=argv[:-1] + ["<probe script>"],
                      job_name=job_name)
        results.append(result)
        thread = threading.Thread(target=_run_job, args=(runner, argv, params["srun_timeout"], result))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return results


def check_node_results(report, params, expected_nodes, usable, jobs, probe, check_mode):
    by_name = dict((n["name"], n) for n in expected_nodes)
    job_of = {}
    for job in jobs:
        for name in job["nodes"]:
            job_of[name] = job
    storage = params["storage"] if params["storage_on_compute"] else []
    for name, node in by_name.items():
        if not node.get("static", True) and name not in usable:
            continue
        facts = probe.get(name)
        job = job_of.get(name)
        gpus = node.get("gpus", 0)
        itype = node.get("instance_type") or "?"
        if facts is None:
            if check_mode:
                reason = "not run in check mode"
            else:
                reason = None
            if name not in usable:
                seen = "not run: the node is not usable (see node_state)"
            elif job is None or job.get("rc") is None:
                seen = "not run"
            else:
                seen = "no answer from the node (srun rc %s: %s)" % (job.get("rc"), (job.get("stderr") or "")[:300])
            report.add("srun", name, "answers the test job", seen, False,
                       "the test job did not run on this node", unavailable_reason=reason)
            continue
        hostname = facts.get("hostname", ["?"])[0]
        report.add("srun", name, "answers the test job", "hostname %s, job %s" % (hostname, facts.get("job_id", ["?"])[0]),
                   True)
        check_node_gpus(report, params, name, itype, gpus, facts)
        for item in storage:
            check_mount(report, name, item, (facts.get("fstype:" + item["mount"]) or [""])[0],
                        (facts.get("writable:" + item["mount"]) or ["no"])[0] == "yes")
        if node.get("efa"):
            value = (facts.get("efa") or ["absent"])[0]
            seen = {"ok": "fi_info -p efa lists the EFA provider", "absent": "fi_info not found",
                    "no-provider": "fi_info finds no efa provider"}.get(value, value)
            report.add("efa", name, "EFA provider present (fi_info -p efa)", seen, value == "ok",
                       "EFA is enabled in the config: check the instance type supports EFA and the EFA installer ran")
        if params["containers"]:
            docker = (facts.get("docker") or ["absent"])[0]
            enroot = (facts.get("enroot") or ["absent"])[0]
            report.add("docker", name, "docker installed", docker_version(docker) or docker,
                       docker != "absent" and bool(docker_version(docker)), "apply the docker role (playbooks/containers.yml)")
            report.add("enroot", name, "enroot installed", enroot_version(enroot) or enroot,
                       enroot != "absent" and bool(enroot_version(enroot)), "apply the enroot role (playbooks/containers.yml)")


def check_node_gpus(report, params, name, itype, gpus, facts):
    nvsmi_rc = (facts.get("nvidia_smi_rc") or ["absent"])[0]
    nvsmi_lines = [l for l in facts.get("nvidia_smi", []) if l.startswith("GPU ")]
    cuda = (facts.get("cuda_visible_devices") or ["unset"])[0]
    granted = count_visible_devices("" if cuda == "unset" else cuda)
    if gpus > 0 or nvsmi_rc not in ("absent",):
        if nvsmi_rc == "absent":
            reason = None if params["require_nvidia_smi"] else "nvidia-smi not found on the node"
            report.add("nvidia_smi", name, "nvidia-smi -L lists %d GPU(s)" % gpus, "nvidia-smi not found", False,
                       "%s (%s) should carry %d GPU(s) but has no nvidia-smi: the NVIDIA driver is missing "
                       "(use a ParallelCluster GPU AMI) or this is not a GPU instance" % (name, itype, gpus),
                       unavailable_reason=reason)
        else:
            report.add("nvidia_smi", name, "nvidia-smi -L works", "rc %s, %d GPU line(s)" % (nvsmi_rc, len(nvsmi_lines)),
                       nvsmi_rc == "0", "nvidia-smi failed: %s" % "; ".join(facts.get("nvidia_smi", []))[:300])
    if gpus < 0:
        report.add("gpu_count", name, "unknown for %s" % itype, "%d" % granted, False,
                   "the GPU count of %s is unknown: set verify_gpus_per_node" % itype)
        return
    if nvsmi_rc == "0":
        seen_count = len(nvsmi_lines)
        seen = "%d (nvidia-smi -L: %s)" % (seen_count, "; ".join(l.split(" (UUID")[0] for l in nvsmi_lines))
    else:
        seen_count = granted
        seen = "%d granted by Slurm (CUDA_VISIBLE_DEVICES=%s); nvidia-smi %s" % (
            granted, cuda, "not found" if nvsmi_rc == "absent" else "failed")
    report.add("gpu_count", name, "%d (%s)" % (gpus, itype), seen, seen_count == gpus,
               "the node shows another GPU count than %s has: check the instance type, the driver and the "
               "node's Gres in slurm.conf" % itype)


def check_mount(report, node, item, fstype, writable, check_mode=False):
    mount = item["mount"]
    label = "%s%s" % (mount, " (%s)" % item["storage_type"] if item.get("storage_type") else "")
    present = bool(fstype)
    if check_mode:
        report.add("storage_mount", node, "%s mounted, writable" % label, "mounted" if present else "not mounted",
                   False, "", unavailable_reason="writability is not tested in check mode")
    else:
        seen = ("mounted, %s" % ("writable" if writable else "NOT writable")) if present else "not mounted"
        report.add("storage_mount", node, "%s mounted, writable" % label, seen, present and writable,
                   "not mounted: check SharedStorage and the node's bootstrap log" if not present
                   else "mounted read-only or without write permission for this user")
    fstypes = item.get("fstypes") or []
    alias = STORAGE_ALIASES.get(item.get("storage_type") or "")
    report.add("storage_type", node, "%s: %s" % (mount, " or ".join(fstypes) or "any"), fstype or "not mounted",
               present and (not fstypes or fstype in fstypes),
               "%s is %s, expected %s for %s" % (mount, fstype or "not mounted", " or ".join(fstypes),
                                                 item.get("storage_type") or "this storage"),
               aliases=("storage_type:%s" % mount,) + ((alias,) if alias else ()))


def probe_writable(path):
    try:
        handle, name = tempfile.mkstemp(prefix=".hpc-pcluster-verify.", dir=path)
        os.close(handle)
        os.unlink(name)
        return True
    except OSError:
        return False


def read_file(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return ""


def main():
    module = AnsibleModule(
        argument_spec=dict(
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
            storage_on_compute=dict(type="bool", default=True),
            containers=dict(type="bool", default=True),
            pyxis_plugin_path=dict(type="str", default="/usr/local/lib/slurm/spank_pyxis.so"),
            container_smoke_image=dict(type="str", default=""),
            job_comp_loc=dict(type="str", default=""),
            require_nvidia_smi=dict(type="bool", default=True),
            srun_dynamic_nodes=dict(type="bool", default=False),
            srun_timeout=dict(type="int", default=300),
            srun_immediate=dict(type="int", default=120),
            srun_extra_args=dict(type="list", elements="str", default=[]),
            not_available=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    started = time.time()
    params = module.params
    head = params["head_node"] or socket.gethostname()
    check_mode = module.check_mode
    report = Report(params["not_available"])
    slurm_bin = find_slurm_bin(params["slurm_bin_dir"], os.environ.get("PATH", ""))
    runner = Runner(module, slurm_bin)

    check_os(report, head, params["os"], read_file("/etc/os-release"))

    rc, out, err = runner.run([runner.slurm("scontrol"), "ping"])
    check_controller(report, head, rc, out, err)

    rc_p, out_p, err_p = runner.run([runner.slurm("scontrol"), "-o", "show", "partition"])
    check_partitions(report, params["partitions"], parse_scontrol_records(out_p, "PartitionName"), rc_p, err_p)

    rc_n, out_n, err_n = runner.run([runner.slurm("scontrol"), "-o", "show", "node"])
    slurm_nodes = parse_scontrol_records(out_n, "NodeName")
    expected_nodes = []
    for node in params["nodes"]:
        node = dict(node)
        node["run_dynamic"] = params["srun_dynamic_nodes"]
        expected_nodes.append(node)
    usable = check_nodes(report, expected_nodes, slurm_nodes, rc_n, err_n)

    rc_q, out_q, err_q = runner.run([runner.slurm("squeue"), "--noheader", "--format=%i|%P|%T|%N"])
    job_lines = [l for l in out_q.splitlines() if l.strip()]
    running = [l for l in job_lines if "|RUNNING|" in l]
    report.add("squeue", head, "squeue answers", ("%d job(s), %d running" % (len(job_lines), len(running)))
               if rc_q == 0 else "rc %s: %s" % (rc_q, err_q.strip()), rc_q == 0,
               "squeue cannot reach slurmctld")

    # One srun per partition (and GPU request) across every usable expected node, all started at once.
    want_efa = any(n.get("efa") for n in expected_nodes)
    script = node_probe_script([s["mount"] for s in params["storage"]],
                               params["storage_on_compute"] and not check_mode, want_efa, params["containers"])
    groups = {}
    for node in expected_nodes:
        if node["name"] not in usable:
            continue
        record = slurm_nodes.get(node["name"], {})
        gres_gpus = parse_gres_gpus(record.get("Gres", ""))
        # Ask for every GPU Slurm knows on the node, so the job sees all of them.
        request = gres_gpus if node.get("gpus", 0) > 0 else 0
        groups.setdefault((node["partition"], request), []).append(node["name"])
    jobs = run_jobs(runner, params, groups, script, check_mode)
    probe = {}
    for job in jobs:
        answers = parse_probe_output(job.get("stdout", ""))
        job["job_id"] = next((f["job_id"][0] for f in answers.values() if f.get("job_id")), "")
        probe.update(answers)
    check_node_results(report, params, expected_nodes, usable, jobs, probe, check_mode)

    # Shared storage on the head node.
    mounts = parse_mounts(read_file("/proc/mounts"))
    for item in params["storage"]:
        fstype = mounts.get(item["mount"], "")
        writable = bool(fstype) and not check_mode and probe_writable(item["mount"])
        check_mount(report, head, item, fstype, writable, check_mode=check_mode)

    config_text = ""
    if params["containers"] or params["job_comp_loc"]:
        rc_c, config_text, err_c = runner.run([runner.slurm("scontrol"), "show", "config"])
    slurm_config = parse_scontrol_config(config_text)

    if params["containers"]:
        check_containers(report, runner, params, head, slurm_config, usable, check_mode)

    if params["job_comp_loc"]:
        check_job_completion(report, params, head, slurm_config, jobs, check_mode)

    failed = [c for c in report.checks if c["status"] == FAILED]
    for job in jobs:
        job.pop("stdout", None)
    module.exit_json(changed=False, checks=report.checks, slurm_bin_dir=slurm_bin, jobs=jobs,
                     failed_checks=len(failed), elapsed=round(time.time() - started, 2))


def check_containers(report, runner, params, head, slurm_config, usable, check_mode):
    rc, out, err = runner.run(["docker", "--version"])
    version = docker_version(out)
    report.add("docker", head, "docker installed", version or (err or out).strip() or "not found", rc == 0 and bool(version),
               "apply the docker role (playbooks/containers.yml)")
    rc, out, err = runner.run(["enroot", "version"])
    version = enroot_version(out) if rc == 0 else ""
    report.add("enroot", head, "enroot installed", version or (err or out).strip() or "not found", bool(version),
               "apply the enroot role (playbooks/containers.yml)")

    plugin = params["pyxis_plugin_path"]
    plugstack = slurm_config.get("PlugStackConfig", "") or "/opt/slurm/etc/plugstack.conf"
    texts = [read_file(plugstack)]
    for line in texts[0].splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) == 2 and fields[0] == "include":
            for path in sorted(glob.glob(fields[1])):
                texts.append(read_file(path))
    present = os.path.isfile(plugin)
    referenced = plugstack_references("\n".join(texts), plugin)
    seen = "%s %s; %s" % (plugin, "present" if present else "missing",
                          "enabled in %s" % plugstack if referenced else "not referenced by %s" % plugstack)
    report.add("pyxis_plugin", head, "%s present and enabled in plugstack" % plugin, seen, present and referenced,
               "apply the pyxis role (playbooks/containers.yml)")

    rc, out, err = runner.run([runner.slurm("srun"), "--help"])
    loaded = "--container-image" in out
    report.add("pyxis_loaded", head, "srun --help lists --container-image", "listed" if loaded else "not listed",
               loaded, "Slurm has not loaded Pyxis: check plugstack.conf.d and run 'scontrol reconfigure'")

    image = params["container_smoke_image"]
    if image:
        if check_mode or not usable:
            report.add("container_smoke", head, "srun --container-image=%s true succeeds" % image, "not run", False,
                       "no usable compute node", unavailable_reason="not run in check mode" if check_mode else None)
        else:
            argv = [runner.slurm("srun"), "--nodes=1", "--ntasks=1", "--nodelist=%s" % usable[0], "--quiet",
                    "--immediate=%d" % params["srun_immediate"], "--container-image=%s" % image] + \
                list(params["srun_extra_args"]) + ["true"]
            rc, out, err = runner.run(argv, timeout=params["srun_timeout"])
            report.add("container_smoke", usable[0], "srun --container-image=%s true succeeds" % image,
                       "rc %s%s" % (rc, (": " + err.strip()[:300]) if err.strip() else ""), rc == 0,
                       "the image could not be pulled or started: check the registry access and enroot.conf")


def check_job_completion(report, params, head, slurm_config, jobs, check_mode):
    expected_loc = params["job_comp_loc"]
    configured = slurm_config.get("JobCompLoc", "")
    comp_type = slurm_config.get("JobCompType", "")
    expected = "test job recorded in %s" % expected_loc
    if check_mode:
        report.add("job_completion_log", head, expected, "not run", False, "",
                   unavailable_reason="no test job in check mode")
        return
    if configured and configured != expected_loc:
        report.add("job_completion_log", head, expected, "Slurm writes %s (JobCompType=%s)" % (configured, comp_type),
                   False, "slurm.conf JobCompLoc differs from the cluster config")
        return
    job_ids = [str(j.get("job_id")) for j in jobs if j.get("job_id")]
    names = set(j.get("job_name") for j in jobs if j.get("job_name"))
    if not jobs:
        report.add("job_completion_log", head, expected, "no test job ran", False, "the test job did not run")
        return
    text = ""
    deadline = time.time() + 15
    while True:
        text = read_file(expected_loc)
        if any(("Name=%s " % n) in text or text.endswith("Name=%s" % n) for n in names):
            break
        if time.time() > deadline:
            break
        time.sleep(0.5)
    found = any(("Name=%s" % n) in text for n in names)
    if found:
        seen = "test job recorded"
    elif not os.path.exists(expected_loc):
        seen = "%s does not exist" % expected_loc
    elif not os.access(expected_loc, os.R_OK):
        seen = "%s is not readable by this user" % expected_loc
    else:
        seen = "test job %s not found in %s" % (", ".join(job_ids) or ", ".join(sorted(names)), expected_loc)
    report.add("job_completion_log", head, expected, seen, found,
               "check JobCompType=%s and that slurmctld can write %s" % (comp_type or "?", expected_loc))


if __name__ == "__main__":
    main()
