"""pcluster_wait: the wait loop, progress from stack events at no extra calls, tolerated poll errors, texts."""

from __future__ import annotations

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.client import PclusterApi
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError, convert_error
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.wait import (
    ClusterPoller,
    StackProgress,
    WaitTimeout,
    format_progress_line,
    timeout_message,
    wait_until,
)
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import FakeClock, FakePcluster, load, recorded_error


def make_api(fake):
    api = PclusterApi(region="us-east-1", lib=fake, sleep=fake.clock.sleep, clock=fake.clock.monotonic)
    api.stack_resources_total = lambda cluster: 14
    return api


def test_stack_progress_follows_the_current_operation_only():
    progress = StackProgress(resources_total=14)
    events = load("create_success_timeline")["events"]
    progress.feed([item["event"] for item in reversed(events)])
    summary = progress.summary()
    assert (summary["operation"], summary["resources_complete"], summary["resources_in_progress"]) == ("CREATE", 14, 0)
    assert summary["stack_status"] == "CREATE_COMPLETE" and progress.stack_moved

    update_start = dict(events[0]["event"], eventId="u1", resourceStatus="UPDATE_IN_PROGRESS")
    head = dict(events[1]["event"], eventId="u2", logicalResourceId="HeadNode", resourceStatus="UPDATE_IN_PROGRESS")
    progress.feed([head, update_start])
    summary = progress.summary()
    assert (summary["operation"], summary["resources_complete"], summary["resources_in_progress"]) == ("UPDATE", 0, 1)
    progress.feed([dict(head, eventId="u3", resourceStatus="UPDATE_COMPLETE")])
    assert not progress.stack_moved


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
    assert max(gaps) <= 55 and reports[-1] >= 1800
    assert sum(polls) <= 1800 / 55 + 3  # stack events read about once a minute
    assert len(polls) <= 1800 / 30 + 35  # status polls settle at 30 s


def test_progress_polls_read_events_instead_of_describing():
    fake = FakePcluster()
    fake.add_timeline("c1", "create_success_timeline")
    api = make_api(fake)
    lines = []

    wait_until(ClusterPoller(api, "c1"), "stable", 3600, sleep=fake.clock.sleep, clock=fake.clock.monotonic,
               report=lambda snapshot, elapsed: lines.append(format_progress_line("c1", snapshot, elapsed, 3600)))

    describes, events = fake.count("describe_cluster"), fake.count("get_cluster_stack_events")
    # A progress poll reads the events in place of a describe: one call per poll, a poll every 25-30 s.
    assert describes + events <= 1800 / 25 + 5
    assert events >= 1800 / 55 - 2
    polls = {}
    for operation, at, _dryrun, _status in fake.call_times:
        polls.setdefault(at, []).append(operation)
    both = [at for at, operations in polls.items() if len(operations) > 1]
    assert both == [0.0, 1800.0] or both == [0.0]  # the first poll; the one whose events showed CREATE_COMPLETE
    assert any("/14 resources complete" in line for line in lines)
    assert lines[-1].startswith("[c1] CREATE_COMPLETE (stack CREATE_COMPLETE)") and lines[-1].endswith(", done")


def test_stack_event_of_the_stack_itself_triggers_a_describe():
    fake = FakePcluster()
    cluster, _data = fake.add_timeline("c1", "create_success_timeline", start=-1799.5)
    api = make_api(fake)
    poller = ClusterPoller(api, "c1")
    poller(False)  # describe: CREATE_IN_PROGRESS
    fake.clock.advance(60)

    snapshot = poller(True)  # events only, but the stack's own CREATE_COMPLETE is among them

    assert snapshot["cluster"]["clusterStatus"] == "CREATE_COMPLETE"
    assert fake.count("describe_cluster") == 2 and cluster


def test_wait_timeout_keeps_the_last_snapshot():
    clock = FakeClock()

    with pytest.raises(WaitTimeout) as info:
        wait_until(lambda want: {"cluster": {"clusterStatus": "DELETE_IN_PROGRESS"}}, "deleted", 100, sleep=clock.sleep, clock=clock.monotonic)
    assert info.value.snapshot["cluster"]["clusterStatus"] == "DELETE_IN_PROGRESS"
    assert 100 <= clock.now <= 101


def flaky_poll(clock, failures, error_fixture="unexpected_fatal"):
    """A poll that fails ``failures`` times in a row after its first answer, then reports CREATE_COMPLETE."""
    answers = iter([None] + [recorded_error(load(error_fixture))] * failures)

    def poll(_want_progress):
        answer = next(answers, "done")
        if isinstance(answer, Exception):
            raise convert_error(answer, "describe_cluster")
        return {"cluster": {"clusterStatus": "CREATE_COMPLETE" if answer == "done" else "CREATE_IN_PROGRESS"}}

    return poll


@pytest.mark.parametrize("fixture", ["unexpected_fatal", "connect_timeout", "throttled"])
def test_a_few_poll_errors_in_a_row_are_waited_out(fixture):
    clock = FakeClock()
    lines = []

    snapshot = wait_until(flaky_poll(clock, 2, fixture), "stable", 3600, sleep=clock.sleep, clock=clock.monotonic,
                          report=lambda s, e: lines.append(format_progress_line("c1", s, e, 3600)))

    assert snapshot["cluster"]["clusterStatus"] == "CREATE_COMPLETE"
    assert sum("last poll failed" in line for line in lines) == 2


def test_too_many_poll_errors_in_a_row_fail_the_wait():
    clock = FakeClock()

    with pytest.raises(PclusterApiError) as info:
        wait_until(flaky_poll(clock, 3), "stable", 3600, sleep=clock.sleep, clock=clock.monotonic)
    assert "3 polls in a row failed while waiting" in info.value.message


def test_a_poll_error_that_will_not_pass_fails_at_once():
    clock = FakeClock()

    with pytest.raises(PclusterApiError) as info:
        wait_until(flaky_poll(clock, 1, "describe_cluster_no_credentials"), "stable", 3600, sleep=clock.sleep, clock=clock.monotonic)
    assert "Unable to locate credentials" in info.value.message


def test_fleet_waits_read_only_the_fleet():
    fake = FakePcluster()
    fake.add_cluster("c1", load("describe_cluster_complete"))
    fake.update_compute_fleet("c1", "STOP_REQUESTED")
    api = make_api(fake)

    snapshot = wait_until(ClusterPoller(api, "c1", fleet=True), "fleet:STOPPED", 600, sleep=fake.clock.sleep, clock=fake.clock.monotonic)

    assert snapshot["fleet"]["status"] == "STOPPED"
    assert fake.count("describe_cluster") == 0 and fake.count("describe_compute_fleet") >= 2


def test_timeout_message_names_the_goal_and_the_state():
    snapshot = {"cluster": {"clusterStatus": "UPDATE_IN_PROGRESS", "cloudFormationStackStatus": "UPDATE_IN_PROGRESS"},
                "progress": {"resources_complete": 3, "resources_total": 14}}
    message = timeout_message("c1", "stable", 600, snapshot)

    assert message.startswith("Timed out after 600 s waiting for cluster c1 to reach a stable state: it is UPDATE_IN_PROGRESS")
    assert "3/14 resources complete" in message
    assert "the compute fleet is STOPPING" in timeout_message("c1", "fleet:STOPPED", 60, {"fleet": {"status": "STOPPING"}})
