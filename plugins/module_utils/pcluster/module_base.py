# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module base: AnsibleModule with the AWS options, a PclusterApi, progress lines, clean results, one error path."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.pcluster.plugins.module_utils.aws import aws_argument_spec, setup_aws
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster import client as pcluster_client
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import (
    PclusterMissingError,
    explain_error,
    group_validation_messages,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.progress_lines import PROGRESS_OPTION, write_progress

PRESIGNED_URL_REMOVED = "<presigned URL removed>"
# Where describe-cluster and describe-image give the presigned URL of the stored config.
STORED_CONFIG_KEYS = ("clusterConfiguration", "imageConfiguration")


def strip_presigned_urls(value, urls=()):
    """A copy of ``value`` without describe-cluster's clusterConfiguration.url and describe-image's
    imageConfiguration.url (bearer URLs to the configs), and with any of ``urls`` replaced inside strings."""
    if isinstance(value, dict):
        copy = {}
        for key, item in value.items():
            if key in STORED_CONFIG_KEYS and isinstance(item, dict):
                item = {k: v for k, v in item.items() if k != "url"}
            copy[key] = strip_presigned_urls(item, urls)
        return copy
    if isinstance(value, (list, tuple)):
        return [strip_presigned_urls(item, urls) for item in value]
    if isinstance(value, str):
        for url in urls:
            value = value.replace(url, PRESIGNED_URL_REMOVED)
    return value


def cluster_summary(cluster):
    """The return values every module gives about one cluster (None-safe); the presigned URL is left out."""
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
        } if head else None,
        "cluster": strip_presigned_urls(cluster),
    }


class PclusterModule(AnsibleModule):
    """AnsibleModule for the collection's ParallelCluster modules, in the spirit of amazon.aws's AnsibleAWSModule.

    Adds the hpc.pcluster.aws options (and, with ``progress=True``, progress_file), resolves and exports the
    AWS settings (failing clearly without a region), builds the PclusterApi (failing clearly without
    aws-parallelcluster), writes progress lines for the action plugins to relay, keeps presigned URLs out
    of every result, and has one error path: fail_json_pcluster.
    """

    def __init__(self, argument_spec=None, progress=False, **kwargs):
        spec = aws_argument_spec()
        if progress:
            spec.update(PROGRESS_OPTION)
        spec.update(argument_spec or {})
        self._settings = None
        self._api = None
        self.fail_note = None  # callable returning a sentence every failure message ends with, or None
        self.presigned_urls = set()
        self.validation_warnings_shown = set()
        super().__init__(argument_spec=spec, **kwargs)

    @property
    def settings(self):
        """{region, profile, endpoint_url}, exported to the environment for pcluster.lib and boto3."""
        if self._settings is None:
            self._settings = setup_aws(self)
        return self._settings

    def client(self, **kwargs):
        """The run's PclusterApi; every presigned URL it sees is masked in all output."""
        if self._api is None:
            settings = self.settings
            if not pcluster_client.HAS_PCLUSTER:
                self.fail_json(msg=pcluster_client.missing_pcluster_message())
            try:
                pcluster_client.pcluster_lib()
            except PclusterMissingError as exc:
                self.fail_json(msg=str(exc))
            self._api = pcluster_client.PclusterApi(region=settings.get("region"), aws_settings=settings,
                                                    on_presigned_url=self.presigned_url_seen, **kwargs)
        return self._api

    def presigned_url_seen(self, url):
        """Keep ``url`` out of every result and message (also Ansible's no_log masking, for warnings)."""
        self.presigned_urls.add(url)
        self.no_log_values.add(url)

    def progress(self, line):
        """Append a progress line to progress_file (read and printed by the action plugin); no-op without it."""
        write_progress(self, line)

    def validation_warnings(self, messages):
        """ParallelCluster's validation messages (a list, or grouped by level) grouped by level, each WARNING shown
        once in the module's run (every dryrun of a run repeats them)."""
        if isinstance(messages, dict):
            messages = [msg for level in messages.values() for msg in level]
        grouped = group_validation_messages(messages)
        for msg in grouped.get("WARNING", []):
            text = "ParallelCluster validation warning (%s): %s" % (msg.get("type") or msg.get("id"), msg.get("message"))
            if text not in self.validation_warnings_shown:
                self.validation_warnings_shown.add(text)
                self.warn(text)
        return grouped

    def _with_note(self, msg):
        note = self.fail_note() if self.fail_note else None
        return "%s\n%s" % (msg, note) if note and note not in msg else msg

    def fail_json_pcluster(self, error, msg=None, **result):
        """Fail with a PclusterApiError: the clear message for it, prefixed by ``msg``, and the error as data."""
        message = explain_error(error, self._settings)
        if msg:
            message = "%s: %s" % (msg, message)
        payload = dict(result)
        payload.pop("msg", None)
        payload.update(error.to_result())
        self.fail_json(msg=message, **payload)

    def exit_json(self, **kwargs):
        for warning in pcluster_client.denials_gone_past():
            self.warn(strip_presigned_urls(warning, self.presigned_urls))
        super().exit_json(**strip_presigned_urls(kwargs, self.presigned_urls))

    def fail_json(self, msg, **kwargs):
        msg = strip_presigned_urls(self._with_note(msg), self.presigned_urls)
        super().fail_json(msg=msg, **strip_presigned_urls(kwargs, self.presigned_urls))
