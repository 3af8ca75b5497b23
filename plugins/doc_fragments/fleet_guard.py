# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The running-jobs guard of every compute fleet stop (cluster's update path, compute_fleet)."""

    DOCUMENTATION = r"""
options:
  unfinished_jobs:
    description:
      - How many Slurm jobs of any user are not finished (pending, configuring, running, completing, suspended,
        ...), as the caller counted them on the head node just before this task (the module runs on the
        controller and cannot see them). C(playbooks/tasks/count_jobs.yml) counts them.
      - The compute fleet is stopped only when this is V(0) or O(force_fleet_stop=true); without it, a stop is
        refused (check mode warns instead). A fleet an earlier run stopped and marked for a restart is not
        counted again.
    type: int
  force_fleet_stop:
    description:
      - Stop the compute fleet whatever O(unfinished_jobs) says (jobs are killed).
    type: bool
    default: false
"""
