# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Screen output that shows what changed and what the playbooks report; -v for everything."""

from __future__ import annotations

DOCUMENTATION = r"""
name: concise
type: stdout
short_description: What changed, what failed and what the playbooks report; C(-v) shows everything
version_added: 0.1.0
author: hpc.pcluster contributors (@hpc-pcluster)
description:
  - The default output of the collection's checkout (its C(ansible.cfg)). A run that changes nothing fits on one
    screen - the messages the playbooks print (the cluster's state, one line per compute node's setup, the
    verification summary, how to reach the head node), the play recap and a last line saying that nothing changed.
  - 'At verbosity 0 it prints: each task that changed something (C(changed: [host]), with its diff under C(--diff)),
    each failure, each unreachable host, every warning (each once), the message of every C(ansible.builtin.debug)
    task (its C(verbosity) option hides the chatty ones), the progress lines of the collection''s waiting tasks, the
    play recap, and one line that sums the run up. A failure shows its message once, followed by the result''s other
    short values; long ones (a whole cluster description, every validation message) are named, and C(-v) prints them.'
  - Results that are C(ok) and unchanged, skipped tasks, included files and plays that print nothing are left out.
  - With C(-v) or more it prints exactly what C(ansible.builtin.default) prints, and the closing line.
extends_documentation_fragment:
  - default_callback
  - result_format_callback
requirements:
  - 'set it as the stdout callback: C(stdout_callback = hpc.pcluster.concise) in the C([defaults]) section of
    C(ansible.cfg), or C(ANSIBLE_STDOUT_CALLBACK=hpc.pcluster.concise)'
"""

import json

from ansible import constants as C
from ansible import context
from ansible.playbook.task_include import TaskInclude
from ansible.plugins.callback.default import CallbackModule as DefaultCallback

# A failed result's values longer than this (as JSON) are named rather than printed at verbosity 0.
SHORT_VALUE = 300
# stdout and stderr of a failed command are kept, cut to their end.
OUTPUT_TAIL = 1500
# Left out of a failure at verbosity 0: redundant (the *_lines copies, the error block says failed_when) or timing.
FAILURE_DROPPED = ("invocation", "changed", "stdout_lines", "stderr_lines", "failed_when_result", "changed_when_result",
                   "failed_when_suppressed_exception", "start", "end", "delta")


def message_lines(value, title):
    """A debug task's message as lines: a string as it is, a list under its title one item a line, else YAML-ish."""
    if isinstance(value, str):
        return value.splitlines() or [""]
    if isinstance(value, (list, tuple)):
        lines = ["%s:" % title]
        for item in value:
            text = item if isinstance(item, str) else json.dumps(item, default=str)
            first, *rest = text.splitlines() or [""]
            lines.append("  - %s" % first)
            lines.extend("    %s" % line for line in rest)
        return lines
    if isinstance(value, dict):
        return ["%s:" % title] + ["  %s: %s" % (key, item if isinstance(item, str) else json.dumps(item, default=str))
                                  for key, item in value.items()]
    return [str(value)]


def short_failure(result, error_shown):
    """The keys of a failed result worth printing at verbosity 0, and the names of those left out."""
    shown, left_out = {}, []
    for key, value in result.items():
        if key in FAILURE_DROPPED or key.startswith("_ansible") or (key == "msg" and error_shown):
            continue
        if key in ("stdout", "stderr") and isinstance(value, str):
            shown[key] = value[-OUTPUT_TAIL:]
            continue
        if len(json.dumps(value, default=str)) > SHORT_VALUE:
            left_out.append(key)
        else:
            shown[key] = value
    return shown, sorted(left_out)


def closing_line(stats, check_mode):
    """One line that sums the run up, or None when a host failed or was unreachable (its error says more)."""
    totals = {host: stats.summarize(host) for host in sorted(stats.processed.keys())}
    if any(t["failures"] or t["unreachable"] for t in totals.values()):
        return None
    changed = ["%s %d" % (host, t["changed"]) for host, t in totals.items() if t["changed"]]
    if not changed:
        return ("Check mode: nothing would change (changed=0 on every host)." if check_mode else
                "Nothing changed: every host was already as configured (changed=0).")
    return "%s: %s (tasks per host)." % ("Check mode, would change" if check_mode else "Changed", ", ".join(changed))


class CallbackModule(DefaultCallback):
    """ansible.builtin.default, quiet about what did not change at verbosity 0."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "hpc.pcluster.concise"

    def __init__(self):
        super().__init__()
        self._pending_play_banner = None

    @property
    def _quiet(self):
        return self._display.verbosity == 0

    # ----- banners: a play's or a task's only once something of it is printed

    def v2_playbook_on_play_start(self, play):
        if not self._quiet:
            return super().v2_playbook_on_play_start(play)
        self._play = play
        name = play.get_name().strip()
        marker = " [CHECK MODE]" if play.check_mode and self.get_option("check_mode_markers") else ""
        self._pending_play_banner = ("PLAY [%s]%s" % (name, marker)) if name else "PLAY%s" % marker
        return None

    def _flush_play_banner(self):
        if self._pending_play_banner:
            self._display.banner(self._pending_play_banner)
            self._pending_play_banner = None

    def _task_start(self, task, prefix=None):
        if not self._quiet:
            return super()._task_start(task, prefix)
        # As the default callback does when it filters ok and skipped results: the banner waits for a result.
        if prefix is not None:
            self._task_type_cache[task._uuid] = prefix
        free = self._play.strategy in ("free", "host_pinned", "ansible.builtin.free", "ansible.builtin.host_pinned")
        self._last_task_name = None if free else task.get_name().strip()
        return None

    def _print_task_banner(self, task):
        self._flush_play_banner()
        super()._print_task_banner(task)

    # ----- results

    def v2_runner_on_ok(self, result):
        if not self._quiet or self._changed_not_debug(result):
            return super().v2_runner_on_ok(result)
        return self._quiet_ok(result, whole_loop=bool(result.task.loop and "results" in result.result))

    def v2_runner_item_on_ok(self, result):
        if not self._quiet or self._changed_not_debug(result):
            return super().v2_runner_item_on_ok(result)
        return self._quiet_ok(result, whole_loop=False)

    def _quiet_ok(self, result, whole_loop):
        """An unchanged result at verbosity 0: its warnings, and a debug task's message (each item's, not the loop's)."""
        if isinstance(result.task, TaskInclude):
            return None
        self._handle_warnings_and_exception(result)
        if result.task.action in C._ACTION_DEBUG and not whole_loop:
            self._print_message(result)
        return None

    def v2_runner_on_skipped(self, result):
        if not self._quiet:
            super().v2_runner_on_skipped(result)

    def v2_runner_item_on_skipped(self, result):
        if not self._quiet:
            super().v2_runner_item_on_skipped(result)

    def v2_playbook_on_include(self, included_file):
        if not self._quiet:
            super().v2_playbook_on_include(included_file)

    def v2_playbook_on_no_hosts_matched(self):
        if not self._quiet:
            super().v2_playbook_on_no_hosts_matched()

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not self._quiet:
            return super().v2_runner_on_failed(result, ignore_errors)
        if self._last_task_banner != result.task._uuid:
            self._print_task_banner(result.task)
        error_shown = bool(result.result.get("exception"))
        self._handle_warnings_and_exception(result)
        self._clean_results(result.result, result.task.action)
        if result.task.loop and "results" in result.result:
            self._process_items(result)
        else:
            self._print_failure("fatal: [%s]: FAILED!" % self.host_label(result), result.result, error_shown)
        if ignore_errors:
            self._display.display("...ignoring", color=C.COLOR_SKIP)
        return None

    def v2_runner_item_on_failed(self, result):
        if not self._quiet:
            return super().v2_runner_item_on_failed(result)
        if self._last_task_banner != result.task._uuid:
            self._print_task_banner(result.task)
        error_shown = bool(result.result.get("exception"))
        self._handle_warnings_and_exception(result)
        self._clean_results(result.result, result.task.action)
        self._print_failure("failed: [%s] (item=%s)" % (self.host_label(result), self._get_item_label(result.result)),
                            result.result, error_shown)
        return None

    def v2_runner_on_unreachable(self, result):
        self._flush_play_banner()
        super().v2_runner_on_unreachable(result)

    def v2_playbook_on_stats(self, stats):
        super().v2_playbook_on_stats(stats)
        line = closing_line(stats, bool(context.CLIARGS.get("check")))
        if line:
            self._display.display(line, color=C.COLOR_OK if line.startswith(("Nothing", "Check mode: nothing"))
                                  else C.COLOR_CHANGED)

    # ----- helpers

    @staticmethod
    def _changed_not_debug(result):
        return result.result.get("changed", False) and result.task.action not in C._ACTION_DEBUG

    def _print_message(self, result):
        """A debug task's message, without the task's banner or the result's wrapping."""
        res = result.result
        if res.get("_ansible_no_log"):
            return
        if "msg" in res:
            value = res["msg"]
        else:  # debug var=: the variable's name and value
            value = {key: item for key, item in res.items()
                     if not key.startswith("_ansible") and key not in ("changed", "failed")}
        host = result.host.get_name()
        lines = message_lines(value, (result.task.name or result.task.action).strip())
        self._flush_play_banner()
        prefix = "" if host == "localhost" else "[%s] " % host
        self._display.display(prefix + lines[0], color=C.COLOR_CHANGED if res.get("changed") else None)
        for line in lines[1:]:
            self._display.display(line)

    def _print_failure(self, head, result, error_shown):
        shown, left_out = short_failure(result, error_shown)
        text = head + (" => %s" % self._dump_results(shown).rstrip() if shown else "")
        if left_out:
            text += "\n(-v shows %s)" % ", ".join(left_out)
        self._display.display(text, color=C.COLOR_ERROR, stderr=self.get_option("display_failed_stderr"))
