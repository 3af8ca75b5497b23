"""cluster/lifecycle.py: the compute fleet around an update: the jobs guard, the head-node tag, restarts after
failures, "the compute fleet is STOPPED" in every failure while it is, and the next run starting it.

Runs hpc.pcluster.cluster in-process on recorded pcluster response shapes (a real update cannot run here).
"""

from __future__ import annotations

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.fleet import FLEET_STOP_TAG
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.cluster_cases import (
    CONFIG,
    HEAD_NODE,
    NAME,
    config_with,
    existing,
    fleet_requests,
    operations,
    run,
)
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import install, load, recorded_error

STOPPED = "the compute fleet is STOPPED"
NEW_TYPE = config_with(instance_type="g5.12xlarge")


@pytest.fixture(name="fake")
def fake_fixture(monkeypatch):
    fake = install(monkeypatch)
    existing(fake, CONFIG)
    fake.update_dryruns = [load("update_dryrun_needs_fleet_stop"), load("update_dryrun_success")]
    return fake


def tag_calls(fake):
    return [op for op, _now, _dryrun, _status in fake.call_times if op in ("ec2.create_tags", "ec2.delete_tags")]


def order(fake):
    wanted = ("ec2.create_tags", "ec2.delete_tags", "update_compute_fleet", "update_cluster")
    return [(op, status) if op == "update_compute_fleet" else op for op, _now, dryrun, status in fake.call_times
            if op in wanted and not dryrun]


@pytest.mark.parametrize("args, says", [
    ({}, "nobody counted the Slurm jobs"),
    ({"unfinished_jobs": 3}, "3 Slurm job(s) are not finished"),
])
def test_fleet_stop_is_refused_unless_no_job_is_left(fake, args, says):
    result = run(dict({"config": NEW_TYPE, "stop_fleet_for_update": True}, **args))

    assert result["failed"] is True and says in result["msg"]
    # The change set comes with the refusal.
    assert "The update would change:" in result["msg"] and "InstanceType: All compute nodes must be stopped" in result["msg"]
    assert result["fleet_stop_required"] is True and result["change_set"][0]["requestedValue"] == "g5.12xlarge"
    assert fleet_requests(fake) == [] and tag_calls(fake) == [] and STOPPED not in result["msg"]


def test_force_fleet_stop_stops_whatever_the_count(fake):
    result = run({"config": NEW_TYPE, "stop_fleet_for_update": True, "unfinished_jobs": 3, "force_fleet_stop": True})

    assert not result.get("failed"), result["msg"]
    assert fleet_requests(fake) == ["STOP_REQUESTED", "START_REQUESTED"]


def test_the_tag_marks_the_stop_from_before_it_until_after_the_start(fake):
    result = run({"config": NEW_TYPE, "stop_fleet_for_update": True, "unfinished_jobs": 0})

    assert not result.get("failed"), result["msg"]
    assert order(fake) == ["ec2.create_tags", ("update_compute_fleet", "STOP_REQUESTED"), "update_cluster",
                           ("update_compute_fleet", "START_REQUESTED"), "ec2.delete_tags"]
    assert fake.ec2_tags[HEAD_NODE] == {}


def test_a_failed_update_starts_the_fleet_again(fake):
    fake.update_fails = True

    result = run({"config": NEW_TYPE, "stop_fleet_for_update": True, "unfinished_jobs": 0})

    assert result["failed"] is True and result["msg"].startswith("The update of cluster ml-training-cluster failed.")
    assert "UPDATE_FAILED" in result["msg"] and "rolled the update back" in result["msg"]
    assert "The compute fleet, stopped for the update, was asked to start again." in result["msg"]
    assert fleet_requests(fake) == ["STOP_REQUESTED", "START_REQUESTED"] and fake.ec2_tags[HEAD_NODE] == {}


def test_a_timed_out_update_leaves_the_fleet_stopped_and_says_so(fake):
    fake.update_seconds = 5000

    result = run({"config": NEW_TYPE, "stop_fleet_for_update": True, "unfinished_jobs": 0, "wait_timeout": 900})

    assert result["failed"] is True and result["msg"].startswith("Timed out after 900 s")
    assert STOPPED in result["msg"] and "Running this task again starts it" in result["msg"]
    assert fleet_requests(fake) == ["STOP_REQUESTED"] and FLEET_STOP_TAG in fake.ec2_tags[HEAD_NODE]


def test_a_failed_restart_says_the_fleet_is_stopped(fake):
    fake.update_fails = True
    original = fake.update_compute_fleet

    def stop_then_fail(cluster_name, status, region=None):
        if status == "START_REQUESTED":
            fake._call("update_compute_fleet", {"status": status})
            raise recorded_error(load("describe_cluster_no_credentials"))
        return original(cluster_name, status, region)

    fake.update_compute_fleet = stop_then_fail  # the stop goes through, the start is refused

    result = run({"config": NEW_TYPE, "stop_fleet_for_update": True, "unfinished_jobs": 0})

    assert result["failed"] is True and "Starting the compute fleet again failed" in result["msg"]
    assert STOPPED in result["msg"] and FLEET_STOP_TAG in fake.ec2_tags[HEAD_NODE]


def test_a_rejected_second_dryrun_starts_the_fleet_again(fake):
    fake.update_dryruns = [load("update_dryrun_needs_fleet_stop"), load("update_dryrun_needs_fleet_stop")]

    result = run({"config": NEW_TYPE, "stop_fleet_for_update": True, "unfinished_jobs": 0})

    assert result["failed"] is True and "ParallelCluster rejects the update" in result["msg"]
    assert "was asked to start again" in result["msg"] and STOPPED not in result["msg"]
    assert fleet_requests(fake) == ["STOP_REQUESTED", "START_REQUESTED"]


def test_the_next_run_starts_a_fleet_an_earlier_run_left_stopped(fake):
    fake.clusters[NAME].fleet = "STOPPED"
    fake.ec2_tags[HEAD_NODE] = {FLEET_STOP_TAG: "2026-11-30T23:00:00Z"}

    result = run({"config": CONFIG})

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True and result["actions"] == ["start compute fleet"]
    assert result["fleet_stopped_for_update"] is True and result["compute_fleet_status"] == "RUNNING"
    assert fleet_requests(fake) == ["START_REQUESTED"] and fake.ec2_tags[HEAD_NODE] == {}
    assert any("was stopped at 2026-11-30T23:00:00Z by an earlier run" in w for w in result["warnings"])
    assert run({"config": CONFIG})["changed"] is False  # and the run after that has nothing to do


def test_the_next_run_finishes_an_interrupted_update_first(fake):
    # Interrupted during the update: UPDATE_IN_PROGRESS, fleet STOPPED, the tag on the head node.
    cluster = fake.clusters[NAME]
    done = cluster.describe(0)
    cluster.phases.append((0, dict(done, clusterStatus="UPDATE_IN_PROGRESS", cloudFormationStackStatus="UPDATE_IN_PROGRESS")))
    cluster.phases.append((400, dict(done, clusterStatus="UPDATE_COMPLETE", cloudFormationStackStatus="UPDATE_COMPLETE")))
    cluster.fleet = "STOPPED"
    fake.ec2_tags[HEAD_NODE] = {FLEET_STOP_TAG: "2026-11-30T23:00:00Z"}

    result = run({"config": CONFIG})

    assert not result.get("failed"), result["msg"]
    assert result["actions"] == ["wait for UPDATE_IN_PROGRESS", "start compute fleet"]
    assert fleet_requests(fake) == ["START_REQUESTED"] and operations(fake) == []


def test_a_tag_left_on_a_running_fleet_is_removed_quietly(fake):
    fake.ec2_tags[HEAD_NODE] = {FLEET_STOP_TAG: "2026-11-30T23:00:00Z"}

    result = run({"config": CONFIG})

    assert result["changed"] is False and fleet_requests(fake) == [] and fake.ec2_tags[HEAD_NODE] == {}


def test_an_earlier_stop_lets_the_update_run_without_stopping_again(fake):
    fake.clusters[NAME].fleet = "STOPPED"
    fake.ec2_tags[HEAD_NODE] = {FLEET_STOP_TAG: "2026-11-30T23:00:00Z"}
    fake.update_dryruns = [load("update_dryrun_success")]

    result = run({"config": NEW_TYPE})  # no stop_fleet_for_update, no job count: the fleet is stopped already

    assert not result.get("failed"), result["msg"]
    assert result["actions"] == ["dryrun update", "update cluster", "start compute fleet"]
    assert fleet_requests(fake) == ["START_REQUESTED"]


def test_check_mode_plans_the_start_and_touches_nothing(fake):
    fake.clusters[NAME].fleet = "STOPPED"
    fake.ec2_tags[HEAD_NODE] = {FLEET_STOP_TAG: "2026-11-30T23:00:00Z"}

    result = run({"config": CONFIG}, check_mode=True)

    assert result["changed"] is True and result["actions"] == ["start compute fleet"]
    assert fleet_requests(fake) == [] and tag_calls(fake) == [] and FLEET_STOP_TAG in fake.ec2_tags[HEAD_NODE]


def test_check_mode_warns_that_the_real_run_would_refuse(fake):
    result = run({"config": NEW_TYPE, "stop_fleet_for_update": True}, check_mode=True)

    assert result["changed"] is True and result["fleet_stop_required"] is True
    assert any("nobody counted the Slurm jobs" in w for w in result["warnings"])
    assert fleet_requests(fake) == []
