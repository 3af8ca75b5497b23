# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Slurm node state means: usable, unhealthy, or on its way (worth waiting for) for the verify role; a
target, busy, powered down or unavailable for the node-setup fleet job. Long states (``IDLE+CLOUD+POWERED_DOWN``)
and sinfo's compact ones (``idle~``, ``down*``, ``pow_up``) are read alike (slurm/parsers.parse_node_state)."""

from __future__ import annotations

import itertools
import time

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.wait import (
    REPORT_EVERY,
    WaitTimeout,
    format_duration,
    wait_until,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.slurm.parsers import parse_node_state

USABLE_BASE_STATES = ("IDLE", "ALLOCATED", "MIXED", "COMPLETING")
# Flags of a node that cannot take jobs, whatever its base state.
UNHEALTHY_FLAGS = ("DRAIN", "DRAINING", "DRAINED", "FAIL", "FAILING", "NOT_RESPONDING", "MAINTENANCE",
                   "INVALID_REG", "REBOOT_REQUESTED", "REBOOT_ISSUED", "POWERING_DOWN", "POWER_DOWN")
POWER_FLAGS = ("POWERED_DOWN", "POWERING_UP", "POWER_UP", "POWERING_DOWN", "POWER_DOWN")
# A static node passes through these on its way to usable: powered down until clustermgtd powers it up
# (after a fleet start or a replacement), powering up, rebooting, or still finishing its last job.
TRANSITIONAL_FLAGS = POWER_FLAGS + ("REBOOT_REQUESTED", "REBOOT_ISSUED", "COMPLETING")
# Set by a person or by Slurm on a fault: waiting does not change them.
STUCK_FLAGS = ("DRAIN", "FAIL", "FAILING", "MAINTENANCE")
# Base states a dynamic node must never be in, powered down or not.
DYNAMIC_BAD_BASE_STATES = ("DOWN", "FUTURE", "UNKNOWN")
# sinfo's compact base states of a node powered down, or on its way up, that carry no power flag.
POWER_BASE_STATES = ("POW_DN", "POW_UP")
# Flags of a node that does not take a job now, whatever its base state: not responding, rebooting, in maintenance.
NOT_READY_FLAGS = ("NOT_RESPONDING", "REBOOT_REQUESTED", "REBOOT_ISSUED", "MAINTENANCE")
# Base states of a node running (or finishing) jobs; draining with jobs included.
BUSY_BASE_STATES = ("ALLOCATED", "MIXED", "COMPLETING")
# The base state sinfo shows for a node in a maintenance reservation.
MAINT_BASE_STATE = "MAINT"


def describe_flags(flags):
    return ", ".join(f.lower().replace("_", " ") for f in sorted(flags))


def judge_node_state(state, static):
    """(ok, why not) for a node state.

    A static node must be usable now: idle, alloc, mix (or completing a job), responding, powered up.
    A dynamic node may be powered down or powering up or down, but only when healthy: DOWN, DRAIN or
    FAIL fail it even when it is also CLOUD and POWERED_DOWN (``idle~`` is fine, ``down~`` is not).
    """
    base, flags = parse_node_state(state)
    if static:
        if base in USABLE_BASE_STATES and not flags.intersection(UNHEALTHY_FLAGS + POWER_FLAGS):
            return True, ""
        if static_node_transitional(state):
            what = describe_flags(flags.intersection(TRANSITIONAL_FLAGS)) or "completing"
            return False, "static node is still %s: wait longer for it (verify_node_wait_timeout)" % what
        return False, "static node must be idle, alloc or mix and responding"
    if base in DYNAMIC_BAD_BASE_STATES:
        return False, "dynamic node is %s%s" % (base.lower(), " (and %s)" % describe_flags(flags) if flags else "")
    bad = flags.intersection(UNHEALTHY_FLAGS).difference(("POWERING_DOWN", "POWER_DOWN"))
    if bad:
        return False, "dynamic node is %s" % describe_flags(bad)
    return True, ""


def node_is_powered_down(state):
    """Whether the node is powered down or powering up (no test job can run there yet)."""
    return bool(parse_node_state(state)[1].intersection(("POWERED_DOWN", "POWERING_UP")))


def node_setup_kind(state, held=False):
    """What the node-setup fleet job does with a node in this state: ``target`` (set it up now: idle, or held for
    setup by this collection when held), ``busy`` (running or finishing jobs: left alone, as the roles restart Docker
    and slurmd), ``powered_down`` (powered down, powering up or down: it sets itself up when it boots) or
    ``unavailable`` (down, drained, failed, not responding, rebooting, another's maintenance)."""
    base, flags = parse_node_state(state)
    if flags.intersection(POWER_FLAGS) or base in POWER_BASE_STATES:
        return "powered_down"
    if flags.intersection(NOT_READY_FLAGS):
        return "unavailable"
    if (base == "IDLE" and "DRAIN" not in flags) or (base == MAINT_BASE_STATE and held):
        return "target"
    if base in BUSY_BASE_STATES:
        return "busy"
    return "unavailable"


def static_node_transitional(state):
    """Whether a static node in this state is on its way to usable (worth waiting for)."""
    base, flags = parse_node_state(state)
    if flags.intersection(STUCK_FLAGS):
        return False
    return base == "COMPLETING" or bool(flags.intersection(TRANSITIONAL_FLAGS))


def transitional_nodes(node_records, partition_records, names):
    """({name: state} of the named nodes worth waiting for, {name: why not} of transitional ones that are not).

    Nodes whose every partition is not UP (INACTIVE while the compute fleet is stopped) are not waited for.
    """
    waiting, not_waited = {}, {}
    for name in names:
        record = node_records.get(name)
        if record is None or not static_node_transitional(record.get("State", "")):
            continue
        partitions = [p for p in record.get("Partitions", "").split(",") if p]
        states = dict((p, (partition_records.get(p) or {}).get("State", "UP")) for p in partitions)
        if states and "UP" not in states.values():
            not_waited[name] = "partition %s" % ", ".join("%s is %s" % item for item in sorted(states.items()))
            continue
        waiting[name] = record.get("State", "")
    return waiting, not_waited


def waiting_line(waiting, limit=5):
    """``n1 IDLE+COMPLETING, n2 IDLE+CLOUD+POWERING_UP and 3 more``."""
    names = sorted(waiting)
    shown = ", ".join("%s %s" % (name, waiting[name]) for name in names[:limit])
    return shown + (" and %d more" % (len(names) - limit) if len(names) > limit else "")


def wait_for_static_nodes(look, names, timeout, poll_interval=5.0, progress=None, report_every=REPORT_EVERY,
                          clock=time.monotonic, sleep=time.sleep):
    """Poll until none of the named static nodes is transitional, or timeout seconds passed (the collection's one
    wait loop, pcluster.wait.wait_until, every poll_interval seconds).

    look() returns (error, node records, partition records); on an error the wait ends (the checks report
    the controller). progress(line), when given, hears when the wait starts, every report_every seconds
    and when it gives up. Returns {settled, timed_out, waiting, not_waited, states, elapsed, error}.
    """
    progress = progress or (lambda line: None)
    start = clock()
    started = []

    def poll(want_progress):  # pylint: disable=unused-argument
        error, nodes, partitions = look()
        waiting, not_waited = ({}, {}) if error else transitional_nodes(nodes, partitions, names)
        return {"error": error, "nodes": nodes, "waiting": waiting, "not_waited": not_waited}

    def report(snapshot, elapsed):
        waiting = snapshot["waiting"]
        if not waiting or snapshot["error"] or timeout <= 0:
            return
        if not started:
            started.append(elapsed)
            progress("waiting up to %s for %d static node(s) in a transitional state: %s"
                     % (format_duration(timeout), len(waiting), waiting_line(waiting)))
        else:
            progress("%d static node(s) still in a transitional state after %s (of %s): %s"
                     % (len(waiting), format_duration(elapsed), format_duration(timeout), waiting_line(waiting)))

    try:
        snapshot = wait_until(poll, "settled", timeout, sleep=sleep, clock=clock, report=report,
                              report_every=report_every, intervals=itertools.repeat(float(poll_interval)),
                              reached=lambda goal, snap: bool(snap["error"]) or not snap["waiting"], key=lambda snap: None)
    except WaitTimeout as gave_up:
        snapshot = gave_up.snapshot
    elapsed = clock() - start
    error, nodes, waiting = snapshot["error"], snapshot["nodes"], snapshot["waiting"]
    if waiting and timeout > 0:
        progress("%d static node(s) still in a transitional state after %s, judged as they are: %s"
                 % (len(waiting), format_duration(timeout), waiting_line(waiting)))
    states = dict((n, (nodes.get(n) or {}).get("State", "not defined in Slurm")) for n in names) if not error else {}
    return dict(settled=not waiting, timed_out=bool(waiting) and timeout > 0, waiting=waiting,
                not_waited=snapshot["not_waited"], states=states, elapsed=round(elapsed, 1), error=error or "")
