# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of hpc.pcluster.slurm_node_wait: one quick look, and a wait as a background job with progress lines.

Most runs find nothing to wait for: one module run (``timeout: 0``) says so. When static nodes are on
their way, the module runs again with the task's timeout as a background job, and the lines it writes
(when the wait starts, each minute, when it gives up) are printed as they come (ProgressRelayAction).
The result is the module's, plus ``waited``: seconds in all.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.hpc.pcluster.plugins.plugin_utils.progress_relay import ProgressRelayAction


class ActionModule(ProgressRelayAction):
    """Looks once; relays the module's progress when it has to wait."""

    MODULE = "hpc.pcluster.slurm_node_wait"
    DEFAULT_TIMEOUT = 900
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = ActionBase.run(self, tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        started = self.clock()
        try:
            timeout = int(args.get("timeout", self.DEFAULT_TIMEOUT))
        except (TypeError, ValueError):
            timeout = None  # the module reports the bad value
        step = self._execute_module(module_name=self.MODULE, module_args=args if timeout is None else dict(args, timeout=0),
                                    task_vars=task_vars)
        if not (step.get("failed") or step.get("settled") or not timeout or timeout <= 0):
            step = self.relay(args, task_vars)
        result.update(step)
        result["waited"] = round(self.clock() - started, 1)
        return result

    def timeout(self, args):
        return int(args.get("timeout", self.DEFAULT_TIMEOUT))
