"""pcluster/run.py: what the cluster and image modules' runs share."""

from __future__ import annotations

import types

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.run import LifecycleRun, Stop


class Thing(LifecycleRun):
    WHAT = "thing configuration"

    def __init__(self, module, api, stops=False):
        super().__init__(module, api, dict(changed=False, actions=[], extra=[]))
        self.stops = stops

    @property
    def current(self):
        return None

    def present(self):
        self.act("make")
        if self.stops:
            raise Stop()
        self.act("check")


def module(tmp_path, **params):
    lines = []
    base = {"name": "t1", "state": "present", "wait_timeout": 60, "config": None, "config_file": None}
    return types.SimpleNamespace(params=dict(base, **params), check_mode=False, _diff=True, progress=lines.append,
                                 lines=lines, settings={})


def api(now=100.0):
    return types.SimpleNamespace(clock=lambda: now)


def test_actions_are_recorded_and_said_and_stop_ends_the_run(tmp_path):
    mod = module(tmp_path)

    assert Thing(mod, api()).run()["actions"] == ["make", "check"]
    assert mod.lines == ["[t1] make", "[t1] check"]
    stopped = Thing(module(tmp_path), api(), stops=True).run()
    assert stopped["actions"] == ["make"] and stopped["extra"] == [] and stopped["waited"] == 0.0


def test_a_config_file_with_problems_is_one_error_naming_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("Build: {a: 1\n")

    with pytest.raises(PclusterApiError) as raised:
        Thing(module(tmp_path, config_file=str(path)), api()).desired_config()

    assert raised.value.code == 400 and str(path) in raised.value.message


def test_the_diff_names_what_is_compared(tmp_path):
    run = Thing(module(tmp_path), api())
    run.diff({"a": 1}, {"a": 2})

    assert run.result["diff"]["before_header"] == "t1 (stored thing configuration)"
    assert run.result["diff"]["after"] == "a: 2\n"
