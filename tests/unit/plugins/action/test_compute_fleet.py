"""The hpc.pcluster.compute_fleet action plugin: the module waits as a background job; its lines are printed."""

from __future__ import annotations

import pytest

from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import install, load, plugin
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.relay_harness import ModuleJob, make_action


class Printed:
    def __init__(self):
        self.lines = []

    def display(self, msg, **_kwargs):
        self.lines.append(msg)


@pytest.fixture(name="printed")
def printed_fixture(monkeypatch):
    printed = Printed()
    monkeypatch.setattr(plugin("plugin_utils.progress_relay"), "display", printed)
    return printed


def test_stop_waits_with_progress_lines(monkeypatch, printed, tmp_path):
    fake = install(monkeypatch)
    fake.add_cluster("ml-training-cluster", load("describe_cluster_complete"))
    args = {"name": "ml-training-cluster", "region": "us-east-1", "state": "stopped", "unfinished_jobs": 0}
    action = make_action(plugin("action.compute_fleet"), args, tmp_path, fake.clock, ModuleJob())

    result = action.run(task_vars={})

    assert result["changed"] is True and result["status"] == "STOPPED" and result["previous_status"] == "RUNNING"
    assert printed.lines[0] == "[ml-training-cluster] stop compute fleet"
    assert printed.lines[-1].startswith("[ml-training-cluster] compute fleet STOPPED") and printed.lines[-1].endswith(", done")
    assert any(line.startswith("[ml-training-cluster] compute fleet STOPPING") for line in printed.lines)
    assert action.calls[0][2] is True and action.calls[0][3] == 1200 + action.JOB_MARGIN
    assert "pending" not in result
