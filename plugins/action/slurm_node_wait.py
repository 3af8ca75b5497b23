# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of hpc.pcluster.slurm_node_wait: one module run per minute and a progress line each minute.

A module cannot print while it runs. This plugin first looks once (``timeout: 0``); when nodes are
transitional it prints which, then runs the module with a budget of one minute at a time until they
settle or the task's ``timeout`` passed, printing a line after each minute. The result is that of the
last module run, plus ``waited`` (seconds in all) and ``timed_out``.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.hpc.pcluster.plugins.module_utils.slurm_node_states import waiting_line

display = Display()

MODULE = "hpc.pcluster.slurm_node_wait"
DEFAULT_TIMEOUT = 900


def minutes(seconds):
    return "%g min" % round(seconds / 60.0, 1)


class ActionModule(ActionBase):
    """Action plugin of hpc.pcluster.slurm_node_wait."""

    _supports_check_mode = True
    STEP = 60
    clock = staticmethod(time.monotonic)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        host = (task_vars or {}).get("inventory_hostname", "")
        try:
            timeout = max(int(args.get("timeout", DEFAULT_TIMEOUT)), 0)
        except (TypeError, ValueError):
            result.update(self._look(args, args.get("timeout"), task_vars))  # the module names the bad value
            return result
        start = self.clock()
        step = self._look(args, 0, task_vars)
        if not step.get("failed") and not step.get("settled") and timeout > 0:
            display.display("%s: waiting up to %s for %d static node(s) in a transitional state: %s"
                            % (host, minutes(timeout), len(step["waiting"]), waiting_line(step["waiting"])))
            step = self._wait(args, host, timeout, start, task_vars)
        result.update(step)
        result["waited"] = round(self.clock() - start, 1)
        result["timed_out"] = not step.get("failed") and not step.get("settled")
        if result["timed_out"] and timeout > 0:
            display.display("%s: %d static node(s) still in a transitional state after %s, judged as they are: %s"
                            % (host, len(step["waiting"]), minutes(timeout), waiting_line(step["waiting"])))
        return result

    def _look(self, args, timeout, task_vars):
        return self._execute_module(module_name=MODULE, module_args=dict(args, timeout=timeout), task_vars=task_vars)

    def _wait(self, args, host, timeout, start, task_vars):
        """Module runs of at most STEP seconds each until the nodes settle or the timeout passed."""
        while True:
            step = self._look(args, int(min(self.STEP, timeout - (self.clock() - start))), task_vars)
            if step.get("failed") or step.get("settled") or timeout - (self.clock() - start) < 1:
                return step
            display.display("%s: %d static node(s) still in a transitional state after %s (of %s): %s"
                            % (host, len(step["waiting"]), minutes(self.clock() - start), minutes(timeout),
                               waiting_line(step["waiting"])))
