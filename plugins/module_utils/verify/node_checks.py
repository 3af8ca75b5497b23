# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verify role's test job on the compute nodes (one srun per partition) and the checks on its answers.

The job runs a POSIX sh probe on every node that prints one tagged line per fact; the same storage
checks are made on the head node from Python.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid

from ansible_collections.hpc.pcluster.plugins.module_utils.verify.container_checks import check_node_containers
from ansible_collections.hpc.pcluster.plugins.module_utils.slurm.parsers import (
    Mount,
    count_visible_devices,
    parse_gres_gpus,
)

PROBE_TAG = "@@hpc-pcluster-verify"
PROBE_PREFIX = ".hpc-pcluster-verify."
EXTRA_PATH = "/opt/amazon/efa/bin:/usr/local/bin:/usr/bin:/bin:/opt/slurm/bin"
# The file system type check of a storage type also answers to these names in not_available.
STORAGE_FAMILIES = {
    "FsxLustre": "fsx_lustre",
    "FsxOpenZfs": "fsx_openzfs",
    "FsxOntap": "fsx_ontap",
    "FileCache": "file_cache",
    "Efs": "efs",
    "Ebs": "ebs",
}


def _sh_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def _mounts_escape(path):
    """A path as /proc/mounts writes it (space, tab, newline and backslash as octal escapes)."""
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")


def storage_probe_lines(mounts):
    """sh lines reporting each mount's fstype and options, and whether the user can create a file where it writes.

    The probe file is made by mktemp (O_EXCL, a random name, mode 0600) in ``<mount>/<user>`` when that
    directory exists, else in the mount: nothing a user planted under a predictable name is followed.
    """
    lines = ['u=$(id -un 2>/dev/null || echo "?")', 'say user "$u"']
    for mount in mounts:
        lines += [
            "m=%s" % _sh_quote(mount),
            "say \"mount:$m\" \"$(M=%s awk '$2 == ENVIRON[\"M\"] {r = $3 \" \" $4} END {print r}' /proc/mounts)\""
            % _sh_quote(_mounts_escape(mount)),
            'if [ -d "$m/$u" ]; then d="$m/$u"; else d="$m"; fi',
            'if f=$(mktemp "$d/%sXXXXXXXXXX" 2>/dev/null); then rm -f "$f"; say "writable:$m" "yes $d"; '
            'else say "writable:$m" "no $d"; fi' % PROBE_PREFIX,
        ]
    return lines


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
        lines += storage_probe_lines(storage_mounts)
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


def parse_probe_output(text):
    """Lines ``@@hpc-pcluster-verify<TAB>node<TAB>key<TAB>value`` -> {node: {key: [values]}}."""
    nodes = {}
    for line in (text or "").splitlines():
        if not line.startswith(PROBE_TAG + "\t"):
            continue
        fields = line.split("\t", 3)
        if len(fields) < 3:
            continue
        value = fields[3] if len(fields) > 3 else ""
        nodes.setdefault(fields[1], {}).setdefault(fields[2], []).append(value)
    return nodes


def probe_mount(facts, mount):
    """Mount(fstype, options) the probe saw for a mount point, or None when it is not mounted."""
    fields = ((facts.get("mount:" + mount) or [""])[0]).split(" ", 1)
    if not fields[0]:
        return None
    return Mount(fields[0], fields[1].split(",") if len(fields) > 1 else [])


def probe_write(facts, mount):
    """(directory the probe wrote in, whether it could create a file there)."""
    answer, dummy, where = ((facts.get("writable:" + mount) or ["no " + mount])[0]).partition(" ")
    return where or mount, answer == "yes"


def write_probe(mount, user):
    """Where ``user`` writes on a mount (``<mount>/<user>`` when it exists, else the mount) and whether it can.

    The file is made by mkstemp (O_EXCL, random name) and removed at once.
    """
    own = os.path.join(mount, user)
    where = own if os.path.isdir(own) else mount
    try:
        handle, name = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=where)
        os.close(handle)
        os.unlink(name)
        return where, True
    except OSError:
        return where, False


def check_storage(report, node, item, mount, written, user, check_mode=False):
    """storage_mount (mounted read-write), storage_writable (where the user writes) and storage_type of one mount.

    mount: Mount or None; written: (directory, writable) from the write probe, or None when not probed.
    A mount whose root only root can write (a fresh FSx file system) and where the user has no directory
    yet is not a failure: there is nowhere the user is meant to write, and the check says so.
    """
    path = item["mount"]
    label = "%s%s" % (path, " (%s)" % item["storage_type"] if item.get("storage_type") else "")
    read_only = mount is not None and "ro" in mount.options
    seen = "not mounted" if mount is None else ("mounted read-only" if read_only else "mounted read-write")
    report.add("storage_mount", node, "%s mounted read-write" % label, seen, mount is not None and not read_only,
               "not mounted: check SharedStorage and the node's bootstrap log" if mount is None
               else "mounted read-only: check the mount options", subject=path)
    if mount is not None and not read_only:
        _check_writable(report, node, path, written, user, check_mode)
    fstypes = item.get("fstypes") or []
    fstype = mount.fstype if mount else ""
    family = STORAGE_FAMILIES.get(item.get("storage_type") or "")
    report.add("storage_type", node, "%s: %s" % (path, " or ".join(fstypes) or "any"), fstype or "not mounted",
               mount is not None and (not fstypes or fstype in fstypes),
               "%s is %s, expected %s for %s" % (path, fstype or "not mounted", " or ".join(fstypes),
                                                 item.get("storage_type") or "this storage"),
               aliases=("storage_type:%s" % path,) + ((family,) if family else ()), subject=path)


def _check_writable(report, node, path, written, user, check_mode):
    own = os.path.join(path, user)
    expected = "%s writable by %s (in %s, else %s)" % (path, user, own, path)
    if check_mode or written is None:
        report.add("storage_writable", node, expected, "not tested", False, "",
                   unavailable_reason="writability is not tested in check mode", subject=path)
        return
    where, writable = written
    if writable:
        report.add("storage_writable", node, expected, "writable by %s in %s" % (user, where), True, subject=path)
    elif where == path:
        report.add("storage_writable", node, expected,
                   "%s is not writable by %s and %s does not exist" % (path, user, own), False, "",
                   unavailable_reason="only root can write to %s (as on a fresh file system) and %s has no directory "
                                      "there yet: create %s owned by %s to have it tested" % (path, user, own, user),
                   subject=path)
    else:
        report.add("storage_writable", node, expected, "%s is NOT writable by %s" % (where, user), False,
                   "%s cannot create files in its own directory %s: check its owner and mode" % (user, where),
                   subject=path)


def check_node_gpus(report, params, name, itype, gpus, facts):
    """nvidia_smi and gpu_count of one node, from its probe answers."""
    nvsmi_rc = (facts.get("nvidia_smi_rc") or ["absent"])[0]
    nvsmi_lines = [line for line in facts.get("nvidia_smi", []) if line.startswith("GPU ")]
    cuda = (facts.get("cuda_visible_devices") or ["unset"])[0]
    granted = count_visible_devices("" if cuda == "unset" else cuda)
    if gpus > 0 or nvsmi_rc != "absent":
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
                   "the GPU count of %s is unknown: set verify_gpus_per_instance_type, e.g. {%s: %d}"
                   % (itype, itype, granted))
        return
    if nvsmi_rc == "0":
        seen_count = len(nvsmi_lines)
        seen = "%d (nvidia-smi -L: %s)" % (seen_count, "; ".join(line.split(" (UUID")[0] for line in nvsmi_lines))
    else:
        seen_count = granted
        seen = "%d granted by Slurm (CUDA_VISIBLE_DEVICES=%s); nvidia-smi %s" % (
            granted, cuda, "not found" if nvsmi_rc == "absent" else "failed")
    report.add("gpu_count", name, "%d (%s)" % (gpus, itype), seen, seen_count == gpus,
               "the node shows another GPU count than %s has: check the instance type, the driver and the "
               "node's Gres in slurm.conf" % itype)


def check_efa(report, name, facts):
    value = (facts.get("efa") or ["absent"])[0]
    seen = {"ok": "fi_info -p efa lists the EFA provider", "absent": "fi_info not found",
            "no-provider": "fi_info finds no efa provider"}.get(value, value)
    report.add("efa", name, "EFA provider present (fi_info -p efa)", seen, value == "ok",
               "EFA is enabled in the config: check the instance type supports EFA and the EFA installer ran")


def job_groups(expected_nodes, usable, slurm_nodes):
    """{(partition, GPUs per node to ask for): [node names]}: one test job per group.

    A job asks for every GPU Slurm knows on its nodes, so the job sees all of them.
    """
    groups = {}
    for node in expected_nodes:
        if node["name"] not in usable:
            continue
        gres_gpus = parse_gres_gpus((slurm_nodes.get(node["name"]) or {}).get("Gres", ""))
        request = gres_gpus if node.get("gpus", 0) > 0 else 0
        groups.setdefault((node["partition"], request), []).append(node["name"])
    return groups


def _run_job(runner, argv, timeout, result):
    start = time.time()
    rc, out, err = runner.run(argv, timeout=timeout)
    result.update(rc=rc, stdout=out, stderr=err.strip(), elapsed=round(time.time() - start, 2))


def run_jobs(runner, params, groups, script):
    """Start one srun per (partition, GPU request) group, all at once; return their results."""
    results = []
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
    for result in results:
        answers = parse_probe_output(result.get("stdout", ""))
        result["job_id"] = next((facts["job_id"][0] for facts in answers.values() if facts.get("job_id")), "")
    return results


def _no_answer(report, name, usable, job, check_mode):
    if name not in usable:
        seen = "not run: the node is not usable (see node_state)"
    elif job is None or job.get("rc") is None:
        seen = "not run"
    else:
        seen = "no answer from the node (srun rc %s: %s)" % (job.get("rc"), (job.get("stderr") or "")[:300])
    report.add("srun", name, "answers the test job", seen, False, "the test job did not run on this node",
               unavailable_reason="not run in check mode" if check_mode else None)


def check_node_results(report, params, expected_nodes, usable, jobs, check_mode):
    """srun, GPUs, storage, EFA and containers of every expected node, from the test jobs' answers."""
    probe = {}
    job_of = {}
    for job in jobs:
        probe.update(parse_probe_output(job.get("stdout", "")))
        for name in job["nodes"]:
            job_of[name] = job
    storage = params["storage"] if params["storage_on_compute"] else []
    for node in expected_nodes:
        name = node["name"]
        if not node.get("static", True) and name not in usable:
            continue
        facts = probe.get(name)
        if facts is None:
            _no_answer(report, name, usable, job_of.get(name), check_mode)
            continue
        report.add("srun", name, "answers the test job",
                   "hostname %s, job %s" % (facts.get("hostname", ["?"])[0], facts.get("job_id", ["?"])[0]), True)
        check_node_gpus(report, params, name, node.get("instance_type") or "?", node.get("gpus", 0), facts)
        user = (facts.get("user") or [""])[0]
        for item in storage:
            check_storage(report, name, item, probe_mount(facts, item["mount"]), probe_write(facts, item["mount"]),
                          user or "?")
        if node.get("efa"):
            check_efa(report, name, facts)
        if params["containers"]:
            check_node_containers(report, name, facts, params["docker"])
