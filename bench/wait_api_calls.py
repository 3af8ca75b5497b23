"""How many pcluster.lib calls a 30-minute cluster creation wait makes: ours vs naive 5-second polling.

Replays the recorded create timeline (tests/unit/fixtures/pcluster/create_success_timeline.json:
CREATE_IN_PROGRESS for 30 minutes, 14 stack resources, then CREATE_COMPLETE) on a fake clock, so
the 30 minutes take well under a second and every call is counted exactly.

Baselines:
  * naive: describe-cluster every 5 s until the status changes (the guide's "watch" loop), plus one
    get-cluster-stack-events per poll when it also wants progress lines;
Ours:
  * hpc.pcluster.cluster run alone (wait: true, no action plugin): polls 5 s, 7.5 s, ... settling at
    30 s; once every 55 s a poll reads the new stack events in place of describe-cluster (a progress
    line), and describes only when the stack's own status moved;
  * the playbook path: the action plugin starts that same module as a background job and prints the
    lines it writes, reading them with one shell command every 3 s (no API call, no module run).

Usage: .venv/bin/python bench/wait_api_calls.py [--minutes 30]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import sys
import tempfile
import time
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "fixtures" / "pcluster"))

import pytest  # noqa: E402  (its MonkeyPatch undoes the fakes between scenarios)

import fake_pcluster  # noqa: E402
import relay_harness  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.action import cluster as cluster_action  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster import module_base as pcluster_module  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.modules import cluster as cluster_module  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.plugin_utils import progress_relay  # noqa: E402

NAME = "ml-training-cluster"
CONFIG = {"Region": "us-east-1", "Image": {"Os": "ubuntu2204"}, "HeadNode": {"InstanceType": "m5.8xlarge"}}


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
    written = []
    try:
        original = pcluster_module.PclusterModule.progress
        patch.setattr(pcluster_module.PclusterModule, "progress",
                      lambda module, line: (written.append(fake.clock.now), original(module, line)))
        result = fake_pcluster.run_module(cluster_module, {"name": NAME, "region": "us-east-1", "config": CONFIG})
        assert result["status"] == "CREATE_COMPLETE", result
        gaps = [b - a for a, b in zip([0.0] + written, written)]
        return counts(fake), fake.clock.now, (len(written), max(gaps))
    finally:
        patch.undo()


def action_wait(minutes):
    """The action plugin with the module as its job (run in-process when started), reads through /bin/sh."""
    patch, fake = scenario(minutes)
    written, shown = [], []
    try:
        original = pcluster_module.PclusterModule.progress
        patch.setattr(pcluster_module.PclusterModule, "progress",
                      lambda module, line: (written.append(fake.clock.now), original(module, line)))
        patch.setattr(progress_relay, "display", types.SimpleNamespace(display=shown.append, warning=shown.append))
        with tempfile.TemporaryDirectory() as tmp:
            plugin = relay_harness.make_action(cluster_action, {"name": NAME, "region": "us-east-1", "config": CONFIG},
                                               pathlib.Path(tmp), fake.clock, relay_harness.ModuleJob())
            result = plugin.run(task_vars={})
        assert result["status"] == "CREATE_COMPLETE", result
        assert len(shown) == len(written), (len(shown), len(written))
        gaps = [b - a for a, b in zip([0.0] + written, written)]
        return counts(fake), fake.clock.now, (len(written), max(gaps)), read_cost(plugin)
    finally:
        patch.undo()


def read_cost(plugin, reads=50):
    """Wall and CPU seconds of one relay read (the plugin's real command through /bin/sh), over ``reads`` reads."""
    with tempfile.TemporaryDirectory() as tmp:
        progress, results = pathlib.Path(tmp) / "progress", pathlib.Path(tmp) / "job"
        progress.write_text("[c] line\n" * 40)
        results.write_text('{"started": true, "finished": false}')
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        for _read in range(reads):
            plugin.read(str(progress), 0, str(results))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = (time.perf_counter() - start) / reads
    cpu = ((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)) / reads
    return wall, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    action_calls, action_elapsed, action_lines, (read_wall, read_cpu) = action_wait(args.minutes)
    rows = [
        ("naive: describe every 5 s", naive(args.minutes)),
        ("naive: describe + stack events every 5 s", naive(args.minutes, with_events=True)),
        ("ours: module alone (wait: true, no action plugin)", module_wait(args.minutes)),
        ("ours: playbook (action plugin relays the lines)", (action_calls, action_elapsed, action_lines)),
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
    print("ratio naive 5 s / ours (module alone):             %.1fx fewer calls" % (base_plain / ours_module))
    print("ratio naive 5 s + events / ours (playbook):        %.1fx fewer calls" % (base_events / ours_action))
    print("ratio playbook / module alone:                     %.2f (%s)" % (
        ours_action / ours_module, "no more calls than the module alone" if ours_action <= ours_module else "MORE calls than the module alone"))
    reads = args.minutes * 60 / progress_relay.ProgressRelayAction.POLL_EVERY
    print("the relay's own cost: %d reads of the progress file (one shell command every %.0f s, no API call, no module run),"
          " %.1f ms wall / %.1f ms CPU each here: %.1f s CPU in all" % (
              reads, progress_relay.ProgressRelayAction.POLL_EVERY, read_wall * 1000, read_cpu * 1000, reads * read_cpu))
    if args.json:
        print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
