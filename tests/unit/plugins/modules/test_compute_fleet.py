"""hpc.pcluster.compute_fleet: idempotent start/stop, the jobs guard and the restart mark it shares with the
cluster module's update path, waits on the Slurm fleet statuses, PROTECTED, check mode."""

from __future__ import annotations

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.fleet import FLEET_STOP_TAG
from ansible_collections.hpc.pcluster.plugins.modules import compute_fleet
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster import cluster_cases
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import install, load, run_module

NAME = "ml-training-cluster"
HEAD_NODE = cluster_cases.HEAD_NODE
NO_JOBS = {"unfinished_jobs": 0}


@pytest.fixture(name="fake")
def fake_fixture(monkeypatch):
    fake = install(monkeypatch)
    cluster_cases.existing(fake, cluster_cases.CONFIG)
    return fake


def run(args, **kwargs):
    return run_module(compute_fleet, dict({"name": NAME, "region": "us-east-1"}, **args), **kwargs)


def requests(fake):
    return [kw["status"] for op, kw in fake.calls if op == "update_compute_fleet"]


def tag_calls(fake):
    return [op for op, _kw in fake.calls if op in ("ec2.create_tags", "ec2.delete_tags")]


def protect_after_start(fake):
    """The start goes through, then clustermgtd puts the fleet in protected mode."""
    original = fake.update_compute_fleet

    def start_then_protect(cluster_name, status, region=None):
        response = original(cluster_name, status, region)
        fake.clusters[NAME].fleet_transitions[-1] = (fake.clock.now + 30, "PROTECTED")
        return response

    fake.update_compute_fleet = start_then_protect


def test_stop_waits_until_stopped(fake):
    result = run(dict(NO_JOBS, state="stopped"))

    assert result["changed"] is True and result["status"] == "STOPPED" and result["previous_status"] == "RUNNING"
    assert requests(fake) == ["STOP_REQUESTED"] and result["actions"] == ["stop compute fleet"]
    assert fake.clock.now >= fake.fleet_seconds[1] and result["waited"] >= fake.fleet_seconds[1]


@pytest.mark.parametrize("args, says", [
    ({}, "nobody counted the Slurm jobs that are not finished"),
    ({"unfinished_jobs": 2}, "2 Slurm job(s) are not finished (pending, running, ...) and would be killed"),
])
def test_a_stop_that_would_kill_jobs_is_refused_like_the_update_path(fake, args, says):
    result = run(dict(args, state="stopped"))

    assert result["failed"] is True and result["msg"].startswith("Refusing to stop the compute fleet of %s: " % NAME)
    assert says in result["msg"] and "force_fleet_stop: true" in result["msg"]
    assert requests(fake) == [] and tag_calls(fake) == [] and FLEET_STOP_TAG not in fake.ec2_tags.get(HEAD_NODE, {})


def test_force_stops_whatever_the_count(fake):
    result = run({"state": "stopped", "unfinished_jobs": 5, "force_fleet_stop": True})

    assert not result.get("failed") and requests(fake) == ["STOP_REQUESTED"]


def test_check_mode_warns_that_the_real_run_would_refuse(fake):
    result = run({"state": "stopped"}, check_mode=True)

    assert result["changed"] is True and requests(fake) == [] and tag_calls(fake) == []
    assert any("nobody counted the Slurm jobs" in w for w in result["warnings"])


def test_a_stop_is_marked_on_the_head_node_before_it_is_asked_for(fake):
    result = run(dict(NO_JOBS, state="stopped"))

    assert result["marked_for_restart"] is True
    ops = [op for op, _kw in fake.calls if op in ("ec2.create_tags", "update_compute_fleet")]
    assert ops == ["ec2.create_tags", "update_compute_fleet"] and FLEET_STOP_TAG in fake.ec2_tags[HEAD_NODE]


def test_a_stop_for_a_maintenance_window_is_not_marked(fake):
    result = run(dict(NO_JOBS, state="stopped", mark_for_restart=False))

    assert result["marked_for_restart"] is False and requests(fake) == ["STOP_REQUESTED"] and tag_calls(fake) == []


def test_the_next_cluster_run_starts_a_fleet_compute_fleet_stopped(fake):
    run(dict(NO_JOBS, state="stopped"))

    result = cluster_cases.run({"config": cluster_cases.CONFIG})

    assert not result.get("failed"), result["msg"]
    assert result["actions"] == ["start compute fleet"] and result["compute_fleet_status"] == "RUNNING"
    assert requests(fake) == ["STOP_REQUESTED", "START_REQUESTED"] and fake.ec2_tags[HEAD_NODE] == {}
    assert any("by an earlier run (an update that did not finish, or hpc.pcluster.compute_fleet)" in w
               for w in result["warnings"])


def test_the_next_update_that_needs_the_fleet_stopped_runs_without_a_second_count(fake):
    run(dict(NO_JOBS, state="stopped"))
    fake.update_dryruns = [load("update_dryrun_success")]

    result = cluster_cases.run({"config": cluster_cases.config_with(instance_type="g5.12xlarge")})

    assert not result.get("failed"), result["msg"]
    assert result["actions"] == ["dryrun update", "update cluster", "start compute fleet"]
    assert requests(fake) == ["STOP_REQUESTED", "START_REQUESTED"]


def test_start_removes_the_mark(fake):
    run(dict(NO_JOBS, state="stopped"))

    result = run({"state": "started"})

    assert result["changed"] is True and result["status"] == "RUNNING" and fake.ec2_tags[HEAD_NODE] == {}
    assert cluster_cases.run({"config": cluster_cases.CONFIG})["changed"] is False


def test_stopped_fleet_is_left_alone(fake):
    fake.clusters[NAME].fleet = "STOPPED"

    result = run({"state": "stopped"})  # no count needed: nothing is stopped

    assert result["changed"] is False and requests(fake) == [] and tag_calls(fake) == []


def test_fleet_on_its_way_is_waited_for_not_asked_again(fake):
    fake.clusters[NAME].fleet_transitions = [(0, "STOPPING"), (40, "STOPPED")]

    result = run(dict(NO_JOBS, state="stopped"))

    assert result["changed"] is False and result["status"] == "STOPPED" and requests(fake) == []


def test_start_from_stopped(fake):
    fake.clusters[NAME].fleet = "STOPPED"

    result = run({"state": "started"})

    assert result["changed"] is True and result["status"] == "RUNNING" and requests(fake) == ["START_REQUESTED"]


def test_running_fleet_is_left_alone(fake):
    result = run({"state": "started"})

    assert result["changed"] is False and requests(fake) == [] and result["actions"] == []


def test_check_mode_asks_nothing(fake):
    result = run(dict(NO_JOBS, state="stopped"), check_mode=True)

    assert result["changed"] is True and requests(fake) == [] and result["status"] == "RUNNING"
    assert result["msg"] == "would stop compute fleet" and tag_calls(fake) == []


def test_wait_false_requests_and_returns(fake):
    result = run(dict(NO_JOBS, state="stopped", wait=False))

    assert result["changed"] is True and result["status"] == "STOP_REQUESTED"
    assert "waited" not in result and fake.clock.sleeps == []


def test_timeout_names_the_last_status(fake):
    fake.fleet_seconds = (20, 5000)

    result = run(dict(NO_JOBS, state="stopped", wait_timeout=120))

    assert result["failed"] is True and result["compute_fleet"]["status"] == "STOPPING"
    assert result["msg"].startswith("Timed out after 120 s waiting for cluster ml-training-cluster to reach compute "
                                    "fleet STOPPED: the compute fleet is STOPPING.")


def test_a_start_that_ends_protected_fails_saying_what_it_means_and_how_to_recover(fake):
    fake.clusters[NAME].fleet = "STOPPED"
    fake.fleet_seconds = (10, 30)
    protect_after_start(fake)

    result = run({"state": "started"})

    assert result["failed"] is True and result["compute_fleet"]["status"] == "PROTECTED"
    assert "is PROTECTED" in result["msg"] and "partition INACTIVE" in result["msg"]
    assert "clustermgtd" in result["msg"] and "hpc.pcluster.compute_fleet state=started" in result["msg"]


def test_starting_a_protected_fleet_is_how_it_recovers(fake):
    fake.clusters[NAME].fleet = "PROTECTED"

    result = run({"state": "started"})

    assert result["changed"] is True and result["status"] == "RUNNING" and requests(fake) == ["START_REQUESTED"]
    assert any("is PROTECTED" in w and "makes the partitions active again" in w for w in result["warnings"])


def test_the_cluster_module_reports_a_protected_fleet(fake):
    fake.clusters[NAME].fleet = "PROTECTED"

    result = cluster_cases.run({"config": cluster_cases.CONFIG})

    assert result["changed"] is False and result["compute_fleet_status"] == "PROTECTED"
    assert any("is PROTECTED" in w and "state=started" in w for w in result["warnings"])


def test_the_cluster_module_fails_when_the_fleet_it_starts_ends_protected(fake):
    fake.update_dryruns = [load("update_dryrun_needs_fleet_stop"), load("update_dryrun_success")]
    protect_after_start(fake)

    result = cluster_cases.run({"config": cluster_cases.config_with(instance_type="g5.12xlarge"),
                                "stop_fleet_for_update": True, "unfinished_jobs": 0})

    assert result["failed"] is True and "is PROTECTED" in result["msg"] and "partition INACTIVE" in result["msg"]
    assert requests(fake) == ["STOP_REQUESTED", "START_REQUESTED"] and fake.ec2_tags[HEAD_NODE] == {}


def test_missing_cluster(fake):
    result = run({"name": "other", "state": "stopped"})

    assert result["failed"] is True
    assert result["msg"].startswith("Cannot set the compute fleet of other to stopped: Cluster") and "does not exist" in result["msg"]
