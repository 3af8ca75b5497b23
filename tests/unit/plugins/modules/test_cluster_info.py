"""hpc.pcluster.cluster_info against recorded pcluster response shapes (paginated listings included)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.hpc.pcluster.plugins.modules import cluster_info
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import install, load, recorded_error, run_module

NAME = "ml-training-cluster"


@pytest.fixture(name="fake")
def fake_fixture(monkeypatch):
    return install(monkeypatch)


def run(args, **kwargs):
    return run_module(cluster_info, dict({"region": "us-east-1"}, **args), **kwargs)


def instances(count):
    recorded = load("describe_cluster_instances")["instances"]
    head = [i for i in recorded if i["nodeType"] == "HeadNode"]
    compute = [i for i in recorded if i["nodeType"] == "ComputeNode"][0]
    return head + [dict(compute, instanceId="i-%017x" % n, privateIpAddress="10.0.1.%d" % (10 + n)) for n in range(count)]


def test_describes_one_cluster(fake):
    fake.add_cluster(NAME, load("describe_cluster_complete"))

    result = run({"name": NAME})

    assert result["changed"] is False and result["exists"] is True
    assert result["status"] == "CREATE_COMPLETE" and result["stack_status"] == "CREATE_COMPLETE"
    assert result["version"] == "3.16.1" and result["compute_fleet_status"] == "RUNNING"
    assert "warnings" not in result
    assert result["head_node"] == {
        "instance_id": "i-549c884f957c8e56d",
        "instance_type": "m5.8xlarge",
        "private_ip_address": "10.0.0.20",
        "public_ip_address": "54.214.170.105",
        "state": "running",
        "launch_time": "2026-11-28T23:36:07.000Z",
    }
    assert result["cluster"]["clusterName"] == NAME and result["cluster"]["version"] == "3.16.1"


def test_a_protected_fleet_is_reported_with_what_it_means_and_how_to_recover(fake):
    fake.add_cluster(NAME, load("describe_cluster_complete"), fleet="PROTECTED")

    result = run({"name": NAME})

    assert result["compute_fleet_status"] == "PROTECTED"
    assert any("is PROTECTED" in w and "partition INACTIVE" in w and "hpc.pcluster.compute_fleet state=started" in w
               for w in result["warnings"])


def test_presigned_config_url_is_in_no_result(fake):
    url = load("describe_cluster_complete")["clusterConfiguration"]["url"]
    fake.add_cluster(NAME, load("describe_cluster_complete"))
    fake.add_timeline("failed", "create_failed_timeline", start=-2000, stored_config_url=url)

    results = [run({"name": NAME}), run({"name": "failed", "failure_details": True, "stored_config": True})]

    for result in results:
        assert result["cluster"]["clusterConfiguration"] == {}
        text = json.dumps(result)
        assert "Signature=" not in text and "clusterConfiguration.url" not in text and url not in text


def test_missing_cluster_is_not_an_error(fake):
    result = run({"name": NAME})

    assert result["exists"] is False and result["cluster"] == {} and result["head_node"] is None


def test_lists_every_cluster_across_pages(fake):
    for n in range(5):
        fake.add_cluster("cluster-%d" % n, load("describe_cluster_complete"))

    result = run({})

    assert [c["clusterName"] for c in result["clusters"]] == ["cluster-%d" % n for n in range(5)]
    assert fake.count("list_clusters") == 3  # pages of 2


def test_list_filters_by_status(fake):
    fake.add_cluster("done", load("describe_cluster_complete"))
    fake.add_timeline("creating", "create_success_timeline")

    result = run({"cluster_status": ["CREATE_IN_PROGRESS"]})

    assert [c["clusterName"] for c in result["clusters"]] == ["creating"]


def test_instances_fleet_and_progress(fake):
    fake.add_cluster(NAME, load("describe_cluster_complete"), instances=instances(7))

    result = run({"name": NAME, "instances": True, "compute_fleet": True, "stack_progress": True})

    assert len(result["instances"]) == 8 and fake.count("describe_cluster_instances") == 4
    assert result["compute_fleet"]["status"] == "RUNNING"
    assert result["stack_progress"]["resources_total"] == 14


def test_instances_filtered_by_node_type(fake):
    fake.add_cluster(NAME, load("describe_cluster_complete"), instances=instances(3))

    result = run({"name": NAME, "instances": True, "node_type": "HeadNode"})

    assert [i["nodeType"] for i in result["instances"]] == ["HeadNode"]


def test_stack_progress_counts_resources_of_a_create(fake):
    fake.add_timeline(NAME, "create_success_timeline", start=-500)

    result = run({"name": NAME, "stack_progress": True})

    progress = result["stack_progress"]
    assert progress["operation"] == "CREATE" and progress["resources_total"] == 14
    assert progress["resources_complete"] == 10 and progress["resources_in_progress"] == 1
    assert progress["latest_event"]["logical_id"] == "HeadNodeWaitCondition202611282200"


def test_failure_details_of_a_failed_cluster(fake):
    fake.add_timeline(NAME, "create_failed_timeline", start=-2000)

    result = run({"name": NAME, "failure_details": True})

    assert result["status"] == "CREATE_FAILED"
    assert result["failure"]["failures"][0]["failure_code"] == "HeadNodeBootstrapFailure"
    assert "HeadNodeBootstrapFailure" in result["failure"]["message"]


def test_options_needing_a_name_are_reported_together(fake):
    result = run({"instances": True, "compute_fleet": True})

    assert result["failed"] is True
    assert result["msg"] == "Options instances, compute_fleet need 'name' (the cluster to describe)."


def test_no_credentials_is_one_clear_message(fake):
    fake.raise_before["list_clusters"] = [recorded_error(load("describe_cluster_no_credentials"))]

    result = run({})

    assert result["failed"] is True and "No AWS credentials found" in result["msg"]
