"""hpc.pcluster.cluster run in-process against recorded pcluster response shapes on a fake clock."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster import client as pcluster_client
from ansible_collections.hpc.pcluster.plugins.modules import cluster as cluster_module
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster import fake_pcluster
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.cluster_cases import CONFIG, NAME, config_with, existing, operations, run
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import install, load, recorded_error, run_module, stored_endpoint


@pytest.fixture(name="fake")
def fake_fixture(monkeypatch):
    return install(monkeypatch)


# --------------------------------------------------------------------------- create


def test_create_waits_through_in_progress_until_complete(fake):
    result = run({"config": CONFIG})

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True
    assert result["status"] == "CREATE_COMPLETE"
    assert result["head_node"]["private_ip_address"] == "10.0.0.10"
    assert result["head_node"]["instance_id"] == "i-0a1b2c3d4e5f60718"
    assert result["compute_fleet_status"] == "RUNNING"
    assert result["actions"] == ["create cluster"]
    assert [m["type"] for m in result["validation_messages"]["WARNING"]] == ["KeyPairValidator"]
    assert result["waited"] >= 1800
    create = [kw for op, kw in fake.calls if op == "create_cluster"]
    assert len(create) == 1 and not create[0]["dryrun"]
    assert create[0]["cluster_configuration"] == CONFIG and create[0]["rollback_on_failure"] is True
    # Several CREATE_IN_PROGRESS answers were seen, but far fewer than 5-second polling would make.
    assert 5 < fake.count("describe_cluster") < 1800 / 5 / 4
    assert max(fake.clock.sleeps) <= 30


def test_create_failed_reports_failure_code_events_and_logs(fake):
    fake.create_scenario = "create_failed_timeline"

    result = run({"config": CONFIG})

    assert result["failed"] is True and result["changed"] is True
    message = result["msg"]
    assert message.startswith("The creation of cluster ml-training-cluster failed.")
    assert "is CREATE_FAILED (CloudFormation stack ROLLBACK_IN_PROGRESS) in us-east-1" in message
    assert "HeadNodeBootstrapFailure: Failed to set up the head node." in message
    assert "What to check:" in message and "cfn-init" in message
    failed_events = result["failure"]["failed_events"]
    # The root cause first; "Resource creation cancelled" follow-ons after it.
    assert failed_events[0]["logical_resource_id"] == "HeadNodeWaitCondition202611282200"
    assert "Failed to run chef recipe" in failed_events[0]["resource_status_reason"]
    assert failed_events[1]["resource_status_reason"] == "Resource creation cancelled"
    assert message.index("HeadNodeWaitCondition202611282200") < message.index("Resource creation cancelled")
    assert result["failure"]["log_group"] == "/aws/parallelcluster/ml-training-cluster-202611282200"
    assert result["failure"]["log_streams"][:3] == [
        "ip-10-0-0-10.i-0a1b2c3d4e5f60718.bootstrap_error_msg",
        "ip-10-0-0-10.i-0a1b2c3d4e5f60718.cfn-init",
        "ip-10-0-0-10.i-0a1b2c3d4e5f60718.chef-client",
    ]
    assert "pcluster get-cluster-log-events --cluster-name ml-training-cluster --region us-east-1" in message
    assert "rollback_on_failure: false" in message


def test_create_failed_on_entry_fails_with_the_report(fake, tmp_path):
    fake.add_timeline(NAME, "create_failed_timeline", start=-3000)

    result = run({"config": CONFIG})

    assert result["failed"] is True and result["changed"] is False
    assert "cannot be brought to the desired configuration" in result["msg"]
    assert "HeadNodeBootstrapFailure" in result["msg"] and "delete it (state: absent)" in result["msg"]
    assert operations(fake) == []


def test_wait_timeout_says_where_the_stack_got(fake):
    result = run({"config": CONFIG, "wait_timeout": 600})

    assert result["failed"] is True and result["changed"] is True
    assert result["msg"].startswith("Timed out after 600 s waiting for cluster ml-training-cluster to reach a stable state")
    assert "CREATE_IN_PROGRESS (stack CREATE_IN_PROGRESS)" in result["msg"]
    assert "/14 resources complete" in result["msg"]
    assert "run the task again to keep waiting" in result["msg"]
    assert 600 <= fake.clock.now < 640


def test_wait_false_starts_the_create_and_returns(fake):
    result = run({"config": CONFIG, "wait": False})

    assert result["changed"] is True and result["status"] == "CREATE_IN_PROGRESS"
    assert "pending" not in result
    assert fake.clock.sleeps == []


def test_check_mode_create_is_only_a_dryrun(fake):
    result = run({"config": CONFIG}, check_mode=True, diff=True)

    assert result["changed"] is True and result["exists"] is False
    assert result["actions"] == ["dryrun create", "create cluster"]
    assert [kw["dryrun"] for op, kw in fake.calls if op == "create_cluster"] == [True]
    assert fake.clusters == {}
    assert result["diff"]["before"] == "" and "distributed-ml" in result["diff"]["after"]


def test_check_mode_create_rejected_by_validation(fake):
    fake.create_dryrun = {
        "exception": "CreateClusterBadRequestException",
        "code": 400,
        "content": {
            "message": "Invalid cluster configuration.",
            "configurationValidationErrors": [
                {"level": "ERROR", "type": "SubnetsValidator", "id": "SubnetsValidator", "message": "The subnet ID 'subnet-0123456789abcdef0' does not exist"}
            ],
        },
    }

    result = run({"config": CONFIG}, check_mode=True)

    assert result["failed"] is True
    assert "would reject the creation" in result["msg"]
    assert "SubnetsValidator: The subnet ID 'subnet-0123456789abcdef0' does not exist" in result["msg"]
    assert result["validation_messages"]["ERROR"][0]["type"] == "SubnetsValidator"


def test_a_refused_dryrun_names_each_blocking_validator_once_and_how_to_skip_one(fake):
    # Recorded: the sandbox's config under a new name, nothing suppressed - two validators refuse, two warn.
    fake.create_dryrun = load("create_dryrun_invalid")

    result = run({"config": CONFIG}, check_mode=True)

    msg = result["msg"]
    assert result["failed"] is True and msg.startswith("ParallelCluster would reject the creation of %s" % NAME)
    for validator in ("HeadNodeLaunchTemplateValidator", "ComputeResourceLaunchTemplateValidator"):
        assert msg.count(validator + ":") == 1, msg
    assert msg.count("can be skipped") == 1 and "cluster_config_suppress_validators" in msg
    assert "type:HeadNodeLaunchTemplateValidator" in msg
    # The warnings are the module's warnings, once each, and not repeated in the failure.
    assert "DetailedMonitoringValidator" not in msg and "KeyPairValidator" not in msg
    assert [w.split(")")[0] for w in result["warnings"]] == [
        "ParallelCluster validation warning (DetailedMonitoringValidator",
        "ParallelCluster validation warning (KeyPairValidator"]


def test_config_file_is_read(fake, tmp_path):
    path = tmp_path / "cluster-config.yaml"
    path.write_text(json.dumps(CONFIG))

    result = run({"config_file": str(path)}, check_mode=True)

    assert result["changed"] is True
    assert [kw["cluster_configuration"] for op, kw in fake.calls if op == "create_cluster"] == [CONFIG]


def test_missing_config_file_is_one_clear_error(fake, tmp_path):
    result = run({"config_file": str(tmp_path / "nope.yaml")})

    assert result["failed"] is True
    assert "Cannot read config_file %s" % (tmp_path / "nope.yaml") in result["msg"]


# --------------------------------------------------------------------------- update


def test_same_stored_config_is_no_change(fake, tmp_path):
    stored = config_with()
    stored["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MaxCount"] = "2"  # "2" and 2 compare equal
    existing(fake, stored)

    result = run({"config": CONFIG}, diff=True)

    assert result["changed"] is False and result["status"] == "CREATE_COMPLETE"
    assert result["msg"] == "cluster ml-training-cluster already has the desired configuration"
    assert operations(fake) == [] and "diff" not in result


def test_drift_updates_after_a_dryrun(fake, tmp_path):
    existing(fake, CONFIG)
    fake.update_dryruns = [load("update_dryrun_success")]

    result = run({"config": config_with(max_count=3)})

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True and result["status"] == "UPDATE_COMPLETE"
    assert operations(fake) == [("update_cluster", True), ("update_cluster", None)]
    assert result["actions"] == ["dryrun update", "update cluster"]
    assert result["change_set"] == [
        {"parameter": "Scheduling.SlurmQueues[compute-gpu].ComputeResources[distributed-ml].MaxCount", "requestedValue": "3", "currentValue": "2"}
    ]
    assert result["config_changes"] == ["Scheduling.SlurmQueues[0].ComputeResources[0].MaxCount: 2 -> 3"]


def test_failed_update_fails_with_the_report(fake, tmp_path):
    existing(fake, CONFIG)
    fake.update_dryruns = [load("update_dryrun_success")]
    fake.update_fails = True

    result = run({"config": config_with(max_count=3)})

    assert result["failed"] is True and result["changed"] is True
    assert result["msg"].startswith("The update of cluster ml-training-cluster failed.")
    assert "is UPDATE_FAILED (CloudFormation stack UPDATE_ROLLBACK_COMPLETE)" in result["msg"]
    assert "rolled the update back" in result["msg"]


def test_drift_in_check_mode_returns_change_set_and_diff(fake, tmp_path):
    existing(fake, CONFIG)
    fake.update_dryruns = [load("update_dryrun_success")]

    result = run({"config": config_with(max_count=3)}, check_mode=True, diff=True)

    assert result["changed"] is True
    assert operations(fake) == [("update_cluster", True)]
    assert result["change_set"][0]["requestedValue"] == "3"
    assert "MaxCount: 2" in result["diff"]["before"] and "MaxCount: 3" in result["diff"]["after"]


def test_unreadable_stored_config_falls_back_to_the_dryrun(fake, tmp_path):
    fake.add_cluster(NAME, load("describe_cluster_complete"), stored_config_url=stored_endpoint() + "/gone.yaml")
    fake.update_dryruns = [load("update_dryrun_no_change")]

    result = run({"config": CONFIG})

    assert result["changed"] is False and operations(fake) == [("update_cluster", True)]
    assert result["stored_config_error"].startswith("could not download the stored config")


def test_difference_pcluster_does_not_apply_is_no_change(fake, tmp_path):
    existing(fake, CONFIG)
    fake.update_dryruns = [load("update_dryrun_no_change")]
    desired = copy.deepcopy(CONFIG)
    desired["HeadNode"]["Imds"] = {"Secured": True}

    result = run({"config": desired}, diff=True)

    assert result["changed"] is False
    assert result["msg"] == "ParallelCluster finds no change to apply to ml-training-cluster"
    assert operations(fake) == [("update_cluster", True)] and "diff" not in result


def test_update_needing_stopped_fleet_fails_and_says_so(fake, tmp_path):
    existing(fake, CONFIG)
    fake.update_dryruns = [load("update_dryrun_needs_fleet_stop")]

    result = run({"config": config_with(max_count=3, instance_type="g5.12xlarge")})

    assert result["failed"] is True and result["changed"] is False
    assert "needs the compute fleet stopped (All compute nodes must be stopped)" in result["msg"]
    assert "InstanceType: All compute nodes must be stopped" in result["msg"]
    # The one way it names is the guarded one: the jobs are counted before the fleet stops.
    assert "Set stop_fleet_for_update: true and pass the count of unfinished Slurm jobs as unfinished_jobs" in result["msg"]
    assert "compute_fleet state=stopped" not in result["msg"]
    assert operations(fake) == [("update_cluster", True)]
    assert fake.count("update_compute_fleet") == 0
    assert result["update_errors"][0]["parameter"].endswith("InstanceType")


def test_a_validation_warning_is_given_once_however_many_dryruns_repeat_it(fake, tmp_path):
    existing(fake, CONFIG)
    warning = {"level": "WARNING", "type": "KeyPairValidator", "message": "If you do not specify a key pair, ..."}
    dryruns = [load("update_dryrun_needs_fleet_stop"), load("update_dryrun_success")]
    for dryrun in dryruns:
        dryrun["content"]["configurationValidationErrors"] = [dict(warning)]
    fake.update_dryruns = dryruns

    result = run({"config": config_with(instance_type="g5.12xlarge"), "stop_fleet_for_update": True, "unfinished_jobs": 0})

    assert not result.get("failed"), result["msg"]
    assert result["actions"].count("dryrun update") == 2
    assert result["warnings"] == ["ParallelCluster validation warning (KeyPairValidator): If you do not specify a key "
                                  "pair, ..."]


def test_update_with_stop_fleet_for_update_stops_updates_and_starts(fake, tmp_path):
    existing(fake, CONFIG)
    fake.update_dryruns = [load("update_dryrun_needs_fleet_stop"), load("update_dryrun_success")]

    result = run({"config": config_with(instance_type="g5.12xlarge"), "stop_fleet_for_update": True, "unfinished_jobs": 0})

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True and result["fleet_stopped_for_update"] is True
    assert result["actions"] == ["dryrun update", "stop compute fleet", "dryrun update", "update cluster", "start compute fleet"]
    fleet_requests = [(status, now) for op, now, _d, status in fake.call_times if op == "update_compute_fleet"]
    update_at = [now for op, now, dryrun, _s in fake.call_times if op == "update_cluster" and not dryrun][0]
    assert [status for status, _at in fleet_requests] == ["STOP_REQUESTED", "START_REQUESTED"]
    # The update ran only once the fleet was STOPPED, and the fleet started after the update completed.
    assert fleet_requests[0][1] + fake.fleet_seconds[1] <= update_at
    assert fleet_requests[1][1] >= update_at + fake.update_seconds
    assert result["compute_fleet_status"] == "RUNNING"


def test_update_with_stop_fleet_in_check_mode_touches_nothing(fake, tmp_path):
    existing(fake, CONFIG)
    fake.update_dryruns = [load("update_dryrun_needs_fleet_stop")]

    result = run({"config": config_with(instance_type="g5.12xlarge"), "stop_fleet_for_update": True}, check_mode=True)

    assert result["changed"] is True
    assert result["actions"] == ["dryrun update", "stop compute fleet", "update cluster", "start compute fleet"]
    assert fake.count("update_compute_fleet") == 0 and operations(fake) == [("update_cluster", True)]


def test_in_progress_on_entry_is_waited_for_then_compared(fake, tmp_path):
    fake.add_timeline(NAME, "create_success_timeline", start=-1000, stored_config_url=fake_pcluster.stored_config_url(config=CONFIG))

    result = run({"config": CONFIG})

    assert result["changed"] is False and result["status"] == "CREATE_COMPLETE"
    assert result["actions"] == ["wait for CREATE_IN_PROGRESS"]
    assert operations(fake) == []
    assert 800 <= fake.clock.now <= 830


def test_in_progress_in_check_mode_does_not_wait(fake, tmp_path):
    fake.add_timeline(NAME, "create_success_timeline", start=-1000)

    result = run({"config": CONFIG}, check_mode=True)

    assert result["changed"] is False and result["status"] == "CREATE_IN_PROGRESS"
    assert fake.clock.sleeps == []
    assert any("check mode does not wait" in w for w in result["warnings"])


# --------------------------------------------------------------------------- delete


def test_absent_deletes_and_waits_until_gone(fake, tmp_path):
    existing(fake, CONFIG)

    result = run({"state": "absent"}, diff=True)

    assert result["changed"] is True and result["exists"] is False and result["status"] is None
    assert operations(fake) == [("delete_cluster", None)]
    assert fake.clock.now >= fake.delete_seconds
    assert "distributed-ml" in result["diff"]["before"] and result["diff"]["after"] == ""


def test_absent_and_missing_is_no_change(fake):
    result = run({"state": "absent"})

    assert result["changed"] is False and result["exists"] is False
    assert operations(fake) == []


def test_absent_in_check_mode_deletes_nothing(fake, tmp_path):
    existing(fake, CONFIG)

    result = run({"state": "absent"}, check_mode=True)

    assert result["changed"] is True and result["exists"] is True
    assert operations(fake) == []


# --------------------------------------------------------------------------- errors


def test_throttling_is_retried_with_backoff(fake, tmp_path):
    existing(fake, CONFIG)
    fake.raise_before["describe_cluster"] = [recorded_error(load("throttled")), recorded_error(load("throttled_internal"))]

    result = run({"config": CONFIG})

    assert not result.get("failed"), result["msg"]
    assert fake.count("describe_cluster") == 3
    assert fake.clock.sleeps == [1.0, 2.0]


def test_throttling_gives_up_after_the_last_attempt(fake, tmp_path):
    existing(fake, CONFIG)
    fake.raise_before["describe_cluster"] = [recorded_error(load("throttled")) for _attempt in range(10)]

    result = run({"config": CONFIG})

    assert result["failed"] is True and "Rate exceeded" in result["msg"]
    assert fake.count("describe_cluster") == pcluster_client.RetryPolicy().max_attempts
    assert result["error"]["code"] == 429


def test_validation_errors_are_not_retried(fake, tmp_path):
    fake.raise_before["describe_cluster"] = [recorded_error(load("describe_cluster_bad_name"))]

    result = run({"config": CONFIG})

    assert result["failed"] is True and fake.count("describe_cluster") == 1
    assert "does not match" in result["msg"]


@pytest.mark.parametrize(
    "fixture, expected",
    [
        ("describe_cluster_no_credentials", "No AWS credentials found"),
        ("describe_cluster_bad_region", "AWS region 'us-east-1' is unknown or not supported by ParallelCluster"),
    ],
)
def test_credentials_and_region_errors_read_clearly(fake, fixture, expected):
    fake.raise_before["describe_cluster"] = [recorded_error(load(fixture))]

    result = run({"config": CONFIG})

    assert result["failed"] is True and expected in result["msg"]
    assert fake.count("describe_cluster") == 1


def test_missing_region_is_one_clear_message(fake):
    result = run_module(cluster_module, {"name": NAME, "config": CONFIG})  # no region option, no AWS_REGION

    assert result["failed"] is True and "No AWS region" in result["msg"]


def test_missing_pcluster_is_one_clear_message(fake, monkeypatch):
    monkeypatch.setattr(pcluster_client, "HAS_PCLUSTER", False)

    result = run({"config": CONFIG})

    assert result["failed"] is True
    assert "aws-parallelcluster" in result["msg"] and "pip install" in result["msg"]


def test_config_and_config_file_are_exclusive(fake, tmp_path):
    result = run({"config": CONFIG, "config_file": str(tmp_path / "x.yaml")})

    assert result["failed"] is True and "mutually exclusive" in result["msg"]
