# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compute nodes held out of scheduling until their node setup succeeds, and the fleet job's own reservation.

A node is held with a Slurm maintenance reservation of its own, ``hpc-pcluster-node-setup-<node>`` (for root,
from now on, Flags=MAINT,IGNORE_JOBS), not with DRAIN: on ParallelCluster a drained static node is taken for
unhealthy and replaced by clustermgtd (terminate_drain_nodes), is resumed by the node's own bootstrap
(finalize: ``scontrol update state=resume``), and keeps the head node from signalling a create complete
(is_fleet_ready.sh accepts idle, alloc, mix and maint only). A node in a maintenance reservation is none of
these: ``maint`` to sinfo, healthy to clustermgtd, and no job but root's asking for the reservation starts there.

The fleet job reserves the nodes it runs on (``hpc-pcluster-setup-job-<time>``, MAINT without IGNORE_JOBS):
Slurm refuses the reservation when one of them has taken a job since sinfo was read, and a MAINT reservation
may overlap the nodes' holds, so one srun per partition reaches held and free nodes alike.
"""

from __future__ import annotations

import time

from ansible_collections.hpc.pcluster.plugins.module_utils.slurm.parsers import parse_scontrol_records

HOLD_PREFIX = "hpc-pcluster-node-setup-"
JOB_RESERVATION_PREFIX = "hpc-pcluster-setup-job-"
# What scontrol says when the nodes of a new reservation run jobs, and when a reservation does not exist.
BUSY_MARK = "nodes are busy"
MISSING_MARK = "reservation is invalid"


def hold_name(node):
    return HOLD_PREFIX + node


def holds(reservations_text):
    """{node: reservation name} of the nodes held for setup, from ``scontrol show reservation --oneliner``."""
    found = {}
    for name, record in parse_scontrol_records(reservations_text, "ReservationName").items():
        if name.startswith(HOLD_PREFIX) and record.get("Nodes") == name[len(HOLD_PREFIX):]:
            found[record["Nodes"]] = name
    return found


def create_hold_argv(scontrol, node):
    return [scontrol, "create", "reservation", "ReservationName=%s" % hold_name(node), "Nodes=%s" % node,
            "StartTime=now", "Duration=UNLIMITED", "Users=root", "Flags=MAINT,IGNORE_JOBS"]


def delete_argv(scontrol, name):
    return [scontrol, "delete", "reservation=%s" % name]


def job_reservation_argv(scontrol, name, nodes, minutes):
    """The fleet job's reservation: refused by Slurm when one of the nodes runs a job."""
    return [scontrol, "create", "reservation", "ReservationName=%s" % name, "Nodes=%s" % ",".join(nodes),
            "StartTime=now", "Duration=%d" % minutes, "Users=root", "Flags=MAINT"]


def job_reservation_name(now=None):
    return "%s%d" % (JOB_RESERVATION_PREFIX, int(now if now is not None else time.time()))


def hold(run_command, scontrol, node):
    """Hold a node; returns None, or why it could not be held (a hold already there is fine)."""
    rc, out, err = run_command(create_hold_argv(scontrol, node))
    text = (out + err).strip()
    if rc == 0 or "duplicate" in text.lower():
        return None
    return text or "scontrol exit status %d" % rc


def release(run_command, scontrol, name):
    """Delete a reservation; returns None, or why it could not be deleted (one that is gone already is fine)."""
    rc, out, err = run_command(delete_argv(scontrol, name))
    text = (out + err).strip()
    if rc == 0 or MISSING_MARK in text.lower():
        return None
    return text or "scontrol exit status %d" % rc
