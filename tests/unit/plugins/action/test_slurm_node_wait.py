"""The action plugin of hpc.pcluster.slurm_node_wait: one quick look, and the progress relay only when it must wait."""

from unittest import mock

from ansible.playbook.task import Task

from ansible_collections.hpc.pcluster.plugins.action import slurm_node_wait as action_module


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make_action(args, look, relayed=None):
    """The plugin with the look (module run) and the relay (background job) answering as given."""
    task = Task()
    task.args = dict(args)
    action = action_module.ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader=None, templar=None,
                                        shared_loader_obj=None)
    clock = Clock()
    calls = {"look": [], "relay": []}

    def execute(module_name, module_args, task_vars):
        calls["look"].append(dict(module_args))
        clock.now += 1
        return dict(look)

    def relay(relay_args, task_vars):
        calls["relay"].append(dict(relay_args))
        clock.now += 60
        return dict(relayed)

    action._execute_module = execute  # pylint: disable=protected-access
    action.relay = relay
    action.clock = clock
    return action, calls


def test_nothing_to_wait_for_is_one_look():
    action, calls = make_action({"nodes": ["q-st-cr-1"], "timeout": 900}, {"settled": True, "waiting": {}})
    result = action.run(task_vars={})
    assert calls == {"look": [{"nodes": ["q-st-cr-1"], "timeout": 0}], "relay": []}
    assert result["settled"] is True and result["waited"] == 1.0


def test_transitional_nodes_are_waited_for_as_a_relayed_job():
    look = {"settled": False, "waiting": {"q-st-cr-1": "IDLE+CLOUD+POWERING_UP"}}
    action, calls = make_action({"nodes": ["q-st-cr-1"], "timeout": 900}, look,
                                relayed={"settled": True, "timed_out": False, "waiting": {}, "elapsed": 58.5})
    result = action.run(task_vars={})
    assert calls["relay"] == [{"nodes": ["q-st-cr-1"], "timeout": 900}]
    assert result["settled"] is True and result["waited"] == 61.0
    assert action.timeout({"timeout": "120"}) == 120  # the background job's limit follows the task's timeout


def test_no_wait_with_a_timeout_of_zero_or_a_failed_look():
    look = {"settled": False, "waiting": {"q-st-cr-1": "IDLE+COMPLETING"}}
    action, calls = make_action({"nodes": ["q-st-cr-1"], "timeout": 0}, look)
    assert action.run(task_vars={})["settled"] is False and calls["relay"] == []
    action, calls = make_action({"nodes": ["q-st-cr-1"]}, {"failed": True, "msg": "scontrol: not found"})
    assert action.run(task_vars={})["failed"] is True and calls["relay"] == []


def test_a_bad_timeout_goes_to_the_module_as_it_is():
    action, calls = make_action({"nodes": ["q-st-cr-1"], "timeout": "soon"},
                                {"failed": True, "msg": "argument 'timeout' is of type str"})
    assert action.run(task_vars={})["failed"] is True
    assert calls["look"] == [{"nodes": ["q-st-cr-1"], "timeout": "soon"}] and calls["relay"] == []
