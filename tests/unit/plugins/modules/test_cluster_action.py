"""The hpc.pcluster.cluster and compute_fleet action plugins: steps, controller-side waits, progress lines.

The modules run in-process (instead of being shipped to a host) against recorded
pcluster response shapes on a fake clock.
"""

from __future__ import annotations

import pathlib
import sys
import types

import pytest

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "pcluster"
sys.path.insert(0, str(FIXTURES))

from fake_pcluster import install, load, run_module, stored_config_url  # noqa: E402

from ansible_collections.hpc.pcluster.plugins.action import cluster as cluster_action  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.action import compute_fleet as fleet_action  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.modules import cluster as cluster_module  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.modules import cluster_info as info_module  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.modules import compute_fleet as fleet_module  # noqa: E402

NAME = "ml-training-cluster"
MODULES = {
    "hpc.pcluster.cluster": cluster_module,
    "hpc.pcluster.cluster_info": info_module,
    "hpc.pcluster.compute_fleet": fleet_module,
}
CONFIG = {
    "Region": "us-east-1",
    "Image": {"Os": "ubuntu2204"},
    "HeadNode": {"InstanceType": "m5.8xlarge", "Networking": {"SubnetId": "subnet-0123456789abcdef0"}},
    "Scheduling": {
        "Scheduler": "slurm",
        "SlurmQueues": [
            {
                "Name": "compute-gpu",
                "ComputeResources": [{"Name": "distributed-ml", "InstanceType": "g5.8xlarge", "MinCount": 2, "MaxCount": 2}],
                "Networking": {"SubnetIds": ["subnet-0fedcba9876543210"]},
            }
        ],
    },
}


class Printed:
    """Captures display.display() lines with the fake time they were printed at."""

    def __init__(self, clock):
        self.clock = clock
        self.lines = []

    def display(self, msg, **_kwargs):
        self.lines.append((self.clock.now, msg))

    def vvv(self, msg, **_kwargs):
        pass

    def texts(self):
        return [line for _at, line in self.lines]


@pytest.fixture(name="fake")
def fake_fixture(monkeypatch):
    return install(monkeypatch)


@pytest.fixture(name="printed")
def printed_fixture(fake, monkeypatch):
    printed = Printed(fake.clock)
    monkeypatch.setattr(cluster_action, "display", printed)
    return printed


def action(plugin, fake, args, check_mode=False):
    task = types.SimpleNamespace(args=dict({"name": NAME, "region": "us-east-1"}, **args), check_mode=check_mode, async_val=0,
                                 action=plugin.MODULE if hasattr(plugin, "MODULE") else "", diff=False)
    connection = types.SimpleNamespace(_shell=types.SimpleNamespace(tmpdir="/tmp"))
    instance = plugin.ActionModule(task, connection, None, None, None)
    instance.sleep = fake.clock.sleep
    instance.clock = fake.clock.monotonic
    calls = []

    def execute_module(module_name=None, module_args=None, task_vars=None, **_kwargs):
        calls.append((module_name, dict(module_args)))
        return run_module(MODULES[module_name], module_args, check_mode=check_mode)

    instance._execute_module = execute_module
    instance.module_calls = calls
    return instance


def test_create_prints_progress_at_least_once_a_minute(fake, printed):
    plugin = action(cluster_action, fake, {"config": CONFIG})

    result = plugin.run(task_vars={})

    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["status"] == "CREATE_COMPLETE"
    assert result["head_node"]["private_ip_address"] == "10.0.0.10"
    assert result["validation_messages"]["WARNING"][0]["type"] == "KeyPairValidator"
    times = [0.0] + [at for at, _line in printed.lines]
    assert max(b - a for a, b in zip(times, times[1:])) <= 60
    assert len(printed.lines) >= 1800 / 60
    first, last = printed.lines[0][1], printed.lines[-1][1]
    assert first.startswith("[ml-training-cluster] CREATE_IN_PROGRESS (stack CREATE_IN_PROGRESS) - ")
    assert "resources complete" in first and "gives up in" in first
    assert any("/14 resources complete" in line and "latest: HeadNode" in line for line in printed.texts())
    assert last.startswith("[ml-training-cluster] CREATE_COMPLETE (stack CREATE_COMPLETE)") and last.endswith(", done")
    # The module ran once with wait=false; the rest were cluster_info polls from the controller.
    steps = [args for name, args in plugin.module_calls if name == "hpc.pcluster.cluster"]
    assert len(steps) == 1 and steps[0]["wait"] is False
    assert result["waited"] >= 1800


def test_create_failure_fails_the_task_with_the_report(fake, printed):
    fake.create_scenario = "create_failed_timeline"
    plugin = action(cluster_action, fake, {"config": CONFIG})

    result = plugin.run(task_vars={})

    assert result["failed"] is True and result["changed"] is True
    assert "HeadNodeBootstrapFailure" in result["msg"] and "First failed stack events" in result["msg"]
    assert result["failure"]["log_streams"][0].endswith("bootstrap_error_msg")
    assert any("CREATE_FAILED" in line for line in printed.texts())


def test_timeout_fails_with_last_known_progress(fake, printed):
    plugin = action(cluster_action, fake, {"config": CONFIG, "wait_timeout": 900})

    result = plugin.run(task_vars={})

    assert result["failed"] is True and result["changed"] is True
    assert "Timed out after 900 s" in result["msg"] and "CREATE_IN_PROGRESS" in result["msg"]
    assert fake.clock.now <= 960


def test_in_progress_then_update_with_fleet_stop_runs_every_step(fake, printed, tmp_path):
    fake.add_timeline(NAME, "create_success_timeline", start=-1700, stored_config_url=stored_config_url(tmp_path, CONFIG))
    fake.update_dryruns = [load("update_dryrun_needs_fleet_stop"), load("update_dryrun_success")]
    desired = {**CONFIG, "HeadNode": dict(CONFIG["HeadNode"], InstanceType="m5.4xlarge")}
    plugin = action(cluster_action, fake, {"config": desired, "stop_fleet_for_update": True})

    result = plugin.run(task_vars={})

    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["fleet_stopped_for_update"] is True
    assert result["actions"] == [
        "wait for CREATE_IN_PROGRESS",
        "dryrun update",
        "stop compute fleet",
        "dryrun update",
        "update cluster",
        "start compute fleet",
    ]
    assert [kw["status"] for op, kw in fake.calls if op == "update_compute_fleet"] == ["STOP_REQUESTED", "START_REQUESTED"]
    assert result["status"] == "UPDATE_COMPLETE" and result["compute_fleet_status"] == "RUNNING"
    assert any("compute fleet STOPPING" in line for line in printed.texts())
    assert any("UPDATE_IN_PROGRESS" in line for line in printed.texts())


def test_delete_waits_for_the_cluster_to_disappear(fake, printed, tmp_path):
    fake.add_cluster(NAME, load("describe_cluster_complete"), stored_config_url=stored_config_url(tmp_path, CONFIG))
    plugin = action(cluster_action, fake, {"state": "absent"})

    result = plugin.run(task_vars={})

    assert result["changed"] is True and result["exists"] is False
    assert printed.lines[-1][1].startswith("[ml-training-cluster] cluster not found (deleted)")


def test_check_mode_runs_the_module_once(fake, printed):
    plugin = action(cluster_action, fake, {"config": CONFIG}, check_mode=True)

    result = plugin.run(task_vars={})

    assert result["changed"] is True and printed.lines == []
    assert [name for name, _args in plugin.module_calls] == ["hpc.pcluster.cluster"]
    assert plugin.module_calls[0][1].get("wait", True) is True


def test_compute_fleet_action_waits_with_progress(fake, printed, tmp_path):
    fake.add_cluster(NAME, load("describe_cluster_complete"))
    plugin = action(fleet_action, fake, {"state": "stopped"})

    result = plugin.run(task_vars={})

    assert result["changed"] is True and result["status"] == "STOPPED" and result["previous_status"] == "RUNNING"
    assert printed.texts()[-1].startswith("[ml-training-cluster] compute fleet STOPPED")
    assert "pending" not in result
