"""failure_report: failure codes with hints, the first failed events (root cause first), the log streams to read."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.failure_report import failure_report, first_failed_events
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.client import PclusterApi
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import FakePcluster, load


def make_api():
    fake = FakePcluster()
    return PclusterApi(region="us-east-1", lib=fake, sleep=fake.clock.sleep, clock=fake.clock.monotonic), fake


def test_first_failed_events_put_the_root_cause_first():
    events = [item["event"] for item in reversed(load("create_failed_timeline")["events"])]

    first = first_failed_events(events)

    assert [e["logicalResourceId"] for e in first] == ["HeadNodeWaitCondition202611282200", "CloudWatchDashboard"]


def test_failure_report_survives_missing_logs():
    api, fake = make_api()
    fake.add_timeline("c1", "create_failed_timeline", start=-2000)
    fake.clusters["c1"].log_streams = []

    report = failure_report(api, "c1", api.describe_cluster("c1"))

    assert report["log_streams"] == [] and "no log streams found" in report["message"]
    assert report["failures"][0]["hint"].startswith("The head node did not finish its bootstrap")


def test_bootstrap_timeout_gets_its_own_hint():
    api, fake = make_api()
    fake.add_timeline("c1", "create_failed_timeline", start=-2000)
    describe = api.describe_cluster("c1")
    describe["failures"] = [{"failureCode": "HeadNodeBootstrapFailure", "failureReason": "Cluster creation timed out."}]

    report = failure_report(api, "c1", describe)

    assert "HeadNodeBootstrapTimeout" in report["failures"][0]["hint"]
    assert "HeadNodeBootstrapFailure: Cluster creation timed out." in report["message"]


def test_update_failure_report_says_it_was_rolled_back():
    api, fake = make_api()
    cluster = fake.add_cluster("c1", load("describe_cluster_complete"))
    failed = dict(load("describe_cluster_complete"), clusterStatus="UPDATE_FAILED", cloudFormationStackStatus="UPDATE_ROLLBACK_COMPLETE")
    cluster.phases.append((0, failed))
    cluster.events = [(0, {"eventId": "e1", "logicalResourceId": "HeadNode", "resourceType": "AWS::EC2::Instance",
                           "resourceStatus": "UPDATE_FAILED", "resourceStatusReason": "Instance type m5.4xlarge is not supported",
                           "stackName": "c1", "timestamp": "2026-11-28T23:00:00.000Z"})]

    report = failure_report(api, "c1", api.describe_cluster("c1"))

    assert report["failures"] == []
    assert "HeadNode (AWS::EC2::Instance) UPDATE_FAILED: Instance type m5.4xlarge is not supported" in report["message"]
    assert "rolled the update back" in report["message"]


def test_image_failure_hints_name_the_component_that_failed():
    from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.failure_report import image_failure_hint  # pylint: disable=import-outside-toplevel

    base = "arn:aws:imagebuilder:us-east-1:123456789012:component/"
    assert image_failure_hint("Document %sparallelclusterimage-script-2-abc/3.16.1/1 failed!" % base).startswith(
        "Build.Components[2] (a script)")
    assert image_failure_hint(None, "Document %sparallelclusterimage-updateos-abc/3.16.1/1 failed!" % base).startswith(
        "Updating the OS packages")
    assert image_failure_hint("Document %sparallelclusterimage-abc/3.16.1/1 failed!" % base).startswith(
        "ParallelCluster's own component")
    assert "timed out" in image_failure_hint("Step timed out while step is Poll action status")
    assert image_failure_hint("API: iam:CreateRole User is not authorized").startswith("The build infrastructure")


def test_build_log_lines_keep_the_errors_and_the_end():
    from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.failure_report import build_log_lines  # pylint: disable=import-outside-toplevel

    events = [{"message": "Stdout: line %d" % i} for i in range(100)]
    events[20]["message"] = "Stdout: fatal: [localhost]: FAILED!"

    lines = build_log_lines(events)

    assert lines[0] == "Stdout: fatal: [localhost]: FAILED!" and lines[-1] == "Stdout: line 99" and len(lines) == 11
