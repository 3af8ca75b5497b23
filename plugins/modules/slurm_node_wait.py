#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: slurm_node_wait
short_description: Wait for static Slurm nodes that are on their way to usable (powering up, completing)
version_added: 0.1.0
description:
  - Polls C(scontrol -o show node) on the head node until none of the given nodes is in a transitional
    state, or until O(timeout) seconds passed. Transitional is powered down or powering up (C(~) or C(#),
    after a compute fleet start or a node replacement, until clustermgtd has them up), powering down,
    rebooting, or completing a job.
  - ParallelCluster waits for its static nodes before it reports C(CREATE_COMPLETE), but not after a compute
    fleet stop and start or a cluster update, when they boot again. Run this before
    M(hpc.pcluster.slurm_verify) so that nodes are judged once they had the time to come up.
  - Nodes that are down, drained or failed are not waited for (waiting does not change them), nor nodes
    whose partitions are all not C(UP) (C(INACTIVE) while the compute fleet is stopped).
  - Never fails because nodes stay transitional. They are returned in RV(waiting), and the checks judge them.
  - Through the collection's action plugin, the module first looks once; when it has to wait, it runs as a
    background job whose progress lines (when the wait starts, each minute, and when it gives up, with the
    nodes still waited for and their states) are printed as they come.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  nodes:
    description: Slurm names of the static nodes to wait for, for example V(compute-gpu-st-distributed-ml-1).
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds to wait at most; V(0) only looks once.
    type: int
    default: 900
  poll_interval:
    description: Seconds between two looks at the node states.
    type: int
    default: 5
  slurm_bin_dir:
    description: Directory holding C(scontrol). Found on E(PATH) or under C(/opt/slurm/bin) when empty.
    type: str
    default: ""
  progress_file:
    description:
      - A file on the head node to which the module appends its progress lines.
      - The collection's action plugin sets it when it runs the module as a background job; there is no need
        to set it by hand.
    type: path
notes:
  - Only reads Slurm's state; it changes nothing.
attributes:
  action:
    support: full
    description: An action plugin looks once, and runs a wait as a background job whose progress lines it prints.
  async:
    support: none
    description: The action plugin runs the wait as a background job itself.
  check_mode:
    support: full
    description: Only reads, so it waits in check mode too.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
seealso:
  - module: hpc.pcluster.slurm_verify
"""

EXAMPLES = r"""
- name: Give static nodes up to 15 minutes to come up after a compute fleet start
  hpc.pcluster.slurm_node_wait:
    nodes: [compute-gpu-st-distributed-ml-1, compute-gpu-st-distributed-ml-2]
    timeout: 900
  register: node_wait
"""

RETURN = r"""
settled:
  description: Whether no given node is transitional any more (false when the timeout passed first).
  returned: always
  type: bool
  sample: true
timed_out:
  description: Whether the timeout passed while nodes were still transitional (they are left to the checks).
  returned: always
  type: bool
  sample: false
waited:
  description: Seconds the task waited in all (set by the action plugin).
  returned: when run through the action plugin
  type: float
  sample: 62.4
waiting:
  description: The nodes still transitional when the wait ended, with their Slurm states.
  returned: always
  type: dict
  sample: {compute-gpu-st-distributed-ml-1: IDLE+CLOUD+POWERING_UP}
not_waited:
  description: Transitional nodes that were not waited for, with the reason (their partitions are not up).
  returned: always
  type: dict
  sample: {compute-gpu-st-distributed-ml-2: partition compute-gpu is INACTIVE}
states:
  description: The Slurm state of every given node when the wait ended.
  returned: always
  type: dict
  sample: {compute-gpu-st-distributed-ml-1: IDLE}
elapsed:
  description: Seconds this call waited.
  returned: always
  type: float
  sample: 12.5
error:
  description: Why Slurm could not be asked (the wait then ends at once); empty when it answered.
  returned: always
  type: str
  sample: ""
"""

import os
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.pcluster.plugins.module_utils.progress_lines import PROGRESS_OPTION, write_progress
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.slurm_checks import find_slurm_bin
from ansible_collections.hpc.pcluster.plugins.module_utils.slurm.node_states import wait_for_static_nodes
from ansible_collections.hpc.pcluster.plugins.module_utils.slurm.parsers import parse_scontrol_records
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.check_report import CommandRunner


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="str", required=True),
            timeout=dict(type="int", default=900),
            poll_interval=dict(type="int", default=5),
            slurm_bin_dir=dict(type="str", default=""),
            **PROGRESS_OPTION
        ),
        supports_check_mode=True,
    )
    host = socket.gethostname()
    runner = CommandRunner(module, find_slurm_bin(module.params["slurm_bin_dir"], os.environ.get("PATH", "")))
    scontrol = runner.slurm("scontrol")

    def look():
        rc, out, err = runner.run([scontrol, "-o", "show", "node"], timeout=30)
        if rc != 0:
            return "scontrol show node failed (rc %s): %s" % (rc, err.strip()), {}, {}
        rc_p, out_p, dummy = runner.run([scontrol, "-o", "show", "partition"], timeout=30)
        partitions = parse_scontrol_records(out_p, "PartitionName") if rc_p == 0 else {}
        return "", parse_scontrol_records(out, "NodeName"), partitions

    result = wait_for_static_nodes(look, module.params["nodes"], max(module.params["timeout"], 0),
                                   poll_interval=max(module.params["poll_interval"], 1),
                                   progress=lambda line: write_progress(module, "[%s] %s" % (host, line)))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
