# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failure reports: what a *_FAILED cluster or a failed image build tells a user (hints, first failed events, logs)."""

from __future__ import annotations

import re

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError


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


def collect(report, what, read):
    """``read()``, or None with "<what> unavailable: <why>" added to report["errors"] when pcluster refuses."""
    try:
        return read()
    except PclusterApiError as error:
        report["errors"].append("%s unavailable: %s" % (what, error.message))
        return None


def failed_event_records(events, limit=5):
    """The first failed events (see first_failed_events) as the reports' records."""
    return [
        {
            "timestamp": e.get("timestamp"),
            "logical_resource_id": e.get("logicalResourceId"),
            "resource_type": e.get("resourceType"),
            "resource_status": e.get("resourceStatus"),
            "resource_status_reason": e.get("resourceStatusReason"),
        }
        for e in first_failed_events(events, limit)
    ]


def format_events(events):
    """The failed event records as report lines (none without events)."""
    if not events:
        return []
    lines = ["First failed stack events (oldest first):"]
    for event in events:
        lines.append("  %s %s (%s) %s: %s" % (
            event.get("timestamp"), event.get("logical_resource_id"), event.get("resource_type"),
            event.get("resource_status"), event.get("resource_status_reason") or "no reason given"))
    return lines


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
    report["failed_events"] = collect(report, "stack events", lambda: failed_event_records(
        api.get_cluster_stack_events(cluster_name), event_limit))
    streams = collect(report, "log streams", lambda: api.list_cluster_log_streams(cluster_name)) or []
    report["log_group"] = log_group_from_streams(streams)
    report["log_streams"] = relevant_log_streams(streams)
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
    lines.extend(format_events(report.get("failed_events")))
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


# --------------------------------------------------------------------------- image builds

# What the reason of a failed image build names, and what to check; the first match wins. Image Builder's reason
# names the component that failed by its ARN, whose name ParallelCluster gives (pcluster/templates/imagebuilder_stack.py):
# ParallelClusterImage-Script-<n>-<id> for Build.Components[n] of type script, -UpdateOS-, -Test-, and no infix for
# ParallelCluster's own component.
IMAGE_FAILURE_HINTS = (
    (r"component/parallelclusterimage-script-(\d+)-", (
        "Build.Components[{0}] (a script) exited non-zero on the build instance. Its output is in the build log "
        "below (the lines before 'ERROR - Script execution failure'); run the script as root on an instance of the "
        "parent image to reproduce it.")),
    (r"component/parallelclusterimage-updateos-", (
        "Updating the OS packages of the parent image failed (Build.UpdateOsPackages): a package repository the "
        "build instance cannot reach, or a reboot that did not come back. Read the build log.")),
    (r"component/parallelclusterimage-test-", (
        "ParallelCluster's tests of the built image failed. Read the build log for the test that failed.")),
    (r"component/parallelclusterimage-", (
        "ParallelCluster's own component (its cookbook) failed on the build instance: most often a parent image "
        "whose OS this ParallelCluster version does not support, or a build instance that cannot reach the internet "
        "or S3 (Build.SubnetId needs a NAT gateway or the VPC endpoints). Read the build log.")),
    (r"timed ?out", (
        "A step of the build timed out: a component that hangs (waiting for input, a network that does not answer) "
        "or an instance type too small for the build. Read the build log for the last step that ran.")),
)
IMAGE_FAILURE_DEFAULT_HINT = (
    "The build infrastructure could not be created or the build failed before a component ran: the first failed "
    "stack events below give CloudFormation's reason (a permission, a quota, a parent image or instance type the "
    "region does not have).")
# Build log lines worth showing from the tail: errors and what a failing script printed around them.
_LOG_MARKERS = re.compile(r"error|fail|exit ?code|stderr|traceback|fatal", re.IGNORECASE)


def image_failure_hint(*reasons):
    """The hint for the reasons of a failed build (the stack's, Image Builder's)."""
    text = " ".join(reason for reason in reasons if reason).lower()
    for pattern, hint in IMAGE_FAILURE_HINTS:
        match = re.search(pattern, text)
        if match:
            return hint.format(*match.groups())
    return IMAGE_FAILURE_DEFAULT_HINT


def build_log_lines(events, limit=30, width=300):
    """From a build log's last events: the marked lines and the last few, in order, at most ``limit``."""
    messages = [str(e.get("message") or "").rstrip() for e in events or []]
    marked = {i for i, message in enumerate(messages) if _LOG_MARKERS.search(message)}
    keep = sorted(marked | set(range(max(0, len(messages) - 10), len(messages))))[-limit:]
    return [messages[i][:width] for i in keep if messages[i]]


def image_failure_report(api, image_id, image, event_limit=5, log_events=80):
    """Everything a user needs to understand a failed image build, as data plus a readable message."""
    image = image or {}
    stack_reason = image.get("cloudformationStackStatusReason")
    builder_reason = image.get("imagebuilderImageStatusReason")
    report = {
        "image_status": image.get("imageBuildStatus"),
        "stack_status": image.get("cloudformationStackStatus"),
        "stack_status_reason": stack_reason,
        "imagebuilder_status": image.get("imagebuilderImageStatus"),
        "imagebuilder_status_reason": builder_reason,
        "failed_events": [],
        "log_group": (image.get("imageBuildLogsArn") or "").split(":log-group:", 1)[-1] or None,
        "log_streams": [],
        "build_log": [],
        "errors": [],
    }
    report["failed_events"] = collect(report, "stack events", lambda: failed_event_records(
        api.get_image_stack_events(image_id), event_limit)) or []
    reasons = [stack_reason, builder_reason] + [e.get("resource_status_reason") for e in report["failed_events"]]
    report["hint"] = image_failure_hint(*reasons)
    streams = collect(report, "log streams", lambda: api.list_image_log_streams(image_id)) or []
    report["log_group"] = log_group_from_streams(streams) or report["log_group"]
    # The build's own log is named after ParallelCluster's version ("3.16.1/1"); the newest stream first.
    names = [s.get("logStreamName") for s in sorted(streams, key=lambda s: str(s.get("lastEventTimestamp") or ""),
                                                    reverse=True) if s.get("logStreamName")]
    report["log_streams"] = names
    if names:
        report["build_log"] = build_log_lines(collect(report, "the build log", lambda: api.image_log_tail(
            image_id, names[0], log_events)))
    report["message"] = format_image_failure(image_id, api.region, report)
    return report


def format_image_failure(image_id, region, report):
    """The image failure report as the text a user reads in the playbook output."""
    lines = ["Image '%s' is %s (CloudFormation stack %s, Image Builder %s)%s." % (
        image_id, report.get("image_status"), report.get("stack_status"), report.get("imagebuilder_status"),
        " in %s" % region if region else "")]
    for label, key in (("Stack", "stack_status_reason"), ("Image Builder", "imagebuilder_status_reason")):
        if report.get(key):
            lines.append("%s: %s" % (label, report[key]))
    lines.append("What to check: %s" % report["hint"])
    lines.extend(format_events(report.get("failed_events")))
    if report.get("build_log"):
        lines.append("Build log %s (last lines and errors):" % report["log_streams"][0])
        lines.extend("  %s" % line for line in report["build_log"])
    if report.get("log_streams"):
        lines.append("  all of it: pcluster get-image-log-events --image-id %s%s --log-stream-name %s" % (
            image_id, " --region %s" % region if region else "", report["log_streams"][0]))
    else:
        lines.append("Logs: no build log streams found (CloudWatch log group %s)."
                     % (report.get("log_group") or "/aws/imagebuilder/ParallelClusterImage-%s" % image_id))
    lines.append("A failed build is not retried with the same name: delete it (state: absent) or build with "
                 "replace: true once the cause is fixed.")
    for error in report.get("errors") or []:
        lines.append("(%s)" % error)
    return "\n".join(lines)
