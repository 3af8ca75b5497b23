"""plugin_utils/progress_relay: start the module as a background job, relay its progress lines, collect its result.

The job is scripted on a fake clock; the plugin's reads run with /bin/sh on real files (relay_harness).
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import FakeClock, plugin
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.relay_harness import JOB_ID, ScriptedJob, make_action

RESULT = {"changed": True, "status": "CREATE_COMPLETE", "invocation": {"module_args": {}}}


class Printed:
    """display.display()/warning() lines with the fake time they were printed at."""

    def __init__(self, clock):
        self.clock = clock
        self.lines = []
        self.warnings = []

    def display(self, msg, **_kwargs):
        self.lines.append((self.clock.now, msg))

    def warning(self, msg, **_kwargs):
        self.warnings.append(msg)

    def texts(self):
        return [line for _at, line in self.lines]


@pytest.fixture(name="clock")
def clock_fixture():
    return FakeClock()


@pytest.fixture(name="printed")
def printed_fixture(clock, monkeypatch):
    printed = Printed(clock)
    monkeypatch.setattr(plugin("plugin_utils.progress_relay"), "display", printed)
    return printed


def relay(tmp_path, clock, job, **args):
    return make_action(plugin("action.cluster"), dict({"name": "c1", "config": {}}, **args), tmp_path, clock, job)


def test_line_buffer_keeps_partial_lines_and_counts_bytes():
    lines = plugin("plugin_utils.progress_relay").LineBuffer()

    assert lines.feed("one\ntw") == ["one"] and lines.offset == 6
    assert lines.feed("o \u00e9\n\nthree") == ["two \u00e9"] and lines.offset == 6 + 11
    assert lines.feed("\n") == ["three"] and lines.offset == 18


def test_lines_are_printed_as_they_come_and_the_result_is_the_modules(tmp_path, clock, printed):
    job = ScriptedJob([(1, "[c1] create cluster\n"), (50, "[c1] CREATE_IN_PROGRESS - 50s"), (52, " elapsed\n"),
                       (100, "[c1] CREATE_COMPLETE, done\n")], RESULT, finish_at=101)
    action = relay(tmp_path, clock, job)

    result = action.run(task_vars={})

    assert result == RESULT
    assert printed.texts() == ["[c1] create cluster", "[c1] CREATE_IN_PROGRESS - 50s elapsed", "[c1] CREATE_COMPLETE, done"]
    for at, text in printed.lines:  # each line within one read interval of being written
        written = {"[c1] create cluster": 1, "[c1] CREATE_IN_PROGRESS - 50s elapsed": 52, "[c1] CREATE_COMPLETE, done": 100}[text]
        assert 0 <= at - written <= action.POLL_EVERY
    started = [call for call in action.calls if call[2]]
    assert len(started) == 1 and started[0][1]["progress_file"].startswith(str(tmp_path / "async"))
    assert started[0][3] == 3600 + action.JOB_MARGIN  # the job's limit; the task's async_val is restored after
    assert action._task.async_val == 0  # pylint: disable=protected-access
    assert [call[1].get("mode") for call in action.calls[1:]] == [None, "cleanup"]
    assert os.listdir(tmp_path / "async") == []  # progress file and job result removed


def test_the_result_is_collected_where_the_job_wrote_it(tmp_path, clock, printed):
    # $HOME differs from the login user's home (sudo -E, an execution environment's HOME=/runner): async_wrapper
    # writes the result under its own "~/.ansible_async", not under the directory the plugin expanded.
    job = ScriptedJob([(1, "[c1] create cluster\n")], RESULT, finish_at=10)
    action = make_action(plugin("action.cluster"), {"name": "c1", "config": {}}, tmp_path, clock, job,
                         job_dir=tmp_path / "home" / ".ansible_async")

    assert action.run(task_vars={}) == RESULT
    assert [call[1]["_async_dir"] for call in action.calls[1:]] == [str(tmp_path / "home" / ".ansible_async")] * 2


def test_reads_through_a_tty_are_relayed_too(tmp_path, clock, printed):
    # The ssh connection runs low-level commands with -tt: the output comes back with CR LF line ends.
    job = ScriptedJob([(1, "[c1] create cluster\n"), (10, "[c1] CREATE_COMPLETE, done\n")], RESULT, finish_at=11)
    action = relay(tmp_path, clock, job)
    plain = action._low_level_execute_command  # pylint: disable=protected-access

    def through_a_tty(command, **kwargs):
        answer = plain(command, **kwargs)
        return dict(answer, stdout=answer["stdout"].replace("\n", "\r\n"))

    action._low_level_execute_command = through_a_tty  # pylint: disable=protected-access

    assert action.run(task_vars={}) == RESULT
    assert printed.texts() == ["[c1] create cluster", "[c1] CREATE_COMPLETE, done"]
    assert clock.now < 20


def test_reads_are_one_shell_command_each_not_module_runs(tmp_path, clock, printed):
    job = ScriptedJob([], RESULT, finish_at=120)
    action = relay(tmp_path, clock, job)

    action.run(task_vars={})

    module_runs = [call for call in action.calls if call[0] != "hpc.pcluster.cluster"]
    assert len(module_runs) == 2  # async_status once for the result, once to clean up
    reads = [c for c in action.commands if c.startswith("tail -c +")]
    assert 120 / action.POLL_EVERY - 2 <= len(reads) <= 120 / action.POLL_EVERY + 2


def test_silence_gets_a_still_on_line_every_minute(tmp_path, clock, printed):
    job = ScriptedJob([(1, "[c1] create cluster\n")], RESULT, finish_at=200)
    action = relay(tmp_path, clock, job)

    action.run(task_vars={})

    assert printed.texts()[1:] == ["[c1] still on: [c1] create cluster (%ds since the last line)" % s for s in (60, 60, 60)]
    times = [at for at, _text in printed.lines]
    assert max(b - a for a, b in zip(times, times[1:])) <= 60


def test_a_job_that_never_finishes_fails_after_its_limit(tmp_path, clock, printed):
    action = relay(tmp_path, clock, ScriptedJob([], RESULT, finish_at=None), wait_timeout=60)
    action.JOB_MARGIN = 30

    result = action.run(task_vars={})

    assert result["failed"] is True and "did not finish within 90 s" in result["msg"] and JOB_ID in result["msg"]
    assert clock.now < 90 + 60


def test_an_interrupted_playbook_leaves_the_job_running_and_says_where(tmp_path, clock, printed):
    action = relay(tmp_path, clock, ScriptedJob([], RESULT, finish_at=None))

    def interrupt(_seconds):
        raise KeyboardInterrupt

    action.sleep = interrupt
    with pytest.raises(KeyboardInterrupt):
        action.run(task_vars={})
    assert "goes on in the background as job %s" % JOB_ID in printed.warnings[0]
    assert [call[1].get("mode") for call in action.calls if call[0] == "ansible.legacy.async_status"] == []
    assert not [name for name in os.listdir(tmp_path / "async") if name.endswith(".progress")]


@pytest.mark.parametrize("check_mode, args, async_val, wrapped", [
    (True, {}, 0, False),
    (False, {"wait": False}, 0, False),
    (False, {"wait": "no"}, 0, False),
    (False, {}, 300, True),
])
def test_check_mode_no_wait_and_own_async_run_the_module_as_it_is(tmp_path, clock, printed, check_mode, args, async_val, wrapped):
    action = make_action(plugin("action.cluster"), dict({"name": "c1"}, **args), tmp_path, clock, ScriptedJob([], RESULT, 0),
                         check_mode=check_mode, async_val=async_val)

    action.run(task_vars={})

    assert [(name, call_args.get("progress_file"), wrap) for name, call_args, wrap, _limit in action.calls] == [
        ("hpc.pcluster.cluster", None, wrapped)]
    assert printed.lines == [] and action.commands == []
