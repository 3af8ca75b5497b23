# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The progress option of the modules that wait (cluster, compute_fleet)."""

    DOCUMENTATION = r"""
options:
  progress_file:
    description:
      - A file on the host that runs the module to which it appends a progress line at least every 55 seconds
        while it waits (elapsed time, cluster and stack status, resources complete), and one line per step.
      - The collection's action plugin sets it when it runs the module as a background job and prints the lines
        in the playbook output as they come; there is no need to set it by hand.
    type: path
attributes:
  action:
    support: full
    description: An action plugin runs the module as a background job and prints its progress lines.
  async:
    support: full
    description: With C(async), the task runs as an ordinary background job without progress lines.
"""
