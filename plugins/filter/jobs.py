# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the Slurm jobs the playbooks count before they stop a fleet or delete a cluster.

- ``slurm_job_table``  squeue lines ``id|state|user|partition|name|nodes`` -> the lines of a table with a header
"""

from __future__ import annotations

JOB_COLUMNS = ("JOBID", "STATE", "USER", "PARTITION", "NAME", "NODES")


def job_fields(line):
    """The six fields of one ``squeue --format=%i|%T|%u|%P|%j|%N`` line; a job name may hold '|' itself."""
    head = str(line).split("|", 4)
    head += [""] * (5 - len(head))
    name, _bar, nodes = head[4].rpartition("|") if "|" in head[4] else (head[4], "", "")
    return head[:4] + [name, nodes]


def slurm_job_table(lines):
    """A header and one row per job, in columns as wide as their widest cell (two spaces between)."""
    rows = [list(JOB_COLUMNS)] + [job_fields(line) for line in lines or []]
    widths = [max(len(row[column]) for row in rows) for column in range(len(JOB_COLUMNS))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


class FilterModule:
    def filters(self):
        return {"slurm_job_table": slurm_job_table}
