"""The action plugin of hpc.pcluster.slurm_node_wait: one module run per minute, a progress line each minute."""

from unittest import mock

import pytest

from ansible.playbook.task import Task

from ansible_collections.hpc.pcluster.plugins.action import slurm_node_wait as action_module


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make_action(args, answers, clock):
    """The plugin with _execute_module answering from a list; each answer advances the clock by its 'takes'."""
    task = Task()
    task.args = dict(args)
    action = action_module.ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader=None, templar=None,
                                        shared_loader_obj=None)
    calls = []

    def execute(module_name, module_args, task_vars):
        calls.append(dict(module_args))
        answer = dict(answers.pop(0))
        clock.now += answer.pop("takes", module_args["timeout"])
        return answer

    action._execute_module = execute  # pylint: disable=protected-access
    action.clock = clock
    return action, calls


def unsettled(state="IDLE+CLOUD+POWERING_UP"):
    return {"settled": False, "waiting": {"q-st-cr-1": state}, "changed": False}


@pytest.fixture
def lines(monkeypatch):
    printed = []
    monkeypatch.setattr(action_module.display, "display", printed.append)
    return printed


def test_nothing_to_wait_for_is_one_look(lines):
    action, calls = make_action({"nodes": ["q-st-cr-1"], "timeout": 900}, [{"settled": True, "waiting": {}}], Clock())
    result = action.run(task_vars={"inventory_hostname": "head"})
    assert [c["timeout"] for c in calls] == [0]
    assert result["settled"] is True and result["timed_out"] is False and lines == []


def test_a_line_when_waiting_starts_and_after_each_minute(lines):
    clock = Clock()
    answers = [dict(unsettled(), takes=1), unsettled(), dict(unsettled(), takes=60),
               {"settled": True, "waiting": {}, "takes": 20}]
    action, calls = make_action({"nodes": ["q-st-cr-1"], "timeout": 900}, answers, clock)
    result = action.run(task_vars={"inventory_hostname": "head"})
    assert [c["timeout"] for c in calls] == [0, 60, 60, 60]
    assert lines == [
        "head: waiting up to 15 min for 1 static node(s) in a transitional state: q-st-cr-1 IDLE+CLOUD+POWERING_UP",
        "head: 1 static node(s) still in a transitional state after 1 min (of 15 min): q-st-cr-1 IDLE+CLOUD+POWERING_UP",
        "head: 1 static node(s) still in a transitional state after 2 min (of 15 min): q-st-cr-1 IDLE+CLOUD+POWERING_UP",
    ]
    assert result["settled"] is True and result["timed_out"] is False and result["waited"] == 141.0


def test_at_the_timeout_the_nodes_are_left_to_the_checks(lines):
    clock = Clock()
    answers = [dict(unsettled(), takes=0), unsettled(), dict(unsettled(), takes=30)]
    action, calls = make_action({"nodes": ["q-st-cr-1"], "timeout": 90}, answers, clock)
    result = action.run(task_vars={"inventory_hostname": "head"})
    assert [c["timeout"] for c in calls] == [0, 60, 30]
    assert result["timed_out"] is True and "failed" not in result
    assert lines[-1] == ("head: 1 static node(s) still in a transitional state after 1.5 min, judged as they are: "
                         "q-st-cr-1 IDLE+CLOUD+POWERING_UP")


def test_a_failed_look_ends_the_wait(lines):
    answers = [{"failed": True, "msg": "scontrol: not found"}]
    action, calls = make_action({"nodes": ["q-st-cr-1"], "timeout": 900}, answers, Clock())
    result = action.run(task_vars={})
    assert result["failed"] is True and len(calls) == 1 and result["timed_out"] is False
