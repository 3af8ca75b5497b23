"""cluster/writes.py: no blind retries of writes. After an error, the cluster is described and the run decides.

Runs hpc.pcluster.cluster in-process on recorded pcluster response shapes; ``raise_after`` makes a call take
effect and then lose its answer, ``raise_before`` makes it fail before anything happened.
"""

from __future__ import annotations

import pytest

from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.cluster_cases import CONFIG, NAME, config_with, existing, fleet_requests, operations, run
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import install, load, recorded_error, stored_config_url


@pytest.fixture(name="fake")
def fake_fixture(monkeypatch):
    return install(monkeypatch)


def test_a_create_whose_answer_was_lost_is_not_sent_again(fake):
    fake.raise_after["create_cluster"] = [recorded_error(load("unexpected_fatal"))]
    original = fake.add_timeline
    fake.add_timeline = lambda name, fixture, **kw: original(name, fixture, stored_config_url=stored_config_url(config=CONFIG), **kw)

    result = run({"config": CONFIG})

    assert not result.get("failed"), result["msg"]
    assert result["status"] == "CREATE_COMPLETE" and operations(fake) == [("create_cluster", None)]
    assert any("shows that it went through" in w for w in result["warnings"])


def test_a_create_that_did_not_happen_is_sent_again_after_a_transient_error(fake):
    fake.raise_before["create_cluster"] = [recorded_error(load("connect_timeout"))]

    result = run({"config": CONFIG})

    assert not result.get("failed"), result["msg"]
    assert operations(fake) == [("create_cluster", None), ("create_cluster", None)]
    assert fake.count("describe_cluster") >= 2  # looked before sending again


def test_a_create_that_did_not_happen_after_a_server_error_fails(fake):
    fake.raise_before["create_cluster"] = [recorded_error(load("unexpected_fatal"))]

    result = run({"config": CONFIG})

    assert result["failed"] is True and "Unexpected fatal exception" in result["msg"]
    assert operations(fake) == [("create_cluster", None)]


def created_meanwhile(fake, stored):
    """create_cluster finds the cluster another run created since this run looked."""

    def create_cluster(cluster_name, cluster_configuration, **_kwargs):
        fake._call("create_cluster", {"cluster_name": cluster_name})
        existing(fake, stored)
        raise recorded_error(load("create_already_exists"))

    fake.create_cluster = create_cluster


def test_a_create_that_finds_another_config_fails(fake):
    created_meanwhile(fake, config_with(max_count=8))

    result = run({"config": CONFIG})

    assert result["failed"] is True
    assert "exists (CREATE_COMPLETE) with another configuration than the one this run creates" in result["msg"]
    assert "MaxCount: 8 -> 2" in result["msg"]


def test_a_create_that_finds_the_same_config_carries_on(fake):
    created_meanwhile(fake, CONFIG)

    result = run({"config": CONFIG})

    assert not result.get("failed"), result["msg"]
    assert result["status"] == "CREATE_COMPLETE" and any("created meanwhile" in w for w in result["warnings"])


def test_an_update_whose_answer_was_lost_is_waited_for_not_sent_again(fake):
    existing(fake, CONFIG)
    fake.update_dryruns = [load("update_dryrun_success")]
    fake.raise_after["update_cluster"] = [recorded_error(load("connect_timeout"))]

    result = run({"config": config_with(max_count=3)})

    assert not result.get("failed"), result["msg"]
    assert result["status"] == "UPDATE_COMPLETE"
    assert operations(fake) == [("update_cluster", True), ("update_cluster", None)]  # never into a 409


def test_a_refused_update_is_not_sent_again(fake):
    existing(fake, CONFIG)
    fake.update_dryruns = [load("update_dryrun_success")]
    original = fake.update_cluster

    def refuse(cluster_name, cluster_configuration, dryrun=None, **kwargs):
        if not dryrun:
            fake._call("update_cluster", {"dryrun": None})
            raise recorded_error(load("update_in_progress_conflict"))
        return original(cluster_name, cluster_configuration, dryrun=dryrun, **kwargs)

    fake.update_cluster = refuse

    result = run({"config": config_with(max_count=3)})

    assert result["failed"] is True and "Cannot execute update while stack is in UPDATE_IN_PROGRESS" in result["msg"]
    assert [dryrun for op, dryrun in operations(fake)] == [True, None]


def test_a_throttled_delete_that_did_not_happen_is_sent_again(fake):
    existing(fake, CONFIG)
    fake.raise_before["delete_cluster"] = [recorded_error(load("throttled"))]

    result = run({"state": "absent"})

    assert not result.get("failed"), result["msg"]
    assert result["exists"] is False and operations(fake) == [("delete_cluster", None), ("delete_cluster", None)]


def test_a_delete_whose_answer_was_lost_is_not_sent_again(fake):
    existing(fake, CONFIG)
    fake.raise_after["delete_cluster"] = [recorded_error(load("unexpected_fatal"))]

    result = run({"state": "absent"})

    assert not result.get("failed"), result["msg"]
    assert result["exists"] is False and operations(fake) == [("delete_cluster", None)]


def test_a_fleet_request_whose_answer_was_lost_is_not_sent_again(fake):
    existing(fake, CONFIG)
    fake.update_dryruns = [load("update_dryrun_needs_fleet_stop"), load("update_dryrun_success")]
    fake.raise_after["update_compute_fleet"] = [recorded_error(load("connect_timeout"))]

    result = run({"config": config_with(instance_type="g5.12xlarge"), "stop_fleet_for_update": True, "unfinished_jobs": 0})

    assert not result.get("failed"), result["msg"]
    assert fleet_requests(fake) == ["STOP_REQUESTED", "START_REQUESTED"]
    assert fake.clusters[NAME].fleet_status(fake.clock.now) == "RUNNING"
