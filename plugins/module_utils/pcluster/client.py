# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pcluster client: the lazy import of pcluster.lib and PclusterApi, its calls with retries for reads only."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import random
import sys
import time

from ansible_collections.hpc.pcluster.plugins.module_utils.aws import boto3_client
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import (
    PclusterApiError,
    PclusterMissingError,
    aws_denial,
    convert_error,
    group_validation_messages,
)

PCLUSTER_MISSING_MESSAGE = (
    "The Python package aws-parallelcluster (which provides pcluster.lib) is not installed for the "
    "Python interpreter that runs this module ({python}). Install it there with "
    "'{python} -m pip install \"aws-parallelcluster>=3.11\"' (ParallelCluster also needs Node.js "
    "for create and update), or point ansible_python_interpreter at a Python that has it."
)

# True when the pcluster package can be found; the import itself happens lazily (it takes about a second).
try:
    HAS_PCLUSTER = importlib.util.find_spec("pcluster") is not None
except (ImportError, ValueError):  # pragma: no cover - broken installs
    HAS_PCLUSTER = False

_PCLUSTER_LIB = None
_PCLUSTER_IMPORT_ERROR = None

# Calls that change something: never repeated blindly (the caller describes the cluster and decides).
WRITES = frozenset(("create_cluster", "update_cluster", "delete_cluster", "update_compute_fleet", "build_image",
                    "delete_image"))
# What describe-image gives for the stored image config's URL when ParallelCluster cannot presign it.
URL_NOT_AVAILABLE = "NOT_AVAILABLE"


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


def denials_gone_past():
    """What pcluster logged and went on without: one sentence per action AWS denied (its log line carries AWS's
    "User: <principal> is not authorized to perform: <action>"), e.g. the compute fleet status it reports UNKNOWN
    when the credentials may not call dynamodb:GetItem on the cluster's table."""
    seen, out = set(), []
    for line in PCLUSTER_LOG.records:
        denial = aws_denial(line)
        if denial and (denial["action"], denial["principal"]) not in seen:
            seen.add((denial["action"], denial["principal"]))
            out.append("AWS denied %s to %s and ParallelCluster went on without it; pcluster logged: %s"
                       % (denial["action"], denial["principal"], line))
    return out


def _silence_pcluster_logging():
    logger = logging.getLogger("pcluster")
    if PCLUSTER_LOG not in logger.handlers:
        logger.addHandler(PCLUSTER_LOG)
    logger.propagate = False


def _fresh_request():
    """Forget what pcluster cached in earlier calls, as its API server does before each request.

    pcluster caches some AWS reads for the life of the process (``Cache.cached``: describe_images among them, which
    describe-image looks AMIs up with) and keeps its boto3 clients (``AWSApi``): within one module run, a poll after a
    delete would otherwise still see the deleted AMI.
    """
    try:
        from pcluster.aws.aws_api import AWSApi  # pylint: disable=import-outside-toplevel
        from pcluster.aws.common import Cache  # pylint: disable=import-outside-toplevel
    except ImportError:  # pragma: no cover - pcluster.lib imports both
        return
    Cache.clear_all()
    AWSApi.reset()


@contextlib.contextmanager
def _quiet():
    """Keep pcluster's prints off stdout, which carries the module's JSON result."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer


class RetryPolicy:
    """Exponential backoff with full jitter for transient errors of reads.

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


class PclusterApi:
    """The pcluster.lib calls of one module run.

    ``region`` is passed to every call. ``sleep``/``clock`` are injectable so tests and benchmarks
    can run waits on a fake clock; ``calls`` counts every call made (retries included), per operation.
    Reads are retried on throttling and transient errors; writes (WRITES) never are: a write that
    raised may still have happened, so its caller describes the cluster and decides.
    ``on_presigned_url(url)`` is called with every presigned config URL a describe returns.
    """

    def __init__(self, region=None, retry=None, sleep=None, clock=None, lib=None, aws_settings=None,
                 on_presigned_url=None):
        self.region = region
        self.aws_settings = aws_settings or {"region": region}
        self.retry = retry or RetryPolicy()
        self.sleep = sleep or time.sleep
        self.clock = clock or time.monotonic
        self._lib = lib
        self.on_presigned_url = on_presigned_url
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

    def count(self, operation):
        self.calls[operation] = self.calls.get(operation, 0) + 1

    def call(self, operation, **kwargs):
        """``pcluster.lib.<operation>(**kwargs)`` with errors normalised; transient errors of reads retried."""
        func = getattr(self.lib, operation)
        if self.region and "region" not in kwargs:
            kwargs["region"] = self.region
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        retry = operation not in WRITES or kwargs.get("dryrun")
        attempt = 0
        while True:
            self.count(operation)
            try:
                with _quiet():
                    _fresh_request()
                    return func(**kwargs)
            except SystemExit as exc:
                # pcluster's CLI helpers call sys.exit() for some bad parameters (missing files).
                raise PclusterApiError("pcluster %s stopped: %s" % (operation, exc.code), code=400,
                                       error_type="SystemExit", operation=operation) from None
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
        """Validate a create without creating anything: pcluster's full validation against the account.

        Returns {success, no_change, message, validation_messages (by level), change_set, update_errors,
        error (the PclusterApiError when rejected, else None)}. A rejected config is a result with
        success False; every other failure raises.
        """
        return self._dryrun("create_cluster", "CreateClusterBadRequestException",
                            config_call_args(cluster_name, config, suppress_validators, validation_failure_level))

    def dryrun_update(self, cluster_name, config, suppress_validators=None, validation_failure_level=None):
        """Validate an update: the same result as dryrun_create; no_change when pcluster finds nothing to do."""
        return self._dryrun("update_cluster", "UpdateClusterBadRequestException",
                            config_call_args(cluster_name, config, suppress_validators, validation_failure_level))

    def dryrun_build_image(self, image_id, config, suppress_validators=None, validation_failure_level=None):
        """Validate a build-image (the same result as dryrun_create). Mind that pcluster's build-image creates the
        account's build-image cleanup role first, dryrun or not (see image_lifecycle)."""
        return self._dryrun("build_image", "BuildImageBadRequestException",
                            image_call_args(image_id, config, suppress_validators, validation_failure_level))

    def _dryrun(self, operation, bad_request_type, call_args):
        """pcluster ends a successful dryrun with DryrunOperationException (412), a rejected one with
        <bad_request_type>; an update with nothing to change says "No changes found"."""
        try:
            self.call(operation, dryrun=True, **call_args)
        except PclusterApiError as error:
            if error.is_dryrun_success:
                return _dryrun_result(True, error)
            if operation == "update_cluster" and error.is_no_change:
                return dict(_dryrun_result(True, error), no_change=True)
            if error.error_type == bad_request_type:
                return _dryrun_result(False, error)
            raise
        raise PclusterApiError("pcluster %s with dryrun=True returned without the expected DryrunOperationException"
                               % operation, operation=operation)

    # ----- reads

    def describe_cluster(self, cluster_name):
        """describe-cluster data, or None when the cluster does not exist."""
        try:
            cluster = self.call("describe_cluster", cluster_name=cluster_name)
        except PclusterApiError as error:
            if error.not_found:
                return None
            raise
        url = ((cluster or {}).get("clusterConfiguration") or {}).get("url")
        if url and self.on_presigned_url:
            self.on_presigned_url(url)
        return cluster

    def list_clusters(self, cluster_status=None):
        """Every cluster of the region (all pages)."""
        return self._drain("list_clusters", "clusters", cluster_status=cluster_status)

    def describe_cluster_instances(self, cluster_name, node_type=None, queue_name=None):
        """Every instance of a cluster (all pages)."""
        return self._drain("describe_cluster_instances", "instances", cluster_name=cluster_name,
                           node_type=node_type, queue_name=queue_name)

    def describe_compute_fleet(self, cluster_name):
        return self.call("describe_compute_fleet", cluster_name=cluster_name)

    def get_cluster_stack_events(self, cluster_name, until_event_id=None, max_pages=20):
        """Stack events newest first; stops paging at ``until_event_id`` (exclusive)."""
        return self._events("get_cluster_stack_events", until_event_id, max_pages, cluster_name=cluster_name)

    def _events(self, operation, until_event_id, max_pages, **kwargs):
        events = []
        token = None
        for _page in range(max_pages):
            response = self.call(operation, next_token=token, **kwargs)
            for event in response.get("events") or []:
                if until_event_id and event.get("eventId") == until_event_id:
                    return events
                events.append(event)
            token = response.get("nextToken")
            if not token:
                break
        return events

    def list_cluster_log_streams(self, cluster_name, max_pages=5):
        return self._log_streams("list_cluster_log_streams", max_pages, cluster_name=cluster_name)

    def _log_streams(self, operation, max_pages, **kwargs):
        try:
            return self._drain(operation, "logStreams", max_pages=max_pages, **kwargs)
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

    def stack_resources_total(self, cluster):
        """How many resources the CloudFormation template of a cluster (or image build) declares (None if unknown)."""
        stack = (cluster or {}).get("cloudformationStackArn") or (cluster or {}).get("clusterName") or (
            cluster or {}).get("imageId")
        if not stack:
            return None
        self.count("cloudformation.get_template")
        try:
            client = boto3_client("cloudformation", self.aws_settings)
            body = client.get_template(StackName=stack).get("TemplateBody")
            if isinstance(body, str):
                import yaml  # pylint: disable=import-outside-toplevel

                body = yaml.safe_load(body)
            return len((body or {}).get("Resources") or {}) or None
        except Exception:  # pylint: disable=broad-except
            return None

    # ----- images (pcluster build-image and friends)

    def describe_image(self, image_id):
        """describe-image data, or None when neither the image nor its build stack exists."""
        try:
            image = self.call("describe_image", image_id=image_id)
        except PclusterApiError as error:
            if error.not_found:
                return None
            raise
        url = ((image or {}).get("imageConfiguration") or {}).get("url")
        if url and url != URL_NOT_AVAILABLE and self.on_presigned_url:
            self.on_presigned_url(url)
        return image

    def list_images(self, image_status):
        """The region's ParallelCluster images in one status (AVAILABLE, PENDING or FAILED; all pages)."""
        return self._drain("list_images", "images", image_status=image_status)

    def list_official_images(self, os=None, architecture=None):  # pylint: disable=redefined-builtin
        """ParallelCluster's own AMIs of this version, for an OS and architecture (None: all)."""
        return self.call("list_official_images", os=os, architecture=architecture).get("images") or []

    def get_image_stack_events(self, image_id, until_event_id=None, max_pages=20):
        """The image build stack's events newest first; stops paging at ``until_event_id`` (exclusive)."""
        return self._events("get_image_stack_events", until_event_id, max_pages, image_id=image_id)

    def list_image_log_streams(self, image_id, max_pages=5):
        return self._log_streams("list_image_log_streams", max_pages, image_id=image_id)

    def image_log_tail(self, image_id, log_stream_name, limit=60):
        """The last ``limit`` events of an image build's log stream, oldest first."""
        response = self.call("get_image_log_events", image_id=image_id, log_stream_name=log_stream_name,
                             start_from_head=False, limit=limit)
        return response.get("events") or []

    def build_image(self, image_id, config, suppress_validators=None, validation_failure_level=None,
                    rollback_on_failure=None):
        return self.call("build_image", rollback_on_failure=rollback_on_failure,
                         **image_call_args(image_id, config, suppress_validators, validation_failure_level))

    def delete_image(self, image_id, force=None):
        return self.call("delete_image", image_id=image_id, force=force)

    # ----- writes (never retried here)

    def create_cluster(self, cluster_name, config, suppress_validators=None, validation_failure_level=None,
                       rollback_on_failure=None):
        return self.call("create_cluster", rollback_on_failure=rollback_on_failure,
                         **config_call_args(cluster_name, config, suppress_validators, validation_failure_level))

    def update_cluster(self, cluster_name, config, suppress_validators=None, validation_failure_level=None):
        return self.call("update_cluster",
                         **config_call_args(cluster_name, config, suppress_validators, validation_failure_level))

    def delete_cluster(self, cluster_name):
        return self.call("delete_cluster", cluster_name=cluster_name)

    def update_compute_fleet(self, cluster_name, status):
        return self.call("update_compute_fleet", cluster_name=cluster_name, status=status)


def config_call_args(cluster_name, config, suppress_validators, validation_failure_level):
    """The arguments pcluster.lib's create_cluster and update_cluster (dryrun or not) share.

    pcluster takes the config as a dict (it dumps it to YAML) or as the path of a YAML file.
    """
    if isinstance(config, str) and not os.path.isfile(config):
        raise PclusterApiError("Cluster config file not found: %s" % config, code=400, error_type="FileNotFound")
    return dict(
        cluster_name=cluster_name,
        cluster_configuration=config,
        suppress_validators=list(suppress_validators) if suppress_validators else None,
        validation_failure_level=validation_failure_level,
    )


def image_call_args(image_id, config, suppress_validators, validation_failure_level):
    """The arguments of pcluster.lib's build_image (dryrun or not): the config as a dict or a YAML file's path."""
    if isinstance(config, str) and not os.path.isfile(config):
        raise PclusterApiError("Image config file not found: %s" % config, code=400, error_type="FileNotFound")
    return dict(
        image_id=image_id,
        image_configuration=config,
        suppress_validators=list(suppress_validators) if suppress_validators else None,
        validation_failure_level=validation_failure_level,
    )


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
