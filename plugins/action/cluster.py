# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side waiting for hpc.pcluster.cluster, with progress lines.

A module cannot print while it runs, and creating a cluster takes half an
hour. This action plugin runs the module with ``wait: false`` for single steps
(create/update/delete requested, or the compute fleet stopped for an update),
then polls ``hpc.pcluster.cluster_info`` on the controller's schedule
(5 s growing to 30 s) and prints a line at least once a minute: elapsed time,
cluster and stack status, resources complete out of the stack's total. When a
step says ``pending.rerun``, the module runs again to continue (for example:
wait for an in-progress create, then compare the configuration). The final
state is described once more, and a ``*_FAILED`` cluster fails the task with
the module_utils failure report.

Check mode and ``wait: false`` run the module once, unchanged.
"""

from __future__ import annotations

import time

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster_api import (
    WaitTimeout,
    cluster_summary,
    format_failure,
    format_progress_line,
    timeout_message,
    wait_until,
)

display = Display()

AWS_OPTIONS = ("region", "aws_region", "profile", "aws_profile", "endpoint_url", "aws_endpoint_url")
INFO_MODULE = "hpc.pcluster.cluster_info"
FLEET_MODULE = "hpc.pcluster.compute_fleet"


class PollFailed(Exception):
    """cluster_info failed while polling; carries its result."""

    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


class PclusterWaitAction(ActionBase):
    """Runs a module's steps and waits between them on the controller."""

    MODULE = None
    DEFAULT_TIMEOUT = 3600
    _supports_check_mode = True
    _supports_async = True
    REPORT_EVERY = 60.0
    sleep = staticmethod(time.sleep)
    clock = staticmethod(time.monotonic)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        self._task_vars = task_vars
        args = dict(self._task.args)
        try:
            wait = boolean(args.get("wait", True), strict=False)
        except TypeError:
            wait = True
        if self._task.async_val:
            result.update(self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars, wrap_async=True))
            return result
        if self._task.check_mode or not wait:
            result.update(self._run_module(self.MODULE, args, task_vars))
            return result
        try:
            timeout = int(args.get("wait_timeout", self.DEFAULT_TIMEOUT))
        except (TypeError, ValueError):
            timeout = self.DEFAULT_TIMEOUT  # the module reports the bad value
        self._aws_args = {k: v for k, v in args.items() if k in AWS_OPTIONS}
        self._name = args.get("name") or args.get("cluster_name")
        self._deadline = self.clock() + timeout
        self._timeout = timeout
        self._started = self.clock()
        self._waited = 0.0
        result.update(self.drive(dict(args, wait=False)))
        result["waited"] = round(self._waited, 1)
        return result

    # ----- helpers for subclasses

    def _run_module(self, name, args, task_vars=None):
        return self._execute_module(module_name=name, module_args=args, task_vars=self._task_vars if task_vars is None else task_vars)

    def remaining(self):
        return self._deadline - self.clock()

    def poll(self, goal):
        fleet = goal.startswith("fleet:")

        def _poll(want_progress):
            args = dict(self._aws_args, name=self._name, compute_fleet=fleet, stack_progress=bool(want_progress and not fleet))
            info = self._run_module(INFO_MODULE, args)
            if info.get("failed"):
                raise PollFailed(info)
            return {
                "cluster": info.get("cluster") or None,
                "fleet": info.get("compute_fleet"),
                "progress": info.get("stack_progress"),
            }

        return _poll

    def report(self, snapshot, _elapsed):
        display.display(format_progress_line(self._name, snapshot, self.clock() - self._started, self._timeout))

    def wait(self, goal):
        """Wait for ``goal`` printing progress; returns (snapshot, None) or (None, failed result)."""
        start = self.clock()
        try:
            return self._wait(goal)
        finally:
            self._waited += self.clock() - start

    def _wait(self, goal):
        try:
            snapshot = wait_until(
                self.poll(goal),
                goal,
                max(self.remaining(), 0),
                sleep=self.sleep,
                clock=self.clock,
                report=self.report,
                report_every=self.REPORT_EVERY,
            )
            return snapshot, None
        except WaitTimeout as exc:
            return None, {"failed": True, "msg": timeout_message(self._name, goal, self._timeout, exc.snapshot)}
        except PollFailed as exc:
            failed = dict(exc.result)
            failed["msg"] = "While waiting for cluster %s: %s" % (self._name, failed.get("msg"))
            return None, failed

    def drive(self, step_args):
        raise NotImplementedError


def merge_step(total, step):
    """Fold one module step's result into the task result."""
    if total is None:
        first = dict(step)
        first.pop("pending", None)
        return first
    merged = dict(total)
    merged["changed"] = bool(total.get("changed")) or bool(step.get("changed"))
    merged["actions"] = list(total.get("actions") or []) + list(step.get("actions") or [])
    for key in ("validation_messages", "change_set", "config_changes"):
        value = step.get(key)
        if value and (not isinstance(value, dict) or any(value.values())):
            merged[key] = value
    for key, value in step.items():
        if key in ("changed", "actions", "validation_messages", "change_set", "config_changes", "diff", "warnings"):
            continue
        merged[key] = value
    if step.get("diff") and not merged.get("diff"):
        merged["diff"] = step["diff"]
    warnings = list(total.get("warnings") or []) + [w for w in step.get("warnings") or [] if w not in (total.get("warnings") or [])]
    if warnings:
        merged["warnings"] = warnings
    merged.pop("pending", None)
    return merged


class ActionModule(PclusterWaitAction):
    """Action plugin of hpc.pcluster.cluster."""

    MODULE = "hpc.pcluster.cluster"

    def drive(self, step_args):
        total = None
        restart_fleet = False
        waited = False
        while True:
            step = self._run_module(self.MODULE, step_args)
            total = merge_step(total, step)
            if step.get("failed"):
                return total
            restart_fleet = restart_fleet or bool(step.get("fleet_stopped_for_update"))
            pending = step.get("pending")
            if not pending:
                break
            display.vvv("hpc.pcluster.cluster: waiting for %s" % pending.get("goal"))
            _snapshot, failed = self.wait(pending["goal"])
            if failed:
                return dict(total, **failed)
            waited = True
            if not pending.get("rerun"):
                break

        if not waited:
            return total
        final = self.describe_final()
        if final.get("failed"):
            return dict(total, **final)
        if restart_fleet and final.get("exists") and final.get("status") in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            fleet = self._run_module(FLEET_MODULE, dict(self._aws_args, name=self._name, state="started", wait=False))
            total["actions"] = list(total.get("actions") or []) + ["start compute fleet"]
            if fleet.get("failed"):
                return dict(total, failed=True, msg="Cluster %s was updated but its compute fleet did not start: %s" % (self._name, fleet.get("msg")))
            if fleet.get("pending"):
                _snapshot, failed = self.wait(fleet["pending"]["goal"])
                if failed:
                    return dict(total, **failed)
            final = self.describe_final()
        total.update({k: v for k, v in final.items() if k not in ("changed", "failed", "msg", "invocation")})
        if restart_fleet:
            total["fleet_stopped_for_update"] = True
        return total

    def describe_final(self):
        """describe-cluster once more; a failed cluster becomes a failed task with the failure report."""
        info = self._run_module(INFO_MODULE, dict(self._aws_args, name=self._name, failure_details=True))
        if info.get("failed"):
            return info
        result = cluster_summary(info.get("cluster") or None)
        status = str(result.get("status") or "")
        if status.endswith("_FAILED"):
            report = dict(info.get("failure") or {})
            region = (info.get("cluster") or {}).get("region") or self._aws_args.get("region")
            message = report.pop("message", None) or format_failure(self._name, region, report)
            result.update(failed=True, msg=message, failure=report)
        return result
