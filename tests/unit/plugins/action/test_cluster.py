"""The hpc.pcluster.cluster action plugin: the module runs as a background job and does every step; the plugin
prints the module's progress lines and returns its result.

The job is the module run in-process on recorded pcluster response shapes and a fake clock (relay_harness).
"""

from __future__ import annotations

import pytest

from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.cluster_cases import CONFIG, NAME, config_with, existing, fleet_requests, run
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import install, load, plugin, stored_config_url, stored_endpoint
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.relay_harness import ModuleJob, make_action


class Printed:
    def __init__(self):
        self.lines = []

    def display(self, msg, **_kwargs):
        self.lines.append(msg)

    def warning(self, msg, **_kwargs):
        self.lines.append("WARNING " + msg)


@pytest.fixture(name="fake")
def fake_fixture(monkeypatch):
    return install(monkeypatch)


@pytest.fixture(name="printed")
def printed_fixture(monkeypatch):
    printed = Printed()
    monkeypatch.setattr(plugin("plugin_utils.progress_relay"), "display", printed)
    return printed


@pytest.fixture(name="written")
def written_fixture(fake, monkeypatch):
    """The progress lines the module writes, with the fake time of each."""
    lines = []
    pcluster_module = plugin("module_utils.pcluster.module_base")
    original = pcluster_module.PclusterModule.progress

    def progress(module, line):
        lines.append((fake.clock.now, line))
        original(module, line)

    monkeypatch.setattr(pcluster_module.PclusterModule, "progress", progress)
    return lines


def action(fake, tmp_path, args, check_mode=False):
    def direct(module_name, module_args):
        return run(module_args, check_mode=check_mode) if module_name == "hpc.pcluster.cluster" else None

    args = dict({"name": NAME, "region": "us-east-1", "endpoint_url": stored_endpoint()}, **args)
    return make_action(plugin("action.cluster"), args, tmp_path, fake.clock, ModuleJob(), check_mode=check_mode, direct=direct)


def test_create_shows_progress_at_least_once_a_minute(fake, printed, written, tmp_path):
    relay = action(fake, tmp_path, {"config": CONFIG})

    result = relay.run(task_vars={})

    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["status"] == "CREATE_COMPLETE"
    assert result["head_node"]["private_ip_address"] == "10.0.0.10"
    assert result["validation_messages"]["WARNING"][0]["type"] == "KeyPairValidator"
    times = [0.0] + [at for at, _line in written]
    assert max(b - a for a, b in zip(times, times[1:])) <= 55  # the relay reads every 3 s: on screen within 60 s
    assert len(written) >= 1800 / 55
    assert printed.lines == [line for _at, line in written]  # every line relayed, in order
    assert printed.lines[0] == "[ml-training-cluster] create cluster"
    assert printed.lines[1].startswith("[ml-training-cluster] CREATE_IN_PROGRESS (stack CREATE_IN_PROGRESS) - ")
    assert any("/14 resources complete" in line and "latest: HeadNode" in line for line in printed.lines)
    assert printed.lines[-1].startswith("[ml-training-cluster] CREATE_COMPLETE (stack CREATE_COMPLETE)")
    assert printed.lines[-1].endswith(", done")
    assert [(name, wrapped) for name, _args, wrapped, _limit in relay.calls if name == "hpc.pcluster.cluster"] == [
        ("hpc.pcluster.cluster", True)]  # one module run, which does everything


def test_the_playbook_path_makes_the_same_calls_as_the_module_alone(fake, printed, tmp_path, monkeypatch):
    action(fake, tmp_path, {"config": CONFIG}).run(task_vars={})
    through_action = sorted(op for op, _kwargs in fake.calls)

    alone = install(monkeypatch)
    run({"config": CONFIG})

    assert sorted(op for op, _kwargs in alone.calls) == through_action


def test_create_failure_fails_the_task_with_the_report(fake, printed, tmp_path):
    fake.create_scenario = "create_failed_timeline"

    result = action(fake, tmp_path, {"config": CONFIG}).run(task_vars={})

    assert result["failed"] is True and result["changed"] is True
    assert "HeadNodeBootstrapFailure" in result["msg"] and "First failed stack events" in result["msg"]
    assert result["failure"]["log_streams"][0].endswith("bootstrap_error_msg")
    assert any("CREATE_FAILED" in line for line in printed.lines)


def test_timeout_fails_with_last_known_progress(fake, printed, tmp_path):
    result = action(fake, tmp_path, {"config": CONFIG, "wait_timeout": 900}).run(task_vars={})

    assert result["failed"] is True and result["changed"] is True
    assert "Timed out after 900 s" in result["msg"] and "CREATE_IN_PROGRESS" in result["msg"]


def test_in_progress_then_update_with_fleet_stop_runs_every_step(fake, printed, tmp_path):
    fake.add_timeline(NAME, "create_success_timeline", start=-1700, stored_config_url=stored_config_url(config=CONFIG))
    fake.update_dryruns = [load("update_dryrun_needs_fleet_stop"), load("update_dryrun_success")]
    desired = config_with(instance_type="g5.12xlarge")

    result = action(fake, tmp_path, {"config": desired, "stop_fleet_for_update": True, "unfinished_jobs": 0}).run(task_vars={})

    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["fleet_stopped_for_update"] is True
    assert result["actions"] == ["wait for CREATE_IN_PROGRESS", "dryrun update", "stop compute fleet", "dryrun update",
                                 "update cluster", "start compute fleet"]
    assert fleet_requests(fake) == ["STOP_REQUESTED", "START_REQUESTED"]
    assert result["status"] == "UPDATE_COMPLETE" and result["compute_fleet_status"] == "RUNNING"
    assert any("compute fleet STOPPING" in line for line in printed.lines)
    assert any("UPDATE_IN_PROGRESS" in line for line in printed.lines)
    assert "[ml-training-cluster] stop compute fleet" in printed.lines


def test_delete_waits_for_the_cluster_to_disappear(fake, printed, tmp_path):
    existing(fake, CONFIG)

    result = action(fake, tmp_path, {"state": "absent"}).run(task_vars={})

    assert result["changed"] is True and result["exists"] is False
    assert printed.lines[-1].startswith("[ml-training-cluster] cluster not found (deleted)")


def test_check_mode_runs_the_module_once_as_it_is(fake, printed, tmp_path):
    relay = action(fake, tmp_path, {"config": CONFIG}, check_mode=True)

    result = relay.run(task_vars={})

    assert result["changed"] is True and printed.lines == []
    assert [(name, wrapped, call_args.get("progress_file")) for name, call_args, wrapped, _l in relay.calls] == [
        ("hpc.pcluster.cluster", False, None)]
