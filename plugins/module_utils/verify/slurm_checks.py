# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verify role's checks of Slurm itself, made on the head node: controller, partitions, nodes, settings."""

from __future__ import annotations

import os
import shutil
import time

from ansible_collections.hpc.pcluster.plugins.module_utils.slurm.node_states import judge_node_state, node_is_powered_down
from ansible_collections.hpc.pcluster.plugins.module_utils.slurm.parsers import (
    parse_os_release,
    parse_scontrol_ping,
    setting_value,
)

SLURM_BIN_CANDIDATES = ("/opt/slurm/bin", "/usr/bin", "/usr/local/bin")


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


# What to do about a node held out of scheduling until its node setup succeeds (role hpc.pcluster.node_setup).
HELD_FIX = ("its node setup has not succeeded yet (no bundle when it booted, one it would not trust, or a failed run): "
            "see /var/log/hpc-pcluster/node-setup.log and /var/lib/hpc-pcluster/node-setup/result.json on %s, then run "
            "playbooks/containers.yml, whose fleet-wide run sets it up and releases it")


def check_nodes(report, expected_nodes, slurm_nodes, rc, err, run_dynamic=False, holds=None):
    """node_state for each expected node; returns the names usable by the test job.

    holds: {node: reservation} of the nodes held out of scheduling until their node setup succeeds."""
    usable = []
    holds = holds or {}
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
        if name in holds:
            report.add("node_state", name, expected, "%s, held for its node setup (Slurm reservation %s)"
                       % (seen, holds[name]), False, HELD_FIX % name)
            continue
        report.add("node_state", name, expected, seen, ok,
                   "%s; after fixing it: scontrol update nodename=%s state=resume" % (why, name))
        if ok and (run_dynamic or not node_is_powered_down(state)):
            usable.append(name)
    return usable


def check_squeue(report, head, rc, out, err):
    jobs = [line for line in out.splitlines() if line.strip()]
    running = [line for line in jobs if "|RUNNING|" in line]
    report.add("squeue", head, "squeue answers", ("%d job(s), %d running" % (len(jobs), len(running)))
               if rc == 0 else "rc %s: %s" % (rc, err.strip()), rc == 0, "squeue cannot reach slurmctld")


def _drift_hint(name, seen, wanted):
    return ("Slurm runs %s=%s but the config asks for %s: the cluster runs another config than this one "
            "(update the cluster; ParallelCluster writes slurm.conf from the config), or slurm.conf was edited "
            "by hand" % (name, seen, wanted))


def _shown(name, value):
    """A setting's value, with what it means when Slurm shows it in a form that hides it."""
    return "%s (power saving off)" % value if setting_value(name, value) == "off" else value


def check_slurm_settings(report, head, expected, slurm_config, rc, err):
    """slurm_setting: each {name, value, source} as ``scontrol show config`` reports it."""
    keys = dict((key.lower(), key) for key in slurm_config)
    for item in expected:
        name, wanted = item["name"], str(item["value"])
        label = "%s = %s (%s)" % (name, _shown(name, wanted), item.get("source") or "expected")
        key = keys.get(name.lower())
        if rc != 0:
            report.add("slurm_setting", head, label, "scontrol show config failed: %s" % err.strip(), False,
                       "scontrol show config failed")
        elif key is None:
            report.add("slurm_setting", head, label, "not listed", False, "",
                       unavailable_reason="scontrol show config does not list %s" % name)
        else:
            seen = slurm_config[key]
            report.add("slurm_setting", head, label, _shown(name, seen),
                       setting_value(name, seen) == setting_value(name, wanted),
                       _drift_hint(name, seen, wanted))


def check_partition_settings(report, expected, partitions, rc):
    """partition_setting: each {partition, name, value, source} as ``scontrol show partition`` reports it.

    A partition that is missing is named by the partition check alone.
    """
    for item in expected:
        record = partitions.get(item["partition"])
        if rc != 0 or record is None:
            continue
        name, wanted = item["name"], str(item["value"])
        seen = record.get(name, "not listed")
        report.add("partition_setting", item["partition"],
                   "%s = %s (%s)" % (name, wanted, item.get("source") or "expected"), seen,
                   setting_value(name, seen) == setting_value(name, wanted), _drift_hint(name, seen, wanted))


def check_job_completion(report, head, expected_loc, slurm_config, jobs, check_mode, read_file,
                         clock=time.time, sleep=time.sleep):
    """job_completion_log: the test job is recorded in JobCompLoc (within 15 s of its end)."""
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
    if not jobs:
        report.add("job_completion_log", head, expected, "no test job ran", False, "the test job did not run")
        return
    names = set(j.get("job_name") for j in jobs if j.get("job_name"))
    deadline = clock() + 15
    text = read_file(expected_loc)
    while not any(("Name=%s " % n) in text or text.endswith("Name=%s" % n) for n in names) and clock() < deadline:
        sleep(0.5)
        text = read_file(expected_loc)
    found = any(("Name=%s" % n) in text for n in names)
    if found:
        seen = "test job recorded"
    elif not os.path.exists(expected_loc):
        seen = "%s does not exist" % expected_loc
    elif not os.access(expected_loc, os.R_OK):
        seen = "%s is not readable by this user" % expected_loc
    else:
        job_ids = [str(j.get("job_id")) for j in jobs if j.get("job_id")]
        seen = "test job %s not found in %s" % (", ".join(job_ids) or ", ".join(sorted(names)), expected_loc)
    report.add("job_completion_log", head, expected, seen, found,
               "check JobCompType=%s and that slurmctld can write %s" % (comp_type or "?", expected_loc))
