# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting and progress: the poll loop of every wait, stack progress from events, the progress and timeout texts."""

from __future__ import annotations

import time

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError

CLUSTER_IN_PROGRESS = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS")
CLUSTER_FAILED = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED")
CLUSTER_COMPLETE = ("CREATE_COMPLETE", "UPDATE_COMPLETE")
STACK_OPERATION_START = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS")

# A progress line at least every 55 s: the action plugin reads the lines every few seconds, so the
# playbook output shows one at least once a minute.
REPORT_EVERY = 55.0
# Poll errors a wait accepts in a row (throttling, timeouts, pcluster's unexpected 500s) before it fails.
MAX_POLL_ERRORS = 3


class WaitTimeout(Exception):
    """A wait reached its timeout; ``snapshot`` is the last state seen."""

    def __init__(self, message, snapshot=None, elapsed=None):
        super().__init__(message)
        self.snapshot = snapshot or {}
        self.elapsed = elapsed


class StackProgress:
    """How far a CloudFormation operation has got, from the stack's events.

    Feed it pages of events (newest first, as pcluster returns them); it keeps the latest status of
    every resource since the current operation began (the stack's own ``*_IN_PROGRESS`` "User
    Initiated" event). ``stack_moved`` says whether the last feed held an event of the stack itself.
    """

    def __init__(self, resources_total=None):
        self.resources_total = resources_total
        self.resources = {}
        self.stack_status = None
        self.operation = None
        self.last_event_id = None
        self.latest = None
        self.stack_moved = False

    def feed(self, events):
        self.stack_moved = False
        for event in reversed(events or []):
            self._apply(event)
        if events:
            self.last_event_id = events[0].get("eventId") or self.last_event_id
        return self

    def _apply(self, event):
        logical_id = event.get("logicalResourceId")
        status = event.get("resourceStatus") or ""
        if event.get("resourceType") == "AWS::CloudFormation::Stack" and logical_id == event.get("stackName"):
            self.stack_status = status
            self.stack_moved = True
            reason = event.get("resourceStatusReason") or ""
            if status in STACK_OPERATION_START and (not reason or "user initiated" in reason.lower()):
                self.resources = {}
                self.operation = status.split("_", 1)[0]
            return
        self.resources[logical_id] = {"status": status, "type": event.get("resourceType"),
                                      "reason": event.get("resourceStatusReason"), "timestamp": event.get("timestamp")}
        self.latest = dict(self.resources[logical_id], logical_id=logical_id)

    def summary(self):
        statuses = [r["status"] for r in self.resources.values()]
        return {
            "operation": self.operation,
            "stack_status": self.stack_status,
            "resources_total": self.resources_total,
            "resources_seen": len(statuses),
            "resources_complete": sum(1 for s in statuses if s.endswith("_COMPLETE") and "ROLLBACK" not in s),
            "resources_in_progress": sum(1 for s in statuses if s.endswith("_IN_PROGRESS")),
            "resources_failed": sum(1 for s in statuses if s.endswith("_FAILED")),
            "latest_event": self.latest,
            "last_event_id": self.last_event_id,
        }


class StackPoller:
    """``poll(want_progress)`` for wait_until, for one thing ParallelCluster builds with a CloudFormation stack.

    A status poll describes it (``describe``). A progress poll (one per progress line) reads the stack's new
    events (``events``) in its place, and describes only when the events show the stack's own status moved,
    so progress costs about no more calls than waiting without it. Snapshots hold the description under KEY.
    """

    KEY = None

    def __init__(self, api, name, current=None):
        self.api = api
        self.name = name
        self.current = current
        self.described = False
        self.progress = None

    def describe(self):
        raise NotImplementedError

    def events(self, until_event_id):
        raise NotImplementedError

    def has_stack(self, current):  # pylint: disable=unused-argument
        """Whether the description has a stack whose events tell progress."""
        return True

    def __call__(self, want_progress):
        summary = None
        if want_progress and self.described and self.current is not None and self.has_stack(self.current):
            summary = self.stack_progress(self.current)
            if summary is None or self.progress.stack_moved:
                self.current = self.describe()
        else:
            self.current = self.describe()
            self.described = True
            if want_progress and self.current is not None and self.has_stack(self.current):
                summary = self.stack_progress(self.current)
        return {self.KEY: self.current, "progress": summary}

    def stack_progress(self, current):
        """The stack's progress summary, reading only the events since the last call; None if unreadable."""
        try:
            if self.progress is None:
                self.progress = StackProgress(self.api.stack_resources_total(current))
            events = self.events(self.progress.last_event_id)
            return self.progress.feed(events).summary()
        except PclusterApiError:
            return None


class ClusterPoller(StackPoller):
    """StackPoller of a cluster; with ``fleet`` it polls describe-compute-fleet only (fleet goals)."""

    KEY = "cluster"

    def __init__(self, api, cluster_name, fleet=False, cluster=None):
        super().__init__(api, cluster_name, cluster)
        self.cluster_name = cluster_name
        self.fleet = fleet

    @property
    def cluster(self):
        return self.current

    def describe(self):
        return self.api.describe_cluster(self.cluster_name)

    def events(self, until_event_id):
        return self.api.get_cluster_stack_events(self.cluster_name, until_event_id=until_event_id)

    def __call__(self, want_progress):
        if self.fleet:
            fleet = self.api.describe_compute_fleet(self.cluster_name)
            return {"cluster": self.current, "fleet": fleet, "progress": None}
        return dict(super().__call__(want_progress), fleet=None)


def poll_intervals(initial=5.0, factor=1.5, maximum=30.0):
    """5, 7.5, 11.25, ... then every 30 s: quick answers for quick operations, few calls for long ones."""
    interval = initial
    while True:
        yield interval
        interval = min(maximum, interval * factor)


def cluster_goal_reached(goal, snapshot):
    """True when a poll snapshot satisfies the goal ('stable', 'deleted', 'fleet:<STATUS>')."""
    cluster = snapshot.get("cluster")
    if goal == "deleted":
        return cluster is None or cluster.get("clusterStatus") == "DELETE_FAILED"
    if goal == "stable":
        return cluster is None or cluster.get("clusterStatus") not in CLUSTER_IN_PROGRESS
    if goal.startswith("fleet:"):
        status = (snapshot.get("fleet") or {}).get("status")
        return status in goal.split(":", 1)[1].split(",") or status == "PROTECTED"
    raise ValueError("unknown wait goal %r" % goal)


def snapshot_key(snapshot):
    cluster = snapshot.get("cluster") or {}
    return (cluster.get("clusterStatus"), cluster.get("cloudFormationStackStatus"), (snapshot.get("fleet") or {}).get("status"))


class _Wait:
    """The state of one wait_until call (see there)."""

    def __init__(self, poll, goal, timeout, sleep, clock, report, report_every, intervals, max_poll_errors,
                 reached=None, key=None):
        self.poll, self.goal, self.timeout = poll, goal, timeout
        self.reached, self.key = reached or cluster_goal_reached, key or snapshot_key
        self.sleep, self.clock, self.report, self.report_every = sleep, clock, report, report_every
        self.intervals = intervals or poll_intervals()
        self.max_poll_errors = max_poll_errors
        self.start = clock()
        self.due = None  # when the next report line must be out
        self.poll_cost = 0.0
        self.last_key = None
        self.snapshot = {"goal": goal}
        self.errors = []

    def once(self):
        """One poll (and report); True when the goal is reached."""
        poll_start = self.clock()
        want_progress = self.report is not None and (self.due is None or poll_start + self.poll_cost + 1.0 >= self.due)
        try:
            snapshot = self.poll(want_progress)
            self.errors = []
        except PclusterApiError as error:
            if not error.tolerable_while_waiting or len(self.errors) + 1 >= self.max_poll_errors:
                if self.errors:
                    error.message = "%s (%d polls in a row failed while waiting)" % (error.message, len(self.errors) + 1)
                raise
            self.errors.append(error.message)
            snapshot = dict(self.snapshot, poll_error="%s (poll error %d of %d tolerated)"
                            % (error.message, len(self.errors), self.max_poll_errors - 1))
        self.poll_cost = self.clock() - poll_start
        snapshot["goal"] = self.goal
        self.snapshot = {k: v for k, v in snapshot.items() if k != "poll_error"}
        done = not self.errors and self.reached(self.goal, snapshot)
        key = self.key(snapshot)
        if self.report is not None and (want_progress or key != self.last_key or done or self.errors):
            self.report(snapshot, self.clock() - self.start)
            if want_progress or self.due is None:
                self.due = self.clock() + self.report_every
        self.last_key = key
        return done

    def pause(self, interval):
        """Sleep until the next poll; raises WaitTimeout when the time is up."""
        now = self.clock()
        pause = interval
        if self.due is not None:
            pause = min(pause, max(0.0, self.due - now - self.poll_cost - 1.0))
        remaining = self.timeout - (now - self.start)
        if remaining <= 0:
            raise WaitTimeout("gave up waiting after %s" % format_duration(now - self.start), self.snapshot, now - self.start)
        self.sleep(min(pause, remaining))


def wait_until(poll, goal, timeout, sleep=time.sleep, clock=time.monotonic, report=None, report_every=REPORT_EVERY,
               intervals=None, max_poll_errors=MAX_POLL_ERRORS, reached=None, key=None):
    """Poll until ``goal`` is reached; the one wait loop of the collection's modules.

    ``poll(want_progress)`` returns a snapshot ``{"cluster": describe or None, "fleet":
    describe-compute-fleet or None, "progress": StackProgress summary or None}``. ``report(snapshot,
    elapsed)`` is called on the first poll, on every status change and at least every ``report_every``
    seconds: the poll before a report is due asks for progress and the sleep before it is shortened so
    that the line is on time. Up to ``max_poll_errors - 1`` poll errors in a row that
    ``tolerable_while_waiting`` allows are reported and waited out. Returns the final snapshot; raises
    WaitTimeout, or the PclusterApiError of a poll. ``reached(goal, snapshot)`` and ``key(snapshot)`` (what counts
    as a change worth a line) default to the cluster's (cluster_goal_reached, snapshot_key); images pass theirs.
    """
    wait = _Wait(poll, goal, timeout, sleep, clock, report, report_every, intervals, max_poll_errors, reached, key)
    for interval in wait.intervals:
        if wait.once():
            return wait.snapshot
        wait.pause(interval)
    raise AssertionError("poll intervals ran out")  # pragma: no cover - poll_intervals never ends


# --------------------------------------------------------------------------- texts


def format_duration(seconds):
    seconds = int(max(0, seconds))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return "%dh%02dm%02ds" % (hours, minutes, sec)
    if minutes:
        return "%dm%02ds" % (minutes, sec)
    return "%ds" % sec


def format_progress_counts(progress):
    """'37/52 resources complete, 3 in progress' from a StackProgress summary."""
    if not progress:
        return ""
    complete = progress.get("resources_complete") or 0
    total = progress.get("resources_total")
    parts = ["%d/%d resources complete" % (complete, total) if total else "%d resources complete" % complete]
    if progress.get("resources_in_progress"):
        parts.append("%d in progress" % progress["resources_in_progress"])
    if progress.get("resources_failed"):
        parts.append("%d failed" % progress["resources_failed"])
    latest = progress.get("latest_event")
    if latest:
        parts.append("latest: %s %s" % (latest.get("logical_id"), latest.get("status")))
    return ", ".join(parts)


def describe_state(snapshot):
    """'CREATE_IN_PROGRESS (stack CREATE_IN_PROGRESS)', 'compute fleet STOPPING' or 'cluster not found (deleted)'."""
    cluster = snapshot.get("cluster")
    if str(snapshot.get("goal") or "").startswith("fleet:"):
        return "compute fleet %s" % ((snapshot.get("fleet") or {}).get("status") or "UNKNOWN")
    if cluster is None:
        return "cluster not found (deleted)"
    return "%s (stack %s)" % (cluster.get("clusterStatus"), cluster.get("cloudFormationStackStatus"))


def format_progress_line(cluster_name, snapshot, elapsed, timeout, state=None, reached=None):
    """One progress line of a wait, as the playbook output shows it (``state`` and ``reached``: see wait_until)."""
    state, reached = state or describe_state, reached or cluster_goal_reached
    line = "[%s] %s - %s elapsed" % (cluster_name, state(snapshot), format_duration(elapsed))
    counts = format_progress_counts(snapshot.get("progress"))
    if counts:
        line += ", " + counts
    if snapshot.get("poll_error"):
        line += ", last poll failed: %s" % snapshot["poll_error"]
    elif snapshot.get("goal") and reached(snapshot["goal"], snapshot):
        line += ", done"
    elif timeout:
        line += ", gives up in %s" % format_duration(timeout - elapsed)
    return line


def timeout_message(cluster_name, goal, timeout, snapshot):
    """What a user reads when a wait gives up."""
    snapshot = dict(snapshot or {}, goal=goal)
    if goal.startswith("fleet:"):
        state = "the compute fleet is %s" % ((snapshot.get("fleet") or {}).get("status"))
    elif snapshot.get("cluster") is None:
        state = "it no longer exists"
    else:
        state = "it is %s" % describe_state(snapshot)
        counts = format_progress_counts(snapshot.get("progress"))
        if counts:
            state += ", " + counts
    wanted = {"stable": "a stable state", "deleted": "deletion"}.get(goal, goal.replace("fleet:", "compute fleet "))
    return ("Timed out after %d s waiting for cluster %s to reach %s: %s. The operation goes on in AWS; "
            "run the task again to keep waiting, or raise wait_timeout." % (timeout, cluster_name, wanted, state))
