"""cluster/fleet.py: fleet targets, the running-jobs guard, and the head-node tag on moto's EC2 (in-process)."""

from __future__ import annotations

import pytest
from botocore.stub import ANY

from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.fleet import (
    FLEET_STOP_TAG,
    FleetStopTag,
    fleet_plan,
    jobs_guard_refusal,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.client import PclusterApi
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError


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


def test_jobs_guard():
    assert jobs_guard_refusal("c1", 0, False) is None
    assert jobs_guard_refusal("c1", None, True) is None and jobs_guard_refusal("c1", 5, True) is None
    assert "3 Slurm job(s) are not finished" in jobs_guard_refusal("c1", 3, False)
    unknown = jobs_guard_refusal("c1", None, False)
    assert "nobody counted the Slurm jobs" in unknown and "force_fleet_stop: true" in unknown


def stubbed_ec2():
    """A real botocore EC2 client whose answers are stubbed: botocore checks each call against the EC2 API model."""
    import boto3  # pylint: disable=import-outside-toplevel
    from botocore.stub import Stubber  # pylint: disable=import-outside-toplevel

    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    return client, Stubber(client)


def test_tag_is_set_read_and_removed_on_the_head_node():
    client, stub = stubbed_ec2()
    head = "i-0123456789abcdef0"
    filters = [{"Name": "resource-id", "Values": [head]}, {"Name": "key", "Values": [FLEET_STOP_TAG]}]
    stub.add_response("describe_tags", {"Tags": []}, {"Filters": filters})
    stub.add_response("create_tags", {}, {"Resources": [head], "Tags": [{"Key": FLEET_STOP_TAG, "Value": ANY}]})
    stub.add_response("describe_tags", {"Tags": [{"Key": FLEET_STOP_TAG, "Value": "2026-11-30T23:00:00Z", "ResourceId": head,
                                                  "ResourceType": "instance"}]}, {"Filters": filters})
    stub.add_response("delete_tags", {}, {"Resources": [head], "Tags": [{"Key": FLEET_STOP_TAG}]})
    api = PclusterApi(region="us-east-1")
    tag = FleetStopTag(api, ec2=client)

    with stub:
        assert tag.read(head) is None
        tag.set(head)
        assert tag.read(head) == "2026-11-30T23:00:00Z"
        tag.remove(head)
    stub.assert_no_pending_responses()
    assert api.calls == {"ec2.describe_tags": 2, "ec2.create_tags": 1, "ec2.delete_tags": 1}


def test_tag_errors_are_pcluster_api_errors():
    client, stub = stubbed_ec2()
    stub.add_client_error("create_tags", service_error_code="UnauthorizedOperation", http_status_code=403)
    tag = FleetStopTag(PclusterApi(region="us-east-1"), ec2=client)

    with stub, pytest.raises(PclusterApiError) as info:
        tag.set("i-0123456789abcdef0")
    assert (info.value.operation, info.value.aws_code, info.value.kind) == ("ec2.create_tags", "UnauthorizedOperation", "denied")
    assert tag.read(None) is None
