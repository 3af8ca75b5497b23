"""How many pcluster.lib calls a 30-minute cluster creation wait makes: ours vs naive 5-second polling.

Replays the recorded create timeline (tests/unit/fixtures/pcluster/create_success_timeline.json:
CREATE_IN_PROGRESS for 30 minutes, 14 stack resources, then CREATE_COMPLETE) on a fake clock, so
the 30 minutes take well under a second and every call is counted exactly.

Baselines:
  * naive: describe-cluster every 5 s until the status changes (the guide's "watch" loop), plus one
    get-cluster-stack-events per poll when it also wants progress lines;
Ours:
  * hpc.pcluster.cluster waiting inside the module (wait: true, no action plugin): status polls
    5 s, 7.5 s, ... settling at 30 s, no stack events;
  * the playbook path: the action plugin runs the module once (wait: false), then polls
    hpc.pcluster.cluster_info from the controller and prints a progress line at least once a minute
    (stack events and the template's resource count only for those lines).

Usage: .venv/bin/python bench/wait_api_calls.py [--minutes 30]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "fixtures" / "pcluster"))

import pytest  # noqa: E402  (its MonkeyPatch undoes the fakes between scenarios)

import fake_pcluster  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.action import cluster as cluster_action  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.modules import cluster as cluster_module  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.modules import cluster_info as info_module  # noqa: E402

NAME = "ml-training-cluster"
CONFIG = {"Region": "us-east-1", "Image": {"Os": "ubuntu2204"}, "HeadNode": {"InstanceType": "m5.8xlarge"}}
MODULES = {"hpc.pcluster.cluster": cluster_module, "hpc.pcluster.cluster_info": info_module}


def scenario(minutes):
    """A FakePcluster whose create takes ``minutes`` (the recorded timeline, stretched)."""
    patch = pytest.MonkeyPatch()
    fake = fake_pcluster.install(patch)
    data = fake_pcluster.load("create_success_timeline")
    scale = minutes * 60 / 1800.0
    for phase in data["describe"]:
        phase["from"] *= scale
    for item in data["events"]:
        item["at"] *= scale
    patch.setattr(fake_pcluster, "load", lambda name, _orig=fake_pcluster.load: data if name == "create_success_timeline" else _orig(name))
    return patch, fake


def counts(fake):
    result = {}
    for operation, _kwargs in fake.calls:
        result[operation] = result.get(operation, 0) + 1
    return result


def naive(minutes, interval=5.0, with_events=False):
    patch, fake = scenario(minutes)
    try:
        fake.create_cluster(cluster_name=NAME, cluster_configuration=CONFIG)
        while fake.describe_cluster(cluster_name=NAME)["clusterStatus"] == "CREATE_IN_PROGRESS":
            if with_events:
                fake.get_cluster_stack_events(cluster_name=NAME)
            fake.clock.sleep(interval)
        return counts(fake), fake.clock.now, 0
    finally:
        patch.undo()


def module_wait(minutes):
    patch, fake = scenario(minutes)
    try:
        result = fake_pcluster.run_module(cluster_module, {"name": NAME, "region": "us-east-1", "config": CONFIG})
        assert result["status"] == "CREATE_COMPLETE", result
        return counts(fake), fake.clock.now, 0
    finally:
        patch.undo()


def action_wait(minutes):
    patch, fake = scenario(minutes)
    lines = []
    try:
        patch.setattr(cluster_action, "display", types.SimpleNamespace(display=lambda msg, **kw: lines.append(fake.clock.now), vvv=lambda *a, **k: None))
        task = types.SimpleNamespace(args={"name": NAME, "region": "us-east-1", "config": CONFIG}, check_mode=False, async_val=0, diff=False, action="")
        plugin = cluster_action.ActionModule(task, types.SimpleNamespace(_shell=types.SimpleNamespace(tmpdir="/tmp")), None, None, None)
        plugin.sleep = fake.clock.sleep
        plugin.clock = fake.clock.monotonic
        templates = []

        def execute(module_name=None, module_args=None, task_vars=None, **_kwargs):
            result = fake_pcluster.run_module(MODULES[module_name], module_args)
            if (result.get("stack_progress") or {}).get("resources_total"):
                templates.append(1)
            return result

        plugin._execute_module = execute  # pylint: disable=protected-access
        result = plugin.run(task_vars={})
        assert result["status"] == "CREATE_COMPLETE", result
        calls = counts(fake)
        calls["cloudformation.get_template"] = len(templates)
        gaps = [b - a for a, b in zip([0.0] + lines, lines)]
        return calls, fake.clock.now, (len(lines), max(gaps))
    finally:
        patch.undo()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    rows = [
        ("naive: describe every 5 s", naive(args.minutes)),
        ("naive: describe + stack events every 5 s", naive(args.minutes, with_events=True)),
        ("ours: module waits (wait: true, no action plugin)", module_wait(args.minutes)),
        ("ours: playbook (action plugin, progress lines)", action_wait(args.minutes)),
    ]
    print("pcluster.lib calls during a %.0f-minute create (fake clock, recorded timeline)" % args.minutes)
    print("%-52s %6s %9s %7s %9s %s" % ("", "total", "describe", "events", "template", "progress lines (max gap)"))
    figures = {}
    for label, (calls, _elapsed, progress) in rows:
        total = sum(v for k, v in calls.items() if k != "create_cluster")
        figures[label] = dict(calls, total_without_create=total)
        lines = "-" if not progress else "%d (%.0f s)" % progress
        print("%-52s %6d %9d %7d %9d %s" % (label, total, calls.get("describe_cluster", 0), calls.get("get_cluster_stack_events", 0),
                                            calls.get("cloudformation.get_template", 0), lines))
    base_plain = figures[rows[0][0]]["total_without_create"]
    base_events = figures[rows[1][0]]["total_without_create"]
    ours_module = figures[rows[2][0]]["total_without_create"]
    ours_action = figures[rows[3][0]]["total_without_create"]
    print()
    print("ratio naive 5 s / ours (module wait):              %.1fx fewer calls" % (base_plain / ours_module))
    print("ratio naive 5 s + events / ours (with progress):   %.1fx fewer calls" % (base_events / ours_action))
    if args.json:
        print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
