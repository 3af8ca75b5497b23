# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress relay (controller side): run a waiting module as a background job and print the progress lines it writes."""

from __future__ import annotations

import json
import posixpath
import secrets
import shlex
import time

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

# Separates the progress text from the job's result file in the output of one read.
RESULT_MARK = "--hpc.pcluster-job-result--"
# Keys of async_status's answer that are about the job, not the module's result.
JOB_KEYS = ("ansible_job_id", "started", "finished", "results_file", "erased", "stdout", "stderr", "stdout_lines", "stderr_lines")


class LineBuffer:
    """Complete lines out of text read from a growing file; ``offset`` counts the bytes read (where to go on)."""

    def __init__(self):
        self.offset = 0
        self.partial = ""

    def feed(self, text):
        self.offset += len(text.encode("utf-8"))
        *lines, self.partial = (self.partial + text).split("\n")
        return [line for line in lines if line.strip()]


class ProgressRelayAction(ActionBase):
    """Runs MODULE: as a background job with a progress file when it waits, else as it is.

    The module does every step and every wait itself. This plugin only starts it (async_wrapper, as
    ``async:`` does), then every POLL_EVERY seconds reads, with one shell command and no module run,
    the new lines of the progress file and the job's result file, prints the lines, and prints a
    "still on" line when none came for HEARTBEAT_EVERY seconds. When the result file holds the result,
    async_status fetches it once and cleans up. Check mode, ``wait: false`` and a task with its own
    ``async`` run the module unchanged. If the playbook is interrupted, the job goes on to its end.
    """

    MODULE = None
    DEFAULT_TIMEOUT = 3600
    POLL_EVERY = 3.0
    HEARTBEAT_EVERY = 60.0
    JOB_MARGIN = 600  # seconds the job may run past wait_timeout before async_wrapper stops it
    _supports_check_mode = True
    _supports_async = True
    sleep = staticmethod(time.sleep)
    clock = staticmethod(time.monotonic)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        try:
            wait = boolean(args.get("wait", True), strict=False)
        except TypeError:
            wait = True  # the module reports the bad value
        if self._task.async_val:
            result.update(self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars, wrap_async=True))
        elif self._task.check_mode or not wait:
            result.update(self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars))
        else:
            result.update(self.relay(args, task_vars))
        return result

    def timeout(self, args):
        try:
            return int(args.get("wait_timeout", self.DEFAULT_TIMEOUT))
        except (TypeError, ValueError):
            return self.DEFAULT_TIMEOUT  # the module reports the bad value

    def relay(self, args, task_vars):
        """Start the job, relay its progress until it has finished, return the module's result."""
        async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        progress = self._connection._shell.join_path(async_dir, "hpc_pcluster.%s.progress" % secrets.token_hex(8))
        limit = self.timeout(args) + self.JOB_MARGIN
        job = self.start(dict(args, progress_file=progress), task_vars, limit)
        if job.get("failed") or not job.get("ansible_job_id"):
            return job
        name = args.get("name") or args.get("cluster_name") or self.MODULE
        try:
            if not self.follow(job, progress, limit, name):
                return {"failed": True, "changed": False, "ansible_job_id": job["ansible_job_id"],
                        "msg": "%s did not finish within %d s; its job %s was stopped (result in %s)."
                        % (self.MODULE, limit, job["ansible_job_id"], job.get("results_file"))}
            # async_status looks where the job wrote its result: the wrapper expands "~" from its own $HOME,
            # which can differ from the login user's home that async_dir was expanded with.
            job_dir = posixpath.dirname(job.get("results_file") or "") or async_dir
            return self.collect(job["ansible_job_id"], job_dir, task_vars)
        except KeyboardInterrupt:
            display.warning("%s goes on in the background as job %s (result in %s)."
                            % (self.MODULE, job["ansible_job_id"], job.get("results_file")))
            raise
        finally:
            self._low_level_execute_command("rm -f %s" % shlex.quote(progress))

    def start(self, args, task_vars, limit):
        saved = self._task.async_val
        self._task.async_val = limit
        try:
            return self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars, wrap_async=True)
        finally:
            self._task.async_val = saved

    def read(self, progress, offset, results_file):
        """(new progress text from ``offset``, the job's result file parsed or None) in one command."""
        command = "tail -c +%d %s 2>/dev/null; printf '\\n%s\\n'; cat %s 2>/dev/null" % (
            offset + 1, shlex.quote(progress), RESULT_MARK, shlex.quote(results_file))
        # Over ssh a low-level command runs in a tty (ssh -tt), which ends every line with CR LF.
        out = (self._low_level_execute_command(command).get("stdout") or "").replace("\r\n", "\n")
        text, _mark, rest = out.rpartition("\n%s\n" % RESULT_MARK)
        try:
            data = json.loads(rest) if rest.strip() else None
        except ValueError:
            data = None
        return text, data if isinstance(data, dict) else None

    def follow(self, job, progress, limit, name):
        """Print progress lines as they come until the job has written its result (True) or ``limit`` passed."""
        lines = LineBuffer()
        started = last_shown = self.clock()
        last_line = "started"
        while True:
            self.sleep(self.POLL_EVERY)
            text, data = self.read(progress, lines.offset, job["results_file"])
            now = self.clock()
            for line in lines.feed(text):
                display.display(line)
                last_shown, last_line = now, line
            if data is not None and not (data.get("started") and not data.get("finished")):
                return True
            if now - started > limit + self.POLL_EVERY * 10:  # async_wrapper stops the job at the limit
                return False
            if now - last_shown >= self.HEARTBEAT_EVERY:
                display.display("[%s] still on: %s (%ds since the last line)" % (name, last_line, int(now - last_shown)))
                last_shown = now

    def collect(self, jid, async_dir, task_vars):
        """The module's result from async_status, then the job's files removed."""
        status = dict(jid=jid, _async_dir=async_dir)
        result = self._execute_module(module_name="ansible.legacy.async_status", module_args=status, task_vars=task_vars)
        self._execute_module(module_name="ansible.legacy.async_status", module_args=dict(status, mode="cleanup"), task_vars=task_vars)
        return {key: value for key, value in result.items() if key not in JOB_KEYS}
