"""Lambda-backed custom resources, answered as ParallelCluster's functions answer them.

There is no Lambda runtime here: a custom resource's ServiceToken must name a Lambda function that
exists in moto (the template's own ``AWS::Lambda::Function``), and the function's handler says which
of ParallelCluster's functions it is. What they do is taken from ParallelCluster 3.16.1's
``pcluster/resources/custom_resources/custom_resources_code/cleanup_resources.py`` (with crhelper):

* Create and Update do nothing and succeed; crhelper names the physical resource
  ``<stack name>_<logical id>_<8 random characters>`` on Create and keeps it on Update; no Data.
* Delete runs the resource's ``Action``:
  ``DELETE_S3_ARTIFACTS`` deletes every object and object version under
  ``<ArtifactS3RootDirectory>/`` in ``ResourcesS3Bucket`` (a missing bucket is only a warning;
  bucket ``NONE`` is skipped); ``TERMINATE_EC2_INSTANCES`` terminates every pending, running,
  stopping or stopped instance tagged ``parallelcluster:cluster-name=<StackName>`` and waits until
  none is shutting down (the function's fixed 10 s and 30 s sleeps, which give EC2 time, are left
  out: moto terminates at once); ``DELETE_DNS_RECORDS`` deletes the A records ending with
  ``ClusterDNSDomain`` from hosted zone ``ClusterHostedZone`` (an empty id fails). Any other action
  fails with "Unsupported action <action>".

As on AWS, the request is asynchronous: the function answers after ``SANDBOX_CFN_LAMBDA_SECONDS``
(1 s by default), and the resource stays in progress meanwhile.
"""

from __future__ import annotations

import logging
import os
import random
import string
import threading
import time

from moto.awslambda.utils import get_backend as lambda_backend
from moto.ec2.models import ec2_backends
from moto.route53.models import route53_backends
from moto.s3.models import s3_backends
from moto.utilities.utils import get_partition

from .resources import Driver, ResourceFailed, UnknownAttribute

LOG = logging.getLogger("moto_cfn")
# How long a function takes to answer: the request goes out, the stack waits for the response.
LAMBDA_SECONDS = float(os.environ.get("SANDBOX_CFN_LAMBDA_SECONDS", "1"))


def crhelper_physical_id(stack_id: str, logical_id: str) -> str:
    """crhelper's generate_physical_id: <stack name>_<logical id>_<8 of A-Z0-9>."""
    suffix = "".join(random.choices(string.ascii_uppercase + string.digits, k=8))  # noqa: S311
    return "_".join([stack_id.split("/")[1], logical_id, suffix])


def _delete_s3_artifacts(ctx, props):
    bucket_name, directory = props.get("ResourcesS3Bucket"), props.get("ArtifactS3RootDirectory")
    if bucket_name == "NONE":
        return
    backend = s3_backends[ctx.account_id][get_partition(ctx.region)]
    if bucket_name not in backend.buckets:
        LOG.warning("S3 bucket %s not found. Bucket was probably manually deleted.", bucket_name)
        return
    bucket = backend.buckets[bucket_name]
    prefix = f"{directory}/"
    for key_name in [k for k in list(bucket.keys.keys()) if k.startswith(prefix)]:
        for version in list(bucket.keys.getlist(key_name)):
            backend.delete_object(bucket_name, key_name, version_id=getattr(version, "version_id", None))
        if key_name in bucket.keys:
            backend.delete_object(bucket_name, key_name)


def _terminate_cluster_nodes(ctx, props):
    stack_name = props.get("StackName")
    ec2 = ec2_backends[ctx.account_id][ctx.region]
    wanted = {"tag:parallelcluster:cluster-name": [stack_name],
              "instance-state-name": ["pending", "running", "stopping", "stopped"]}
    ids = [i.id for r in ec2.describe_instances(filters=wanted) for i in r.instances]
    if ids:
        ec2.terminate_instances(ids)
    shutting_down = {"tag:parallelcluster:cluster-name": [stack_name], "instance-state-name": ["shutting-down"]}
    if any(r.instances for r in ec2.describe_instances(filters=shutting_down)):
        raise ResourceFailed("instances of the cluster are still shutting down")


def _delete_dns_records(ctx, props):
    zone_id, domain = props.get("ClusterHostedZone"), props.get("ClusterDNSDomain")
    if not zone_id:
        raise ResourceFailed("Hosted Zone ID is empty")
    backend = route53_backends[ctx.account_id][get_partition(ctx.region)]
    zone = backend.get_hosted_zone(zone_id)
    for record in [r for r in zone.rrsets if r.type == "A" and r.name.endswith(domain)]:
        zone.delete_rrset({"Name": record.name, "Type": "A"})


CLEANUP_ACTIONS = {
    "DELETE_S3_ARTIFACTS": _delete_s3_artifacts,
    "TERMINATE_EC2_INSTANCES": _terminate_cluster_nodes,
    "DELETE_DNS_RECORDS": _delete_dns_records,
}


def cleanup_resources(ctx, request_type, props):
    """ParallelCluster's cleanup_resources.handler: returns the response's Data."""
    if request_type in ("Create", "Update"):
        return {}
    action = props.get("Action")
    if action not in CLEANUP_ACTIONS:
        raise ResourceFailed(f"Unsupported action {action}")
    CLEANUP_ACTIONS[action](ctx, props)
    return {}


HANDLERS = {"cleanup_resources.handler": cleanup_resources}


class CustomResourceDriver(Driver):
    """AWS::CloudFormation::CustomResource and Custom::*: a request to the ServiceToken's function."""

    UPDATE_REPLACES = ("ServiceToken",)

    def _handler(self, ctx, res, props):
        token = props.get("ServiceToken")
        if not token:
            raise ResourceFailed("Property ServiceToken cannot be empty.")
        try:
            function = lambda_backend(ctx.account_id, ctx.region).get_function(token)
        except Exception as exc:
            raise ResourceFailed(f"Invalid service token: {token}") from exc
        handler = HANDLERS.get(function.handler)
        if handler is None:
            raise ResourceFailed(f"Received response status [FAILED] from custom resource. Message returned: "
                                 f"the sandbox runs no Lambda code and answers only ParallelCluster's functions "
                                 f"({', '.join(sorted(HANDLERS))}), not {function.handler} (RequestId: {res.logical_id})")
        return handler

    def _request(self, ctx, res, request_type):
        """Send the request; the function answers after LAMBDA_SECONDS (CloudFormation waits for the
        response, as it waits for the function's call to its ResponseURL)."""
        handler = self._handler(ctx, res, res.properties)
        outcome = {}

        def invoke():
            time.sleep(LAMBDA_SECONDS)
            try:
                outcome["data"] = handler(ctx, request_type, res.properties)
            except Exception as exc:  # pylint: disable=broad-except
                LOG.info("custom resource %s: %s failed: %s", res.logical_id, request_type, exc)
                outcome["error"] = str(exc)

        worker = threading.Thread(target=invoke, name=f"lambda-{res.logical_id}", daemon=True)
        worker.start()

        def poll():
            if worker.is_alive():
                return False
            if "error" in outcome:
                raise ResourceFailed(f"Received response status [FAILED] from custom resource. Message returned: "
                                     f"{outcome['error']} (RequestId: {res.logical_id})")
            res.data["response"] = outcome.get("data") or {}
            return True

        return poll

    def create(self, ctx, res):
        res.physical_id = crhelper_physical_id(ctx.stack.stack_id, res.logical_id)
        return self._request(ctx, res, "Create")

    def update(self, ctx, res, old_properties):
        return self._request(ctx, res, "Update")

    def delete(self, ctx, res):
        return self._request(ctx, res, "Delete")

    def get_att(self, res, name):
        data = res.data.get("response") or {}
        if name not in data:
            raise UnknownAttribute(name)
        return data[name]
