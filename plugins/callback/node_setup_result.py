# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the outcome of a node's local setup play to a JSON file."""

from __future__ import annotations

DOCUMENTATION = r"""
name: node_setup_result
type: aggregate
short_description: Write a node-setup play's outcome to a JSON file
version_added: 0.1.0
author: hpc.pcluster contributors (@hpc-pcluster)
description:
  - Used by the node-setup bundle of role C(hpc.pcluster.node_setup), where a node applies the collection's roles
    to itself (C(ansible-playbook -c local)) at boot or in the fleet-wide Slurm job.
  - When the play ends, writes C({stats, changed_tasks, failed_task}) to O(path) - C(stats) holds the play
    recap counts of the first host (C(ok), C(changed), C(failures), C(unreachable), C(skipped), C(rescued),
    C(ignored)), C(changed_tasks) the names of the tasks that changed something, C(failed_task) the first task
    that failed (C(task), C(role), C(msg)) or null.
  - Writes nothing when O(path) is empty.
requirements:
  - enable it with C(callbacks_enabled = hpc.pcluster.node_setup_result)
options:
  path:
    description: Where to write the JSON file.
    type: path
    default: ""
    env:
      - name: HPC_PCLUSTER_NODE_SETUP_RESULT
"""

import json
import os

from ansible.plugins.callback import CallbackBase

MESSAGE_LIMIT = 2000


def _message(result):
    """A failed task's message: msg, else the end of stderr, else the end of stdout."""
    for key in ("msg", "stderr", "stdout"):
        value = result.get(key)
        if value:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            return text[-MESSAGE_LIMIT:]
    return ""


class CallbackModule(CallbackBase):
    """Records changed tasks and the first failure, and writes the recap counts at the end of the play."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "hpc.pcluster.node_setup_result"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self._changed_tasks = []
        self._failed_task = None

    def _task_name(self, result):
        task = result._task  # pylint: disable=protected-access
        return task.get_name().strip()

    def v2_runner_on_ok(self, result):
        if result._result.get("changed") and self._task_name(result) not in self._changed_tasks:  # pylint: disable=protected-access
            self._changed_tasks.append(self._task_name(result))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if ignore_errors or self._failed_task is not None:
            return
        role = getattr(result._task, "_role", None)  # pylint: disable=protected-access
        self._failed_task = {"task": self._task_name(result), "role": role.get_name() if role else None,
                             "msg": _message(result._result)}  # pylint: disable=protected-access

    def v2_runner_on_unreachable(self, result):
        self.v2_runner_on_failed(result)

    def v2_playbook_on_stats(self, stats):
        path = self.get_option("path")
        if not path:
            return
        hosts = sorted(stats.processed.keys())
        counts = stats.summarize(hosts[0]) if hosts else {}
        data = {"stats": counts, "changed_tasks": self._changed_tasks, "failed_task": self._failed_task}
        tmp = "%s.tmp" % path
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, sort_keys=True, default=str)
        os.replace(tmp, path)
