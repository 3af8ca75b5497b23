"""What node states mean for the checks, and the wait for static nodes on their way to usable."""

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.slurm import node_states as ns


@pytest.mark.parametrize("state,static,ok", [
    ("IDLE", True, True), ("ALLOCATED", True, True), ("MIXED", True, True), ("mix", True, True),
    ("ALLOCATED+COMPLETING", True, True), ("IDLE+CLOUD", True, True),
    ("IDLE+DRAIN", True, False), ("DOWN", True, False), ("DOWN*", True, False), ("IDLE*", True, False),
    ("IDLE+CLOUD+POWERED_DOWN", True, False), ("idle~", True, False), ("idle#", True, False), ("drain", True, False),
    ("IDLE+CLOUD+POWERED_DOWN", False, True), ("idle~", False, True), ("idle#", False, True), ("idle%", False, True),
    ("IDLE", False, True), ("alloc#", False, True),
    # A dynamic node that is down, drained or failed fails even when it is also CLOUD and powered down.
    ("DOWN+CLOUD+POWERED_DOWN", False, False), ("down~", False, False), ("DOWN*+CLOUD", False, False),
    ("IDLE+DRAIN+CLOUD+POWERED_DOWN", False, False), ("IDLE+FAIL+CLOUD+POWERED_DOWN", False, False),
    ("drain~", False, False), ("FUTURE", False, False),
])
def test_judge_node_state(state, static, ok):
    assert ns.judge_node_state(state, static)[0] is ok


def test_judge_says_why():
    assert ns.judge_node_state("DOWN+CLOUD+POWERED_DOWN", False)[1] == "dynamic node is down (and cloud, powered down)"
    assert ns.judge_node_state("IDLE+DRAIN+CLOUD+POWERED_DOWN", False)[1] == "dynamic node is drain"
    assert ns.judge_node_state("IDLE+CLOUD+POWERING_UP", True)[1] == (
        "static node is still powering up: wait longer for it (verify_node_wait_timeout)")
    assert ns.judge_node_state("IDLE*", True)[1] == "static node must be idle, alloc or mix and responding"


@pytest.mark.parametrize("state,transitional", [
    ("idle#", True), ("IDLE+CLOUD+POWERING_UP", True), ("idle~", True), ("IDLE+CLOUD+POWERED_DOWN", True),
    ("IDLE+COMPLETING", True), ("comp", True), ("idle%", True), ("DOWN+CLOUD+POWERING_DOWN", True),
    ("IDLE+REBOOT_ISSUED", True), ("IDLE+POWER_UP", True),
    ("IDLE", False), ("ALLOCATED", False), ("DOWN", False), ("DOWN*", False), ("IDLE+DRAIN", False),
    ("IDLE+DRAIN+CLOUD+POWERED_DOWN", False), ("IDLE+FAIL+COMPLETING", False), ("IDLE*", False),
])
def test_static_node_transitional(state, transitional):
    assert ns.static_node_transitional(state) is transitional


def test_nodes_of_stopped_partitions_are_not_waited_for():
    nodes = {"a": {"State": "IDLE+CLOUD+POWERED_DOWN", "Partitions": "q1"},
             "b": {"State": "IDLE+CLOUD+POWERING_UP", "Partitions": "q2"},
             "c": {"State": "IDLE", "Partitions": "q2"}}
    partitions = {"q1": {"State": "INACTIVE"}, "q2": {"State": "UP"}}
    waiting, not_waited = ns.transitional_nodes(nodes, partitions, ["a", "b", "c", "missing"])
    assert waiting == {"b": "IDLE+CLOUD+POWERING_UP"}
    assert not_waited == {"a": "partition q1 is INACTIVE"}


def test_waiting_line_names_the_first_nodes():
    waiting = dict(("n%d" % i, "IDLE+CLOUD+POWERING_UP") for i in range(1, 8))
    assert ns.waiting_line(waiting, limit=2) == "n1 IDLE+CLOUD+POWERING_UP, n2 IDLE+CLOUD+POWERING_UP and 5 more"


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def looks(states_per_look):
    """look() answering one recorded `scontrol show node` state of node n1 per call (the last one repeats)."""
    answers = list(states_per_look)

    def look():
        state = answers.pop(0) if len(answers) > 1 else answers[0]
        return "", {"n1": {"State": state, "Partitions": "q"}, "n2": {"State": "IDLE", "Partitions": "q"}}, \
            {"q": {"State": "UP"}}
    return look


def test_wait_ends_when_the_nodes_are_up():
    fake = FakeClock()
    lines = []
    # After a compute fleet start: powered down, powering up, then up.
    look = looks(["IDLE+CLOUD+POWERED_DOWN", "IDLE+CLOUD+POWERING_UP", "IDLE+CLOUD+POWERING_UP", "IDLE+CLOUD"])
    result = ns.wait_for_static_nodes(look, ["n1", "n2"], 600, poll_interval=5, progress=lines.append,
                                      clock=fake.clock, sleep=fake.sleep)
    assert result["settled"] is True and result["timed_out"] is False and result["waiting"] == {}
    assert result["elapsed"] == 15.0 and fake.sleeps == [5, 5, 5]
    assert result["states"] == {"n1": "IDLE+CLOUD", "n2": "IDLE"}
    assert lines == ["waiting up to 10m00s for 1 static node(s) in a transitional state: n1 IDLE+CLOUD+POWERED_DOWN"]


def test_a_progress_line_each_minute_and_one_when_it_gives_up():
    fake = FakeClock()
    lines = []
    result = ns.wait_for_static_nodes(looks(["IDLE+CLOUD+POWERING_UP"]), ["n1"], 150, poll_interval=5,
                                      progress=lines.append, clock=fake.clock, sleep=fake.sleep)
    assert result["settled"] is False and result["timed_out"] is True
    assert result["waiting"] == {"n1": "IDLE+CLOUD+POWERING_UP"} and result["elapsed"] == 150.0
    # The collection's wait loop: a line at least every 55 s (the poll before one is due comes early enough).
    assert lines == [
        "waiting up to 2m30s for 1 static node(s) in a transitional state: n1 IDLE+CLOUD+POWERING_UP",
        "1 static node(s) still in a transitional state after 54s (of 2m30s): n1 IDLE+CLOUD+POWERING_UP",
        "1 static node(s) still in a transitional state after 1m48s (of 2m30s): n1 IDLE+CLOUD+POWERING_UP",
        "1 static node(s) still in a transitional state after 2m30s, judged as they are: n1 IDLE+CLOUD+POWERING_UP",
    ]
    assert max(fake.sleeps) == 5 and sum(fake.sleeps) == 150


def test_a_timeout_of_zero_only_looks():
    fake = FakeClock()
    lines = []
    result = ns.wait_for_static_nodes(looks(["IDLE+COMPLETING"]), ["n1"], 0, progress=lines.append,
                                      clock=fake.clock, sleep=fake.sleep)
    assert result["settled"] is False and result["timed_out"] is False and fake.sleeps == [] and lines == []


def test_wait_ends_when_slurm_does_not_answer():
    fake = FakeClock()
    result = ns.wait_for_static_nodes(lambda: ("scontrol show node failed (rc 1): down", {}, {}), ["n1"], 600,
                                      clock=fake.clock, sleep=fake.sleep)
    assert result["settled"] is True and result["error"].startswith("scontrol show node failed")
    assert fake.sleeps == []


@pytest.mark.parametrize("state,kind", [
    # A node with jobs is left alone: the roles restart Docker (its containers stop) and slurmd.
    ("idle", "target"), ("mix", "busy"), ("alloc", "busy"), ("comp", "busy"), ("drng", "busy"),
    ("idle~", "powered_down"), ("idle#", "powered_down"), ("alloc#", "powered_down"), ("idle%", "powered_down"),
    ("idle!", "powered_down"), ("down~", "powered_down"), ("pow_up", "powered_down"),
    ("down", "unavailable"), ("down*", "unavailable"), ("idle*", "unavailable"), ("drain", "unavailable"),
    ("fail", "unavailable"), ("idle@", "unavailable"), ("maint", "unavailable"), ("unk*", "unavailable"),
])
def test_sinfo_s_compact_states_are_classified_for_the_node_setup_job(state, kind):
    assert ns.node_setup_kind(state) == kind


@pytest.mark.parametrize("state,kind", [
    ("IDLE", "target"), ("IDLE+CLOUD+POWERED_DOWN", "powered_down"), ("MIXED+DRAIN", "busy"),
    ("IDLE+DRAIN", "unavailable"), ("IDLE*+CLOUD", "unavailable"), ("ALLOCATED+COMPLETING", "busy"),
    ("IDLE+MAINTENANCE", "unavailable"), ("idle-", "target"), ("pow_dn", "powered_down"),
])
def test_long_states_are_classified_as_their_compact_forms(state, kind):
    assert ns.node_setup_kind(state) == kind


def test_a_node_held_for_setup_is_a_target_and_another_maintenance_is_not():
    assert ns.node_setup_kind("maint", held=True) == "target"
    assert ns.node_setup_kind("maint", held=False) == "unavailable"
    assert ns.node_setup_kind("idle~", held=True) == "powered_down"
