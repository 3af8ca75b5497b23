"""pcluster_api: error normalisation, retries, dryruns, pagination, progress, waiting, failure reports."""

from __future__ import annotations

import pathlib
import random
import sys

import pytest

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "pcluster"
sys.path.insert(0, str(FIXTURES))

from fake_pcluster import FakeClock, FakePcluster, load, recorded_error  # noqa: E402

from ansible_collections.hpc.pcluster.plugins.module_utils import pcluster_api as api_mod  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.module_utils.config_file import config_differences, normalise_config  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster_api import (  # noqa: E402
    PclusterApi,
    PclusterApiError,
    RetryPolicy,
    StackProgress,
    WaitTimeout,
    convert_error,
    explain_error,
    first_failed_events,
    fleet_plan,
    wait_until,
)


def make_api(fake=None, **kwargs):
    fake = fake or FakePcluster()
    return PclusterApi(region="us-east-1", lib=fake, sleep=fake.clock.sleep, clock=fake.clock.monotonic, **kwargs), fake


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "fixture, code, error_type, text",
    [
        ("describe_cluster_not_found", 404, "NotFoundException", "does not exist"),
        ("describe_cluster_bad_name", 400, "ParameterException", "does not match"),
        ("describe_cluster_bad_region", 400, "BadRequestException", "invalid or unsupported region"),
        ("describe_cluster_no_credentials", 500, "InternalServiceException", "Unable to locate credentials"),
        ("throttled", 429, "LimitExceededException", "Rate exceeded"),
        ("update_dryrun_success", 412, "DryrunOperationException", "DryRun flag is set"),
    ],
)
def test_recorded_errors_are_normalised(fixture, code, error_type, text):
    error = convert_error(recorded_error(load(fixture)), "describe_cluster")

    assert (error.code, error.error_type, error.operation) == (code, error_type, "describe_cluster")
    assert text in error.message


def test_update_errors_and_change_set_are_kept():
    error = convert_error(recorded_error(load("update_dryrun_needs_fleet_stop")))

    assert error.needs_fleet_stopped and not error.transient
    assert [c["parameter"].rsplit(".", 1)[1] for c in error.change_set] == ["InstanceType", "MaxCount"]
    assert "All compute nodes must be stopped" in error.describe()
    assert "Update failure" not in error.describe()


def test_no_change_is_recognised():
    assert convert_error(recorded_error(load("update_dryrun_no_change"))).is_no_change


@pytest.mark.parametrize(
    "fixture, transient",
    [
        ("throttled", True),
        ("throttled_internal", True),
        ("describe_cluster_no_credentials", False),
        ("describe_cluster_not_found", False),
        ("describe_cluster_bad_region", False),
        ("update_dryrun_needs_fleet_stop", False),
    ],
)
def test_only_throttling_and_transient_errors_are_retryable(fixture, transient):
    assert convert_error(recorded_error(load(fixture))).transient is transient


def test_botocore_throttling_is_transient():
    from botocore.exceptions import ClientError  # pylint: disable=import-outside-toplevel

    exc = ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "DescribeStacks")
    error = convert_error(exc)

    assert error.code == 429 and error.transient and error.message == "Throttling: Rate exceeded"


@pytest.mark.parametrize(
    "message, settings, expected",
    [
        ("Unable to locate credentials", {}, "No AWS credentials found"),
        ("Bad Request: invalid or unsupported region 'mars-1'", {"region": "mars-1"}, "AWS region 'mars-1' is unknown"),
        ("Bad Request: The config profile (dev) could not be found", {"profile": "dev"}, "AWS profile 'dev' does not exist"),
        ("Could not connect to the endpoint URL: \"http://127.0.0.1:9/\"", {"endpoint_url": "http://127.0.0.1:9"}, "Cannot reach http://127.0.0.1:9"),
    ],
)
def test_first_time_errors_read_clearly(message, settings, expected):
    assert explain_error(PclusterApiError(message, code=400), settings).startswith(expected)


# --------------------------------------------------------------------------- retries


def test_backoff_is_jittered_and_bounded():
    policy = RetryPolicy(base_delay=1.0, max_delay=20.0, rng=random.Random(7))
    delays = [[policy.delay(attempt) for attempt in range(8)] for _run in range(50)]

    for row in delays:
        for attempt, delay in enumerate(row):
            assert 0.5 <= delay <= min(20.0, 2 ** attempt)
    assert len({round(row[3], 3) for row in delays}) > 10  # jitter spreads concurrent retries


def test_transient_errors_are_retried_then_succeed():
    api, fake = make_api(retry=RetryPolicy(rng=random.Random(1)))
    fake.add_cluster("c1", load("describe_cluster_complete"))
    fake.raise_before["describe_cluster"] = [recorded_error(load("throttled")), recorded_error(load("throttled_internal"))]

    assert api.describe_cluster("c1")["clusterStatus"] == "CREATE_COMPLETE"
    assert api.calls["describe_cluster"] == 3 and len(fake.clock.sleeps) == 2
    assert [r["attempt"] for r in api.retries] == [1, 2]


def test_permanent_errors_are_not_retried():
    api, fake = make_api()
    fake.raise_before["describe_cluster"] = [recorded_error(load("describe_cluster_bad_name"))]

    with pytest.raises(PclusterApiError) as info:
        api.describe_cluster("c1")
    assert info.value.code == 400 and api.calls["describe_cluster"] == 1 and fake.clock.sleeps == []


def test_not_found_describe_is_none():
    api, _fake = make_api()

    assert api.describe_cluster("absent") is None


def test_pcluster_system_exit_becomes_an_error():
    class ExitingLib:
        def describe_cluster(self, **_kwargs):
            raise SystemExit("Bad Request: File not found: 'x'")

    api = PclusterApi(region="us-east-1", lib=ExitingLib())
    with pytest.raises(PclusterApiError) as info:
        api.call("describe_cluster", cluster_name="c1")
    assert "File not found" in info.value.message


# --------------------------------------------------------------------------- dryruns


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

    result = api.dryrun_create("c1", {"Region": "us-east-1"})

    assert result["success"] is True and result["error"] is None
    assert [m["type"] for m in result["validation_messages"]["WARNING"]] == ["KeyPairValidator"]
    assert [m["type"] for m in result["validation_messages"]["INFO"]] == ["AmiOsCompatibleValidator"]
    assert result["validation_messages"]["ERROR"] == []
    assert fake.calls[0][1]["dryrun"] is True


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


def test_module_level_dryrun_create_signature(monkeypatch):
    fake = FakePcluster()
    monkeypatch.setattr(api_mod, "pcluster_lib", lambda: fake)

    result = api_mod.dryrun_create("c1", {"Region": "us-east-1"}, "us-east-1", suppress_validators=["ALL"], validation_failure_level="WARNING")

    assert result["success"] is True
    call = fake.calls[0][1]
    assert call["suppress_validators"] == ["ALL"] and call["validation_failure_level"] == "WARNING"


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


# --------------------------------------------------------------------------- listings and progress


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


def test_stack_progress_follows_the_current_operation_only():
    progress = StackProgress(resources_total=14)
    events = load("create_success_timeline")["events"]
    progress.feed([item["event"] for item in reversed(events)])
    summary = progress.summary()
    assert (summary["operation"], summary["resources_complete"], summary["resources_in_progress"]) == ("CREATE", 14, 0)
    assert summary["stack_status"] == "CREATE_COMPLETE"

    update_start = dict(events[0]["event"], eventId="u1", resourceStatus="UPDATE_IN_PROGRESS")
    head = dict(events[1]["event"], eventId="u2", logicalResourceId="HeadNode", resourceStatus="UPDATE_IN_PROGRESS")
    progress.feed([head, update_start])
    summary = progress.summary()
    assert (summary["operation"], summary["resources_complete"], summary["resources_in_progress"]) == ("UPDATE", 0, 1)


def test_config_normalisation_ignores_form_not_content():
    stored = {"Scheduling": {"SlurmQueues": [{"ComputeResources": [{"MaxCount": 2, "Efa": {"Enabled": True}}]}]}, "Tags": None}
    desired = {"Scheduling": {"SlurmQueues": [{"ComputeResources": [{"MaxCount": "2", "Efa": {"Enabled": "True"}}]}]}}
    assert normalise_config(stored) == normalise_config(desired)

    desired["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MaxCount"] = 4
    changes = config_differences(normalise_config(stored), normalise_config(desired))
    assert changes == ["Scheduling.SlurmQueues[0].ComputeResources[0].MaxCount: 2 -> 4"]


@pytest.mark.parametrize(
    "state, status, request_, reached",
    [
        ("stopped", "RUNNING", "STOP_REQUESTED", False),
        ("stopped", "STOPPING", None, False),
        ("stopped", "STOPPED", None, True),
        ("started", "STOPPED", "START_REQUESTED", False),
        ("started", "STARTING", None, False),
        ("started", "PROTECTED", "START_REQUESTED", False),
        ("stopped", "ENABLED", "DISABLED", False),
        ("started", "ENABLED", None, True),
    ],
)
def test_fleet_plan(state, status, request_, reached):
    plan = fleet_plan(state, status)
    assert (plan["request"], plan["reached"]) == (request_, reached)


# --------------------------------------------------------------------------- waiting


def test_wait_reports_at_least_every_minute_and_polls_sparingly():
    clock = FakeClock()
    reports = []
    polls = []

    def poll(want_progress):
        polls.append(want_progress)
        status = "CREATE_COMPLETE" if clock.now >= 1800 else "CREATE_IN_PROGRESS"
        return {"cluster": {"clusterStatus": status}, "progress": {} if want_progress else None}

    wait_until(poll, "stable", 3600, sleep=clock.sleep, clock=clock.monotonic, report=lambda s, e: reports.append(clock.now))

    gaps = [b - a for a, b in zip(reports, reports[1:])]
    assert max(gaps) <= 60 and reports[-1] >= 1800
    assert sum(polls) <= 1800 / 60 + 3  # stack events read about once a minute
    assert len(polls) <= 1800 / 30 + 10  # status polls settle at 30 s


def test_wait_timeout_keeps_the_last_snapshot():
    clock = FakeClock()

    with pytest.raises(WaitTimeout) as info:
        wait_until(lambda want: {"cluster": {"clusterStatus": "DELETE_IN_PROGRESS"}}, "deleted", 100, sleep=clock.sleep, clock=clock.monotonic)
    assert info.value.snapshot["cluster"]["clusterStatus"] == "DELETE_IN_PROGRESS"
    assert 100 <= clock.now <= 101


def test_first_failed_events_put_the_root_cause_first():
    events = [item["event"] for item in reversed(load("create_failed_timeline")["events"])]

    first = first_failed_events(events)

    assert [e["logicalResourceId"] for e in first] == ["HeadNodeWaitCondition202611282200", "CloudWatchDashboard"]


def test_failure_report_survives_missing_logs():
    api, fake = make_api()
    fake.add_timeline("c1", "create_failed_timeline", start=-2000)
    fake.clusters["c1"].log_streams = []

    report = api_mod.failure_report(api, "c1", api.describe_cluster("c1"))

    assert report["log_streams"] == [] and "no log streams found" in report["message"]
    assert report["failures"][0]["hint"].startswith("The head node did not finish its bootstrap")


def test_missing_pcluster_message_names_the_package_and_interpreter():
    message = api_mod.missing_pcluster_message()

    assert "aws-parallelcluster" in message and sys.executable in message and "pip install" in message


def test_bootstrap_timeout_gets_its_own_hint():
    api, fake = make_api()
    fake.add_timeline("c1", "create_failed_timeline", start=-2000)
    describe = api.describe_cluster("c1")
    describe["failures"] = [{"failureCode": "HeadNodeBootstrapFailure", "failureReason": "Cluster creation timed out."}]

    report = api_mod.failure_report(api, "c1", describe)

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

    report = api_mod.failure_report(api, "c1", api.describe_cluster("c1"))

    assert report["failures"] == []
    assert "HeadNode (AWS::EC2::Instance) UPDATE_FAILED: Instance type m5.4xlarge is not supported" in report["message"]
    assert "rolled the update back" in report["message"]
