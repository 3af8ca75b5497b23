"""hpc.pcluster.compute_fleet: idempotent start/stop, waits on the Slurm fleet statuses, check mode."""

from __future__ import annotations

import pytest

from ansible_collections.hpc.pcluster.plugins.modules import compute_fleet
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import install, load, run_module

NAME = "ml-training-cluster"


@pytest.fixture(name="fake")
def fake_fixture(monkeypatch):
    fake = install(monkeypatch)
    fake.add_cluster(NAME, load("describe_cluster_complete"))
    return fake


def run(args, **kwargs):
    return run_module(compute_fleet, dict({"name": NAME, "region": "us-east-1"}, **args), **kwargs)


def requests(fake):
    return [kw["status"] for op, kw in fake.calls if op == "update_compute_fleet"]


def test_stop_waits_until_stopped(fake):
    result = run({"state": "stopped"})

    assert result["changed"] is True and result["status"] == "STOPPED" and result["previous_status"] == "RUNNING"
    assert requests(fake) == ["STOP_REQUESTED"]
    assert fake.clock.now >= fake.fleet_seconds[1] and result["waited"] >= fake.fleet_seconds[1]


def test_stopped_fleet_is_left_alone(fake):
    fake.clusters[NAME].fleet = "STOPPED"

    result = run({"state": "stopped"})

    assert result["changed"] is False and requests(fake) == []


def test_fleet_on_its_way_is_waited_for_not_asked_again(fake):
    fake.clusters[NAME].fleet_transitions = [(0, "STOPPING"), (40, "STOPPED")]

    result = run({"state": "stopped"})

    assert result["changed"] is False and result["status"] == "STOPPED" and requests(fake) == []


def test_start_from_stopped(fake):
    fake.clusters[NAME].fleet = "STOPPED"

    result = run({"state": "started"})

    assert result["changed"] is True and result["status"] == "RUNNING" and requests(fake) == ["START_REQUESTED"]


def test_check_mode_asks_nothing(fake):
    result = run({"state": "stopped"}, check_mode=True)

    assert result["changed"] is True and requests(fake) == [] and result["status"] == "RUNNING"


def test_wait_false_requests_and_returns(fake):
    result = run({"state": "stopped", "wait": False})

    assert result["changed"] is True and result["status"] == "STOP_REQUESTED"
    assert "pending" not in result and fake.clock.sleeps == []


def test_timeout_names_the_last_status(fake):
    fake.fleet_seconds = (20, 5000)

    result = run({"state": "stopped", "wait_timeout": 120})

    assert result["failed"] is True
    assert result["msg"] == "The compute fleet of ml-training-cluster did not become STOPPED within 120 s (last status STOPPING)."


def test_protected_fleet_fails_when_starting(fake):
    fake.clusters[NAME].fleet = "STOPPED"
    fake.fleet_seconds = (10, 30)
    original = fake.update_compute_fleet

    def start_then_protect(cluster_name, status, region=None):
        response = original(cluster_name, status, region)
        fake.clusters[NAME].fleet_transitions[-1] = (fake.clock.now + 30, "PROTECTED")
        return response

    fake.update_compute_fleet = start_then_protect

    result = run({"state": "started"})

    assert result["failed"] is True and "PROTECTED" in result["msg"] and "clustermgtd" in result["msg"]


def test_missing_cluster(fake):
    result = run({"name": "other", "state": "stopped"})

    assert result["failed"] is True
    assert result["msg"].startswith("Cannot set the compute fleet of other to stopped: Cluster") and "does not exist" in result["msg"]
