# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Calls into ParallelCluster's Python API (``pcluster.lib``) for the collection.

What lives here:

* a lazy, once-only import of ``pcluster.lib`` (importing it takes about a second)
  with one clear message when aws-parallelcluster is not installed;
* ``PclusterApiError``: every error pcluster can raise, normalised to a code, a
  message, validation messages, the update change set and the raw content;
* retries with jittered exponential backoff for throttling and transient errors
  only (validation errors, "not found" and conflicts are never retried);
* ``PclusterApi``: one object per module run with the calls the modules need,
  paginated listings drained, dryruns turned into results (pcluster reports a
  successful dryrun as the HTTP 412 ``DryrunOperationException``);
* helpers shared by the modules and the ``cluster`` action plugin: cluster
  status classification, stack progress from stack events, failure reports with
  a hint per failure code, and the comparison of stored vs desired configs.

Every pcluster response is the CLI's camelCase dictionary.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import random
import time

from ansible_collections.hpc.pcluster.plugins.module_utils.aws import boto3_client

PCLUSTER_PACKAGE = "aws-parallelcluster"
PCLUSTER_MISSING_MESSAGE = (
    "The Python package aws-parallelcluster (which provides pcluster.lib) is not installed for the "
    "Python interpreter that runs this module ({python}). Install it there with "
    "'{python} -m pip install \"aws-parallelcluster>=3.11\"' (ParallelCluster also needs Node.js "
    "for create and update), or point ansible_python_interpreter at a Python that has it."
)

# True when the pcluster package can be found; the import itself happens lazily.
try:
    HAS_PCLUSTER = importlib.util.find_spec("pcluster") is not None
except (ImportError, ValueError):  # pragma: no cover - broken installs
    HAS_PCLUSTER = False

_PCLUSTER_LIB = None
_PCLUSTER_IMPORT_ERROR = None

VALIDATION_LEVELS = ("ERROR", "WARNING", "INFO")

CLUSTER_IN_PROGRESS = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS")
CLUSTER_FAILED = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED")
CLUSTER_COMPLETE = ("CREATE_COMPLETE", "UPDATE_COMPLETE")

# Substrings of error messages (and AWS error codes) that mark a retryable failure.
TRANSIENT_MARKERS = (
    "throttl",
    "rate exceeded",
    "requestlimitexceeded",
    "toomanyrequests",
    "too many requests",
    "slowdown",
    "slow down",
    "serviceunavailable",
    "service unavailable",
    "internalerror",
    "internalfailure",
    "requesttimeout",
    "request timeout",
    "read timeout",
    "connection reset",
    "connection was closed",
    "please retry",
)
# Messages that look transient but are not: retrying them only delays the real answer.
PERMANENT_MARKERS = (
    "unable to locate credentials",
    "could not connect to the endpoint url",
    "invalid or unsupported region",
    "could not be found",
    "security token included in the request is invalid",
    "signaturedoesnotmatch",
    "accessdenied",
    "access denied",
    "not authorized",
)


class PclusterMissingError(Exception):
    """aws-parallelcluster is not importable by the Python that runs the module."""


class PclusterApiError(Exception):
    """One error of a pcluster.lib call, whatever pcluster raised.

    ``code`` is the HTTP-style status pcluster uses (400, 404, 409, 412, 429,
    500) or None for parameter errors; ``error_type`` the pcluster exception
    class name; ``validation_messages`` the config validation messages
    (``[{id, type, level, message}]``); ``update_errors`` and ``change_set`` come
    with rejected updates; ``content`` is the whole camelCase response.
    """

    def __init__(
        self,
        message,
        code=None,
        error_type=None,
        operation=None,
        validation_messages=None,
        change_set=None,
        update_errors=None,
        content=None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_type = error_type
        self.operation = operation
        self.validation_messages = validation_messages or []
        self.change_set = change_set or []
        self.update_errors = update_errors or []
        self.content = content if content is not None else {"message": message}

    @property
    def not_found(self):
        return self.code == 404

    @property
    def is_dryrun_success(self):
        return self.code == 412

    @property
    def is_no_change(self):
        return self.code == 400 and "no changes found" in (self.message or "").lower()

    @property
    def needs_fleet_stopped(self):
        texts = [self.message or ""] + [str(e.get("message") or "") for e in self.update_errors]
        return any("compute nodes must be stopped" in t.lower() for t in texts)

    @property
    def transient(self):
        text = (self.message or "").lower()
        if any(marker in text for marker in PERMANENT_MARKERS):
            return False
        if self.code == 429:
            return True
        if self.code in (None, 500, 502, 503, 504):
            return any(marker in text for marker in TRANSIENT_MARKERS)
        return False

    def describe(self):
        """A one-paragraph, human-readable description including the validation problems."""
        lines = [self.message] if not (self.update_errors and self.message == "Update failure") else []
        for msg in self.validation_messages:
            if msg.get("level") in ("ERROR", None) or self.code == 400:
                lines.append("  - [%s] %s: %s" % (msg.get("level"), msg.get("type") or msg.get("id"), msg.get("message")))
        for err in self.update_errors:
            lines.append(
                "  - %s: %s (current %s, requested %s)"
                % (err.get("parameter"), err.get("message"), err.get("currentValue"), err.get("requestedValue"))
            )
        return "\n".join(lines)

    def to_result(self):
        """The error as return values for fail_json."""
        result = {
            "error": {
                "code": self.code,
                "type": self.error_type,
                "operation": self.operation,
                "message": self.message,
            },
        }
        if self.validation_messages:
            result["validation_messages"] = group_validation_messages(self.validation_messages)
        if self.change_set:
            result["change_set"] = self.change_set
        if self.update_errors:
            result["update_errors"] = self.update_errors
        return result


# --------------------------------------------------------------------------- import


def pcluster_lib():
    """Import ``pcluster.lib`` once and return it; raise PclusterMissingError when absent."""
    global _PCLUSTER_LIB, _PCLUSTER_IMPORT_ERROR  # pylint: disable=global-statement
    if _PCLUSTER_LIB is not None:
        return _PCLUSTER_LIB
    if _PCLUSTER_IMPORT_ERROR is None:
        try:
            with _quiet():
                import pcluster.lib as pc  # pylint: disable=import-outside-toplevel
            _PCLUSTER_LIB = pc
            _silence_pcluster_logging()
            return pc
        except ImportError as exc:
            _PCLUSTER_IMPORT_ERROR = exc
    raise PclusterMissingError(missing_pcluster_message(_PCLUSTER_IMPORT_ERROR))


def missing_pcluster_message(error=None):
    import sys  # pylint: disable=import-outside-toplevel

    message = PCLUSTER_MISSING_MESSAGE.format(python=sys.executable or "python3")
    if error is not None and HAS_PCLUSTER:
        message += " (import error: %s)" % error
    return message


class _LogCollector(logging.Handler):
    """Keeps pcluster's log records (it logs to stderr otherwise) for error reports."""

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.records = []

    def emit(self, record):
        try:
            self.records.append(record.getMessage())
            del self.records[:-50]
        except Exception:  # pylint: disable=broad-except
            pass


PCLUSTER_LOG = _LogCollector()


def _silence_pcluster_logging():
    logger = logging.getLogger("pcluster")
    if PCLUSTER_LOG not in logger.handlers:
        logger.addHandler(PCLUSTER_LOG)
    logger.propagate = False


@contextlib.contextmanager
def _quiet():
    """Keep pcluster's prints off stdout, which carries the module's JSON result."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer


# --------------------------------------------------------------------------- errors


def _encode(content):
    """pcluster response models (or plain data) as the CLI's camelCase JSON data."""
    if content is None:
        return {}
    if isinstance(content, (dict, list, str, int, float, bool)):
        return content
    try:
        import json  # pylint: disable=import-outside-toplevel

        from pcluster.api import encoder  # pylint: disable=import-outside-toplevel

        return json.loads(encoder.JSONEncoder().encode(content))
    except Exception:  # pylint: disable=broad-except
        to_dict = getattr(content, "to_dict", None)
        return to_dict() if callable(to_dict) else {"message": str(content)}


def convert_error(exc, operation=None):
    """Turn anything a pcluster.lib call raised into a PclusterApiError."""
    if isinstance(exc, PclusterApiError):
        return exc
    content = getattr(exc, "content", None)
    code = getattr(exc, "code", None)
    if content is None and hasattr(exc, "data"):
        # pcluster.cli.exceptions.ParameterException / APIOperationException
        content = exc.data
    content = _encode(content)
    if not isinstance(content, dict):
        content = {"message": str(content)}
    error_type = type(exc).__name__
    message = content.get("message") or str(exc) or error_type
    if type(exc).__name__ == "ParameterException":
        code = 400
    elif code is None and _is_botocore_error(exc):
        message, code = _botocore_message(exc)
    if not isinstance(code, int):
        code = None
    validation = content.get("validationMessages") or content.get("configurationValidationErrors") or []
    return PclusterApiError(
        message=message,
        code=code,
        error_type=error_type,
        operation=operation,
        validation_messages=validation,
        change_set=content.get("changeSet") or [],
        update_errors=content.get("updateValidationErrors") or [],
        content=content,
    )


def _is_botocore_error(exc):
    return type(exc).__module__.startswith(("botocore", "boto3"))


def _botocore_message(exc):
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    error_code = error.get("Code")
    message = "%s: %s" % (error_code, error.get("Message")) if error_code else str(exc)
    if error_code and any(m in error_code.lower() for m in ("throttl", "requestlimitexceeded", "toomanyrequests")):
        status = 429
    return message, status if isinstance(status, int) else None


def group_validation_messages(messages):
    """{ERROR: [...], WARNING: [...], INFO: [...]} from pcluster's validationMessages list."""
    grouped = {level: [] for level in VALIDATION_LEVELS}
    for msg in messages or []:
        level = str(msg.get("level") or "INFO").upper()
        grouped.setdefault(level, []).append(msg)
    return grouped


# --------------------------------------------------------------------------- retries


class RetryPolicy:
    """Exponential backoff with full jitter for transient errors.

    delay(attempt) is uniform in [base/2, min(cap, base * 2**attempt)], so
    concurrent playbook runs hitting the same throttle spread out.
    """

    def __init__(self, max_attempts=6, base_delay=1.0, max_delay=20.0, rng=None):
        self.max_attempts = max(1, int(max_attempts))
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.rng = rng or random.Random()

    def delay(self, attempt):
        ceiling = min(self.max_delay, self.base_delay * (2 ** attempt))
        return self.rng.uniform(min(self.base_delay / 2.0, ceiling), ceiling)


# --------------------------------------------------------------------------- API


class PclusterApi:
    """The pcluster.lib calls of one module run.

    ``region`` is passed to every call. ``sleep``/``clock`` are injectable so
    tests and benchmarks can run waits on a fake clock; ``calls`` counts every
    pcluster.lib call made (retries included), per operation.
    """

    def __init__(self, region=None, retry=None, sleep=None, clock=None, lib=None, aws_settings=None):
        self.region = region
        self.aws_settings = aws_settings or {"region": region}
        self.retry = retry or RetryPolicy()
        self.sleep = sleep or time.sleep
        self.clock = clock or time.monotonic
        self._lib = lib
        self.calls = {}
        self.retries = []

    @property
    def lib(self):
        if self._lib is None:
            self._lib = pcluster_lib()
        return self._lib

    @property
    def total_calls(self):
        return sum(self.calls.values())

    def call(self, operation, retry=True, **kwargs):
        """Call ``pcluster.lib.<operation>(**kwargs)``; normalise errors; retry transient ones."""
        func = getattr(self.lib, operation)
        if self.region and "region" not in kwargs:
            kwargs["region"] = self.region
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        attempt = 0
        while True:
            self.calls[operation] = self.calls.get(operation, 0) + 1
            try:
                with _quiet():
                    return func(**kwargs)
            except SystemExit as exc:
                # pcluster's CLI helpers call sys.exit() for some bad parameters (missing files).
                raise PclusterApiError(
                    "pcluster %s stopped: %s" % (operation, exc.code), code=400, error_type="SystemExit", operation=operation
                ) from None
            except Exception as exc:  # pylint: disable=broad-except
                error = convert_error(exc, operation)
                if error.is_dryrun_success or not retry or not error.transient or attempt + 1 >= self.retry.max_attempts:
                    raise error from None
                delay = self.retry.delay(attempt)
                self.retries.append({"operation": operation, "attempt": attempt + 1, "delay": delay, "error": error.message})
                self.sleep(delay)
                attempt += 1

    # ----- dryruns

    def dryrun_create(self, cluster_name, config, suppress_validators=None, validation_failure_level=None):
        """Validate a create without creating anything; see module-level ``dryrun_create``."""
        return self._dryrun("create_cluster", "CreateClusterBadRequestException", cluster_name, config,
                            suppress_validators, validation_failure_level)

    def dryrun_update(self, cluster_name, config, suppress_validators=None, validation_failure_level=None, force_update=None):
        """Validate an update: returns {success, message, change_set, validation_messages, update_errors, no_change}."""
        return self._dryrun("update_cluster", "UpdateClusterBadRequestException", cluster_name, config,
                            suppress_validators, validation_failure_level, force_update=force_update)

    def _dryrun(self, operation, bad_request_type, cluster_name, config, suppress_validators, validation_failure_level, **extra):
        """A create/update dryrun. pcluster ends a successful one with DryrunOperationException (412),
        a rejected one with <bad_request_type>; an update with nothing to change says "No changes found"."""
        try:
            self.call(operation, dryrun=True, **_config_call_args(cluster_name, config, suppress_validators, validation_failure_level), **extra)
        except PclusterApiError as error:
            if error.is_dryrun_success:
                return _dryrun_result(True, error)
            if operation == "update_cluster" and error.is_no_change:
                result = _dryrun_result(True, error)
                result["no_change"] = True
                return result
            if error.error_type == bad_request_type:
                return _dryrun_result(False, error)
            raise
        raise PclusterApiError(
            "pcluster %s with dryrun=True returned without the expected DryrunOperationException" % operation,
            operation=operation,
        )

    # ----- reads

    def describe_cluster(self, cluster_name):
        """describe-cluster data, or None when the cluster does not exist."""
        try:
            return self.call("describe_cluster", cluster_name=cluster_name)
        except PclusterApiError as error:
            if error.not_found:
                return None
            raise

    def list_clusters(self, cluster_status=None):
        """Every cluster of the region (all pages)."""
        return self._drain("list_clusters", "clusters", cluster_status=cluster_status)

    def describe_cluster_instances(self, cluster_name, node_type=None, queue_name=None):
        """Every instance of a cluster (all pages)."""
        return self._drain(
            "describe_cluster_instances", "instances", cluster_name=cluster_name, node_type=node_type, queue_name=queue_name
        )

    def describe_compute_fleet(self, cluster_name):
        return self.call("describe_compute_fleet", cluster_name=cluster_name)

    def get_cluster_stack_events(self, cluster_name, until_event_id=None, max_pages=20):
        """Stack events newest first; stops paging at ``until_event_id`` (exclusive)."""
        events = []
        token = None
        for _page in range(max_pages):
            response = self.call("get_cluster_stack_events", cluster_name=cluster_name, next_token=token)
            for event in response.get("events") or []:
                if until_event_id and event.get("eventId") == until_event_id:
                    return events
                events.append(event)
            token = response.get("nextToken")
            if not token:
                break
        return events

    def list_cluster_log_streams(self, cluster_name, max_pages=5):
        try:
            return self._drain("list_cluster_log_streams", "logStreams", max_pages=max_pages, cluster_name=cluster_name)
        except PclusterApiError as error:
            if error.code in (400, 404):
                return []
            raise

    def _drain(self, operation, key, max_pages=1000, **kwargs):
        items = []
        token = None
        for _page in range(max_pages):
            response = self.call(operation, next_token=token, **kwargs)
            items.extend(response.get(key) or [])
            token = response.get("nextToken")
            if not token:
                break
        return items

    def stack_resources_total(self, cluster, aws_settings=None):
        """How many resources the cluster's CloudFormation template declares (None if unknown)."""
        stack = (cluster or {}).get("cloudformationStackArn") or (cluster or {}).get("clusterName")
        if not stack:
            return None
        self.calls["cloudformation.get_template"] = self.calls.get("cloudformation.get_template", 0) + 1
        try:
            client = boto3_client("cloudformation", aws_settings or self.aws_settings)
            body = client.get_template(StackName=stack).get("TemplateBody")
            if isinstance(body, str):
                import yaml  # pylint: disable=import-outside-toplevel

                body = yaml.safe_load(body)
            return len((body or {}).get("Resources") or {}) or None
        except Exception:  # pylint: disable=broad-except
            return None

    # ----- writes

    def create_cluster(self, cluster_name, config, suppress_validators=None, validation_failure_level=None, rollback_on_failure=None):
        return self.call("create_cluster", rollback_on_failure=rollback_on_failure,
                         **_config_call_args(cluster_name, config, suppress_validators, validation_failure_level))

    def update_cluster(self, cluster_name, config, suppress_validators=None, validation_failure_level=None, force_update=None):
        return self.call("update_cluster", force_update=force_update,
                         **_config_call_args(cluster_name, config, suppress_validators, validation_failure_level))

    def delete_cluster(self, cluster_name):
        return self.call("delete_cluster", cluster_name=cluster_name)

    def update_compute_fleet(self, cluster_name, status):
        return self.call("update_compute_fleet", cluster_name=cluster_name, status=status)


def _config_call_args(cluster_name, config, suppress_validators, validation_failure_level):
    """The arguments pcluster.lib's create_cluster and update_cluster (dryrun or not) share."""
    return dict(
        cluster_name=cluster_name,
        cluster_configuration=_config_argument(config),
        suppress_validators=list(suppress_validators) if suppress_validators else None,
        validation_failure_level=validation_failure_level,
    )


def _config_argument(config):
    """pcluster takes a dict (it dumps it to YAML) or a path to a YAML file."""
    if isinstance(config, str):
        if not os.path.isfile(config):
            raise PclusterApiError("Cluster config file not found: %s" % config, code=400, error_type="FileNotFound")
        return config
    return config


def _dryrun_result(success, error):
    return {
        "success": success,
        "no_change": False,
        "message": error.message,
        "validation_messages": group_validation_messages(error.validation_messages),
        "change_set": error.change_set,
        "update_errors": error.update_errors,
        "error": None if success else error,
    }


def dryrun_create(cluster_name, config, region, suppress_validators=None, validation_failure_level=None, api=None):
    """Run ``pcluster create-cluster --dryrun``: full validation, nothing created.

    ``config`` is a dict or the path of a YAML file. Returns::

        {"success": bool,            # False when pcluster rejected the config
         "message": str,             # pcluster's message
         "validation_messages": {"ERROR": [...], "WARNING": [...], "INFO": [...]},
         "change_set": [], "update_errors": [], "no_change": False,
         "error": PclusterApiError or None}

    each validation message being ``{id, type, level, message}``. A rejected
    config (CreateClusterBadRequestException) is a result with success False;
    every other failure (bad region, credentials, pcluster missing) raises
    PclusterApiError / PclusterMissingError.
    """
    api = api or PclusterApi(region=region)
    return api.dryrun_create(cluster_name, config, suppress_validators, validation_failure_level)


# --------------------------------------------------------------------------- progress


STACK_OPERATION_START = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS")


class StackProgress:
    """How far a CloudFormation operation has got, from the stack's events.

    Feed it pages of events (newest first, as pcluster returns them); it keeps
    the latest status of every resource since the current operation began
    (the stack's own ``*_IN_PROGRESS`` "User Initiated" event).
    """

    def __init__(self, resources_total=None):
        self.resources_total = resources_total
        self.resources = {}
        self.stack_status = None
        self.operation = None
        self.last_event_id = None
        self.latest = None

    def feed(self, events):
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
            reason = event.get("resourceStatusReason") or ""
            if status in STACK_OPERATION_START and (not reason or "user initiated" in reason.lower()):
                self.resources = {}
                self.operation = status.split("_", 1)[0]
            return
        self.resources[logical_id] = {
            "status": status,
            "type": event.get("resourceType"),
            "reason": event.get("resourceStatusReason"),
            "timestamp": event.get("timestamp"),
        }
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


def format_duration(seconds):
    seconds = int(max(0, seconds))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return "%dh%02dm%02ds" % (hours, minutes, sec)
    if minutes:
        return "%dm%02ds" % (minutes, sec)
    return "%ds" % sec


def format_progress_line(cluster_name, snapshot, elapsed, timeout):
    """One progress line for a wait, e.g. for display.display()."""
    cluster = snapshot.get("cluster")
    fleet = snapshot.get("fleet")
    if snapshot.get("goal", "").startswith("fleet"):
        state = "compute fleet %s" % ((fleet or {}).get("status") or "UNKNOWN")
    elif cluster is None:
        state = "cluster not found (deleted)"
    else:
        state = "%s (stack %s)" % (cluster.get("clusterStatus"), cluster.get("cloudFormationStackStatus"))
    line = "[%s] %s - %s elapsed" % (cluster_name, state, format_duration(elapsed))
    counts = format_progress_counts(snapshot.get("progress"))
    if counts:
        line += ", " + counts
    if snapshot.get("goal") and cluster_goal_reached(snapshot["goal"], snapshot):
        line += ", done"
    elif timeout:
        line += ", gives up in %s" % format_duration(timeout - elapsed)
    return line


# --------------------------------------------------------------------------- waiting


class WaitTimeout(Exception):
    """A wait reached its timeout; ``snapshot`` is the last state seen."""

    def __init__(self, message, snapshot=None, elapsed=None):
        super().__init__(message)
        self.snapshot = snapshot or {}
        self.elapsed = elapsed


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


def wait_until(poll, goal, timeout, sleep=time.sleep, clock=time.monotonic, report=None, report_every=60.0, intervals=None):
    """Poll until ``goal`` is reached; the loop shared by the modules and the action plugin.

    ``poll(want_progress)`` returns a snapshot ``{"cluster": describe or None,
    "fleet": describe-compute-fleet or None, "progress": StackProgress summary
    or None}``. ``report(snapshot, elapsed)`` is called on the first poll, on
    every status change and at least every ``report_every`` seconds: the poll
    before a report is due asks for progress (the costly stack-event reads)
    and the sleep before it is shortened so that the line is on time; the
    polls in between only read the status. Returns the final snapshot; raises
    WaitTimeout.
    """
    intervals = intervals or poll_intervals()
    start = clock()
    due = None  # when the next report line must be out
    poll_cost = 0.0
    last_key = None
    next_interval = next(intervals)
    while True:
        poll_start = clock()
        want_progress = report is not None and (due is None or poll_start + poll_cost + 1.0 >= due)
        snapshot = poll(want_progress)
        poll_cost = clock() - poll_start
        snapshot["goal"] = goal
        key = snapshot_key(snapshot)
        done = cluster_goal_reached(goal, snapshot)
        if report is not None and (want_progress or key != last_key or done):
            report(snapshot, clock() - start)
            if want_progress or due is None:
                due = clock() + report_every
        last_key = key
        if done:
            return snapshot
        now = clock()
        pause = next_interval
        if due is not None:
            pause = min(pause, max(0.0, due - now - poll_cost - 1.0))
        remaining = timeout - (now - start)
        if remaining <= 0:
            raise WaitTimeout("gave up waiting after %s" % format_duration(now - start), snapshot, now - start)
        sleep(min(pause, remaining))
        next_interval = next(intervals)


class ApiPoller:
    """poll(want_progress) for wait_until, straight on pcluster.lib (used when a module waits itself)."""

    def __init__(self, api, cluster_name, fleet=False, aws_settings=None):
        self.api = api
        self.cluster_name = cluster_name
        self.fleet = fleet
        self.aws_settings = aws_settings
        self.progress = None
        self.lines = []

    def __call__(self, want_progress):
        cluster = self.api.describe_cluster(self.cluster_name)
        snapshot = {"cluster": cluster, "fleet": None, "progress": None}
        if self.fleet and cluster is not None:
            snapshot["fleet"] = self.api.describe_compute_fleet(self.cluster_name)
        if want_progress and cluster is not None and not self.fleet:
            snapshot["progress"] = self.stack_progress(cluster)
        return snapshot

    def stack_progress(self, cluster):
        try:
            if self.progress is None:
                self.progress = StackProgress(self.api.stack_resources_total(cluster, self.aws_settings))
            events = self.api.get_cluster_stack_events(self.cluster_name, until_event_id=self.progress.last_event_id)
            return self.progress.feed(events).summary()
        except PclusterApiError:
            return None


# --------------------------------------------------------------------------- failures


FAILURE_HINTS = {
    "HeadNodeBootstrapFailure": (
        "The head node did not finish its bootstrap (cfn-init / chef), or did not signal within the "
        "creation timeout. Read the head node's cfn-init, chef-client and cloud-init-output log streams; "
        "common causes are a subnet without a route to the internet/NAT or the required VPC endpoints, "
        "a CustomActions script that fails or hangs, and a shared storage that cannot be mounted."
    ),
    "OnNodeConfiguredExecutionFailure": (
        "The OnNodeConfigured custom action script ran and exited non-zero. Read the head node's "
        "cfn-init log stream (the script's output is there); run the script by hand on a test instance."
    ),
    "OnNodeConfiguredDownloadFailure": (
        "The OnNodeConfigured script could not be downloaded. Check the Script URL, that the head node's "
        "IAM role may read it (Iam.S3Access / AdditionalIamPolicies) and that the subnet reaches S3."
    ),
    "OnNodeConfiguredFailure": "The OnNodeConfigured script failed. Read the head node's cfn-init log stream.",
    "OnNodeStartExecutionFailure": (
        "The OnNodeStart custom action script exited non-zero. Read the head node's cfn-init log stream."
    ),
    "OnNodeStartDownloadFailure": (
        "The OnNodeStart script could not be downloaded. Check its URL, the IAM role's S3 access and the "
        "subnet's route to S3."
    ),
    "OnNodeStartFailure": "The OnNodeStart script failed. Read the head node's cfn-init log stream.",
    "EbsMountFailure": "An EBS volume could not be mounted: check the volume id, its availability zone and its state.",
    "EfsMountFailure": (
        "An EFS file system could not be mounted: check the mount targets in the head node's availability zone "
        "and that the security groups allow NFS (TCP 2049)."
    ),
    "FsxMountFailure": (
        "An FSx file system could not be mounted: check the file system/volume id, that it is AVAILABLE, and "
        "that the security groups allow Lustre (TCP 988, 1018-1023) or NFS (TCP 111, 2049, 20001-20003)."
    ),
    "RaidMountFailure": "The RAID array could not be built or mounted: check the EBS settings of SharedStorage.",
    "ResourceCreationFailure": (
        "A resource the head node needs could not be created. The first failed stack events below name it "
        "and give CloudFormation's reason (often a quota, a missing permission or an invalid parameter)."
    ),
    "StaticNodeBootstrapFailure": (
        "Static compute nodes failed to start and the cluster was set to PROTECTED. Read the head node's "
        "clustermgtd and slurm_resume log streams (capacity, quotas, bad AMI or bootstrap script on compute)."
    ),
    "InvalidAmi": "The custom AMI was not built by ParallelCluster's build-image: rebuild it with pcluster build-image.",
    "AmiVersionMismatch": (
        "The custom AMI was built for another ParallelCluster version: rebuild it with this version's build-image."
    ),
    "ClusterCreationFailure": (
        "CloudFormation could not create the cluster. The first failed stack events below give the reason."
    ),
}

BOOTSTRAP_TIMEOUT_HINT = (
    "The head node did not signal the end of its bootstrap within HeadNodeBootstrapTimeout "
    "(DevSettings.Timeouts, 30 minutes unless set): usually a slow or hanging OnNodeConfigured script, slow "
    "downloads, or no route to the internet/NAT. Read the cloud-init-output and cfn-init log streams; raise "
    "the timeout only once the script is known to be slow rather than stuck."
)

# Log streams worth reading first, in order (substrings of the stream name).
LOG_STREAM_PRIORITY = (
    "bootstrap_error_msg",
    "cfn-init",
    "chef-client",
    "cloud-init-output",
    "cloud-init",
    "clustermgtd",
    "slurm_resume",
    "slurmctld",
    "computemgtd",
    "supervisord",
)


def first_failed_events(events, limit=5):
    """The first *_FAILED events, oldest first; "Resource creation cancelled" follow-ons last."""
    failed = [e for e in reversed(events or []) if str(e.get("resourceStatus") or "").endswith("_FAILED")]
    root = [e for e in failed if "cancelled" not in str(e.get("resourceStatusReason") or "").lower()]
    follow = [e for e in failed if e not in root]
    return (root + follow)[:limit]


def log_group_from_streams(streams):
    for stream in streams or []:
        arn = stream.get("logStreamArn") or ""
        if ":log-group:" in arn:
            return arn.split(":log-group:", 1)[1].split(":log-stream:", 1)[0]
    return None


def relevant_log_streams(streams, limit=8):
    def rank(stream):
        name = stream.get("logStreamName") or ""
        for index, marker in enumerate(LOG_STREAM_PRIORITY):
            if marker in name:
                return index
        return len(LOG_STREAM_PRIORITY)

    ordered = sorted(streams or [], key=rank)
    return [s.get("logStreamName") for s in ordered if s.get("logStreamName")][:limit]


def failure_report(api, cluster_name, cluster, event_limit=5):
    """Everything a user needs to understand a *_FAILED cluster, as data plus a readable message."""
    failures = []
    for failure in (cluster or {}).get("failures") or []:
        code = failure.get("failureCode")
        reason = failure.get("failureReason") or ""
        hint = FAILURE_HINTS.get(code, FAILURE_HINTS["ClusterCreationFailure"])
        if "timed out" in reason.lower():
            hint = BOOTSTRAP_TIMEOUT_HINT
        failures.append({"failure_code": code, "failure_reason": reason, "hint": hint})
    report = {
        "cluster_status": (cluster or {}).get("clusterStatus"),
        "stack_status": (cluster or {}).get("cloudFormationStackStatus"),
        "failures": failures,
        "failed_events": [],
        "log_group": None,
        "log_streams": [],
        "errors": [],
    }
    try:
        events = api.get_cluster_stack_events(cluster_name)
        report["failed_events"] = [
            {
                "timestamp": e.get("timestamp"),
                "logical_resource_id": e.get("logicalResourceId"),
                "resource_type": e.get("resourceType"),
                "resource_status": e.get("resourceStatus"),
                "resource_status_reason": e.get("resourceStatusReason"),
            }
            for e in first_failed_events(events, event_limit)
        ]
    except PclusterApiError as error:
        report["errors"].append("stack events unavailable: %s" % error.message)
    try:
        streams = api.list_cluster_log_streams(cluster_name)
        report["log_group"] = log_group_from_streams(streams)
        report["log_streams"] = relevant_log_streams(streams)
    except PclusterApiError as error:
        report["errors"].append("log streams unavailable: %s" % error.message)
    report["message"] = format_failure(cluster_name, api.region, report)
    return report


def format_failure(cluster_name, region, report):
    """The failure report as the text a user reads in the playbook output."""
    lines = [
        "Cluster '%s' is %s (CloudFormation stack %s)%s."
        % (cluster_name, report.get("cluster_status"), report.get("stack_status"), " in %s" % region if region else "")
    ]
    for failure in report.get("failures") or []:
        lines.append("%s: %s" % (failure["failure_code"], failure.get("failure_reason") or ""))
        lines.append("  What to check: %s" % failure["hint"])
    events = report.get("failed_events") or []
    if events:
        lines.append("First failed stack events (oldest first):")
        for event in events:
            lines.append(
                "  %s %s (%s) %s: %s"
                % (
                    event.get("timestamp"),
                    event.get("logical_resource_id"),
                    event.get("resource_type"),
                    event.get("resource_status"),
                    event.get("resource_status_reason") or "no reason given",
                )
            )
    streams = report.get("log_streams") or []
    if streams:
        lines.append("Logs: CloudWatch log group %s; read these streams first:" % (report.get("log_group") or "/aws/parallelcluster/%s-*" % cluster_name))
        lines.extend("  %s" % name for name in streams)
        lines.append(
            "  e.g. pcluster get-cluster-log-events --cluster-name %s%s --log-stream-name %s"
            % (cluster_name, " --region %s" % region if region else "", streams[0])
        )
    else:
        lines.append(
            "Logs: no log streams found for the cluster (CloudWatch log group /aws/parallelcluster/%s-<timestamp>); "
            "the head node may not have started its CloudWatch agent." % cluster_name
        )
    if report.get("cluster_status") == "UPDATE_FAILED":
        lines.append(
            "CloudFormation rolled the update back: the cluster runs with its previous configuration. Fix what the "
            "failed events name and run the task again."
        )
    if report.get("cluster_status") == "DELETE_FAILED":
        lines.append(
            "Some resources could not be deleted (often a security group or network interface still in use by "
            "something outside the cluster); the failed events name them. Remove the dependency and run "
            "state: absent again."
        )
    if report.get("cluster_status") == "CREATE_FAILED":
        lines.append(
            "A CREATE_FAILED cluster cannot be updated: delete it (state: absent) and create it again. "
            "Set rollback_on_failure: false to keep the head node for debugging on the next attempt."
        )
    for error in report.get("errors") or []:
        lines.append("(%s)" % error)
    return "\n".join(lines)


# --------------------------------------------------------------------------- module glue


def cluster_summary(cluster):
    """The return values every module gives about one cluster (None-safe)."""
    cluster = cluster or {}
    head = cluster.get("headNode") or {}
    return {
        "exists": bool(cluster),
        "status": cluster.get("clusterStatus"),
        "stack_status": cluster.get("cloudFormationStackStatus"),
        "compute_fleet_status": cluster.get("computeFleetStatus"),
        "version": cluster.get("version"),
        "head_node": {
            "instance_id": head.get("instanceId"),
            "instance_type": head.get("instanceType"),
            "private_ip_address": head.get("privateIpAddress"),
            "public_ip_address": head.get("publicIpAddress"),
            "state": head.get("state"),
            "launch_time": head.get("launchTime"),
        }
        if head
        else None,
        "cluster": cluster,
    }


def explain_error(error, settings=None):
    """The one clear message for the failures users hit first; pcluster's own message otherwise."""
    settings = settings or {}
    text = (error.message or "").lower()
    if "unable to locate credentials" in text or "no credentials" in text:
        return (
            "No AWS credentials found. Export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, set the module's 'profile' "
            "(or AWS_PROFILE) to a profile in ~/.aws/credentials, or run where an instance role is available."
        )
    if "invalid or unsupported region" in text:
        return (
            "AWS region %r is unknown or not supported by ParallelCluster. Set 'region' (or AWS_REGION) "
            "to a region name such as us-east-1." % settings.get("region")
        )
    if "config profile" in text and "could not be found" in text:
        return "AWS profile %r does not exist in ~/.aws/config or ~/.aws/credentials. Fix 'profile' or AWS_PROFILE." % settings.get("profile")
    if "could not connect to the endpoint url" in text:
        where = settings.get("endpoint_url") or "the AWS endpoint"
        return "Cannot reach %s (%s). Check endpoint_url / AWS_ENDPOINT_URL and the network." % (where, error.message)
    if "security token included in the request is invalid" in text or "invalidclienttokenid" in text:
        return "The AWS credentials were rejected (invalid or expired security token). Refresh them and retry."
    return error.describe()


def fail_on_error(module, error, settings=None, prefix=None, **result):
    """module.fail_json for a PclusterApiError, with the normalised error in the result."""
    message = explain_error(error, settings)
    if prefix:
        message = "%s: %s" % (prefix, message)
    payload = dict(result)
    payload.pop("msg", None)
    payload.update(error.to_result())
    module.fail_json(msg=message, **payload)


def module_api(module, settings, **kwargs):
    """A PclusterApi for a module; fails the module when aws-parallelcluster is missing."""
    if not HAS_PCLUSTER:
        module.fail_json(msg=missing_pcluster_message())
    try:
        pcluster_lib()
    except PclusterMissingError as exc:
        module.fail_json(msg=str(exc))
    return PclusterApi(region=settings.get("region"), aws_settings=settings, **kwargs)


def fleet_plan(state, status):
    """What to ask of the compute fleet for ``state`` (started|stopped) given its current ``status``.

    Returns {target, request (None when nothing to ask), reached, goal} where goal
    is the wait_until goal. AWS Batch clusters use ENABLED/DISABLED.
    """
    batch = status in ("ENABLED", "DISABLED")
    if state == "started":
        target, request, on_the_way = ("ENABLED", "ENABLED", ()) if batch else ("RUNNING", "START_REQUESTED", ("START_REQUESTED", "STARTING"))
    else:
        target, request, on_the_way = ("DISABLED", "DISABLED", ()) if batch else ("STOPPED", "STOP_REQUESTED", ("STOP_REQUESTED", "STOPPING"))
    reached = status == target
    return {
        "target": target,
        "request": None if reached or status in on_the_way else request,
        "reached": reached,
        "goal": "fleet:" + target,
    }


def timeout_message(cluster_name, goal, timeout, snapshot):
    """What a user reads when a wait gives up."""
    snapshot = snapshot or {}
    cluster = snapshot.get("cluster")
    if goal.startswith("fleet:"):
        state = "the compute fleet is %s" % ((snapshot.get("fleet") or {}).get("status"))
    elif cluster is None:
        state = "it no longer exists"
    else:
        state = "it is %s (stack %s)" % (cluster.get("clusterStatus"), cluster.get("cloudFormationStackStatus"))
        counts = format_progress_counts(snapshot.get("progress"))
        if counts:
            state += ", " + counts
    wanted = {"stable": "a stable state", "deleted": "deletion"}.get(goal, goal.replace("fleet:", "compute fleet "))
    return (
        "Timed out after %d s waiting for cluster %s to reach %s: %s. The operation goes on in AWS; "
        "run the task again to keep waiting, or raise wait_timeout." % (timeout, cluster_name, wanted, state)
    )
