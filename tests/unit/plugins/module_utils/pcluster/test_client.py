"""pcluster_client: the lazy import, retries for reads only, dryruns, pagination, presigned URLs reported."""

from __future__ import annotations

import random
import sys

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster import client as pcluster_client
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.client import PclusterApi, RetryPolicy
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import FakePcluster, load, recorded_error


def make_api(fake=None, **kwargs):
    fake = fake or FakePcluster()
    return PclusterApi(region="us-east-1", lib=fake, sleep=fake.clock.sleep, clock=fake.clock.monotonic, **kwargs), fake


def test_backoff_is_jittered_and_bounded():
    policy = RetryPolicy(base_delay=1.0, max_delay=20.0, rng=random.Random(7))
    delays = [[policy.delay(attempt) for attempt in range(8)] for _run in range(50)]

    for row in delays:
        for attempt, delay in enumerate(row):
            assert 0.5 <= delay <= min(20.0, 2 ** attempt)
    assert len({round(row[3], 3) for row in delays}) > 10  # jitter spreads concurrent retries


def test_transient_errors_of_reads_are_retried_then_succeed():
    api, fake = make_api(retry=RetryPolicy(rng=random.Random(1)))
    fake.add_cluster("c1", load("describe_cluster_complete"))
    fake.raise_before["describe_cluster"] = [recorded_error(load("throttled")), recorded_error(load("throttled_internal"))]

    assert api.describe_cluster("c1")["clusterStatus"] == "CREATE_COMPLETE"
    assert api.calls["describe_cluster"] == 3 and len(fake.clock.sleeps) == 2
    assert [r["attempt"] for r in api.retries] == [1, 2]


@pytest.mark.parametrize("operation, kwargs", [
    ("create_cluster", {"cluster_name": "c1", "config": {"Region": "us-east-1"}}),
    ("update_cluster", {"cluster_name": "c1", "config": {"Region": "us-east-1"}}),
    ("delete_cluster", {"cluster_name": "c1"}),
    ("update_compute_fleet", {"cluster_name": "c1", "status": "STOP_REQUESTED"}),
])
def test_writes_are_never_retried(operation, kwargs):
    api, fake = make_api()
    fake.add_cluster("c1", load("describe_cluster_complete"))
    fake.raise_before[operation] = [recorded_error(load("throttled"))]

    with pytest.raises(PclusterApiError) as info:
        getattr(api, operation)(**kwargs)
    assert info.value.transient and api.calls[operation] == 1 and fake.clock.sleeps == []


def test_dryruns_are_retried_like_reads():
    api, fake = make_api()
    fake.raise_before["create_cluster"] = [recorded_error(load("throttled"))]

    assert api.dryrun_create("c1", {"Region": "us-east-1"})["success"] is True
    assert api.calls["create_cluster"] == 2


def test_permanent_errors_are_not_retried():
    api, fake = make_api()
    fake.raise_before["describe_cluster"] = [recorded_error(load("describe_cluster_bad_name"))]

    with pytest.raises(PclusterApiError) as info:
        api.describe_cluster("c1")
    assert info.value.code == 400 and api.calls["describe_cluster"] == 1 and fake.clock.sleeps == []


def test_not_found_describe_is_none():
    api, _fake = make_api()

    assert api.describe_cluster("absent") is None


def test_presigned_urls_are_reported_for_masking():
    seen = []
    api, fake = make_api(on_presigned_url=seen.append)
    fake.add_cluster("c1", load("describe_cluster_complete"))

    api.describe_cluster("c1")

    assert seen == [load("describe_cluster_complete")["clusterConfiguration"]["url"]]


def test_pcluster_system_exit_becomes_an_error():
    class ExitingLib:
        def describe_cluster(self, **_kwargs):
            raise SystemExit("Bad Request: File not found: 'x'")

    api = PclusterApi(region="us-east-1", lib=ExitingLib())
    with pytest.raises(PclusterApiError) as info:
        api.call("describe_cluster", cluster_name="c1")
    assert "File not found" in info.value.message


def test_dryrun_create_success_groups_messages_by_level():
    api, fake = make_api()
    fake.create_dryrun = {
        "exception": "DryrunOperationException",
        "code": 412,
        "content": {
            "message": "Request would have succeeded, but DryRun flag is set.",
            "validationMessages": [
                {"level": "WARNING", "type": "KeyPairValidator", "id": "KeyPairValidator", "message": "no key pair"},
                {"level": "INFO", "type": "AmiOsCompatibleValidator", "id": "x", "message": "ok"},
            ],
        },
    }

    result = api.dryrun_create("c1", {"Region": "us-east-1"}, suppress_validators=["ALL"], validation_failure_level="WARNING")

    assert result["success"] is True and result["error"] is None
    assert [m["type"] for m in result["validation_messages"]["WARNING"]] == ["KeyPairValidator"]
    assert [m["type"] for m in result["validation_messages"]["INFO"]] == ["AmiOsCompatibleValidator"]
    assert result["validation_messages"]["ERROR"] == []
    call = fake.calls[0][1]
    assert call["dryrun"] is True and call["suppress_validators"] == ["ALL"] and call["validation_failure_level"] == "WARNING"


def test_dryrun_create_rejection_is_a_result():
    api, fake = make_api()
    fake.create_dryrun = {
        "exception": "CreateClusterBadRequestException",
        "code": 400,
        "content": {"message": "Invalid cluster configuration: The subnet ID 'subnet-1' does not exist"},
    }

    result = api.dryrun_create("c1", {"Region": "us-east-1"})

    assert result["success"] is False and "does not exist" in result["message"]
    assert result["error"].error_type == "CreateClusterBadRequestException"


def test_dryrun_create_with_a_missing_file_is_an_error(tmp_path):
    api, _fake = make_api()

    with pytest.raises(PclusterApiError) as info:
        api.dryrun_create("c1", str(tmp_path / "missing.yaml"))
    assert "Cluster config file not found" in info.value.message


@pytest.mark.parametrize(
    "fixture, success, no_change",
    [("update_dryrun_success", True, False), ("update_dryrun_no_change", True, True), ("update_dryrun_needs_fleet_stop", False, False)],
)
def test_dryrun_update_outcomes(fixture, success, no_change):
    api, fake = make_api()
    fake.add_cluster("c1", load("describe_cluster_complete"))
    fake.update_dryruns = [load(fixture)]

    result = api.dryrun_update("c1", {"Region": "us-east-1"})

    assert (result["success"], result["no_change"]) == (success, no_change)


def test_listings_drain_every_page():
    api, fake = make_api()
    for n in range(7):
        fake.add_cluster("c%d" % n, load("describe_cluster_complete"))

    assert len(api.list_clusters()) == 7 and api.calls["list_clusters"] == 4


def test_stack_events_stop_at_the_last_seen_event():
    api, fake = make_api()
    cluster, _data = fake.add_timeline("c1", "create_success_timeline", start=-2000)
    fake.PAGE = 5
    everything = api.get_cluster_stack_events("c1")
    assert len(everything) == len(cluster.events)

    newest_known = everything[3]["eventId"]
    assert len(api.get_cluster_stack_events("c1", until_event_id=newest_known)) == 3


def test_missing_pcluster_message_names_the_package_and_interpreter():
    message = pcluster_client.missing_pcluster_message()

    assert "aws-parallelcluster" in message and sys.executable in message and "pip install" in message


def test_every_call_starts_without_what_pcluster_cached_in_earlier_calls():
    """pcluster caches describe_images for the life of the process; a poll after a delete must not see the AMI."""
    from pcluster.aws.common import Cache  # pylint: disable=import-outside-toplevel

    reads = []

    @Cache.cached
    def describe_images(ami):
        reads.append(ami)
        return ami

    api, fake = make_api()
    fake.add_image("img", load("describe_image_available_moto"))
    describe_images("ami-1")
    describe_images("ami-1")
    assert reads == ["ami-1"]

    api.describe_image("img")
    describe_images("ami-1")

    assert reads == ["ami-1", "ami-1"]


def test_describe_image_reports_its_presigned_url_but_not_a_missing_one():
    seen = []
    api, fake = make_api(on_presigned_url=seen.append)
    fake.add_image("img", load("describe_image_available_moto"))
    fake.add_image("no-url", dict(load("describe_image_available_moto"), imageConfiguration={"url": "NOT_AVAILABLE"}))

    assert api.describe_image("img")["ec2AmiInfo"]["amiId"] == "ami-97072f37f2f87fb29"
    api.describe_image("no-url")

    assert len(seen) == 1 and "Signature=" in seen[0]
    assert api.describe_image("gone") is None


def test_build_image_dryrun_results():
    api, fake = make_api()
    config = {"Build": {"InstanceType": "c5.xlarge", "ParentImage": "ami-0a9c3a1e5c16f0b01"}}

    assert api.dryrun_build_image("img", config)["success"] is True
    fake.build_dryrun = load("build_image_bad_config")
    refused = api.dryrun_build_image("img", config)

    assert refused["success"] is False
    assert refused["validation_messages"]["ERROR"][0]["type"] == "ImageSchemaValidator"
    assert [kw["dryrun"] for op, kw in fake.calls if op == "build_image"] == [True, True]


def test_image_writes_are_never_retried():
    api, fake = make_api(retry=RetryPolicy(rng=random.Random(1)))
    fake.raise_before["build_image"] = [recorded_error(load("throttled"))]

    with pytest.raises(PclusterApiError):
        api.build_image("img", {"Build": {}})

    assert fake.count("build_image") == 1


def test_denials_pcluster_logged_and_went_past_are_named_once(monkeypatch):
    denied = ("Failed when retrieving fleet status from DynamoDB with error An error occurred (AccessDeniedException) "
              "when calling the GetItem operation: User: arn:aws:iam::123456789012:user/u is not authorized to perform: "
              "dynamodb:GetItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/parallelcluster-c because "
              "no identity-based policy allows the dynamodb:GetItem action. This is expected if cluster "
              "creation/deletion is in progress")
    monkeypatch.setattr(pcluster_client.PCLUSTER_LOG, "records", ["Describing cluster c", denied, denied])

    assert pcluster_client.denials_gone_past() == [
        "AWS denied dynamodb:GetItem to arn:aws:iam::123456789012:user/u and ParallelCluster went on without it; "
        "pcluster logged: " + denied]
    monkeypatch.setattr(pcluster_client.PCLUSTER_LOG, "records", ["Describing cluster c"])
    assert pcluster_client.denials_gone_past() == []
