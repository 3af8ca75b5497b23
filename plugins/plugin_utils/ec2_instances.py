# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Cluster instances from AWS: the boto3 session and clients, one paginated DescribeInstances, the kept record."""

from __future__ import annotations

from ansible.errors import AnsibleError

# DescribeInstances page size (the largest EC2 accepts): fewer round trips on large clusters.
PAGE_SIZE = 1000
ACCESS_DENIED_CODES = ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException")


def boto3_session(profile):
    """A boto3 session for the profile (None: the default chain); AnsibleError when boto3 or the profile is missing."""
    try:
        import boto3
        import botocore.exceptions
    except ImportError as e:
        raise AnsibleError("hpc.pcluster.nodes needs boto3 and botocore on the controller: %s" % e)
    try:
        return boto3.session.Session(profile_name=profile)
    except botocore.exceptions.ProfileNotFound as e:
        raise AnsibleError("hpc.pcluster.nodes: profile: %s; set 'profile' to one of the configured profiles" % e)


def regional_clients(session, service, regions, endpoint_url, profile=None):
    """{region: boto3 client} for one service; AnsibleError when no credentials can be found.

    Made in the caller's thread: creating clients from one session is not thread-safe.
    """
    import botocore.config

    try:
        credentials = session.get_credentials()
    except Exception as e:  # botocore raises several unrelated types for a broken credential setup
        raise AnsibleError("hpc.pcluster.nodes: cannot load AWS credentials: %s" % e)
    if credentials is None:
        raise AnsibleError(
            "hpc.pcluster.nodes: no AWS credentials found%s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or 'profile' / AWS_PROFILE, or run on an instance with an IAM role"
            % (" for profile %r" % profile if profile else "")
        )
    config = botocore.config.Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=10,
        read_timeout=120,
        user_agent_extra="hpc.pcluster.nodes",
    )
    return {
        region: session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)
        for region in regions
    }


def instance_record(instance, region, account_id=None):
    """The few fields of a DescribeInstances entry the inventory needs (what the cache stores); account_id is its
    reservation's owner."""
    record = {
        "instance_id": instance["InstanceId"],
        "instance_type": instance.get("InstanceType"),
        "image_id": instance.get("ImageId"),
        "private_ip_address": instance.get("PrivateIpAddress"),
        "public_ip_address": instance.get("PublicIpAddress"),
        "private_dns_name": instance.get("PrivateDnsName"),
        "public_dns_name": instance.get("PublicDnsName"),
        "availability_zone": (instance.get("Placement") or {}).get("AvailabilityZone"),
        "instance_state": (instance.get("State") or {}).get("Name"),
        "aws_region": region,
        "aws_account_id": account_id,
        "tags": {tag["Key"]: tag.get("Value", "") for tag in instance.get("Tags") or ()},
    }
    launch_time = instance.get("LaunchTime")
    if launch_time is not None:
        record["launch_time"] = launch_time.isoformat() if hasattr(launch_time, "isoformat") else str(launch_time)
    return record


def describe_instance_records(client, region, filters, page_size=None):
    """Records of every instance DescribeInstances returns for the filters, all pages read."""
    paginator = client.get_paginator("describe_instances")
    records = []
    for page in paginator.paginate(Filters=filters, PaginationConfig={"PageSize": page_size or PAGE_SIZE}):
        for reservation in page.get("Reservations", ()):
            for instance in reservation.get("Instances", ()):
                records.append(instance_record(instance, region, reservation.get("OwnerId")))
    return records


def aws_error(error, permissions):
    """AnsibleError for a botocore error: the service's message and code, and the permissions on access denied."""
    import botocore.exceptions

    if isinstance(error, botocore.exceptions.ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code", "ClientError")
        return AnsibleError("%s (%s)%s" % (
            details.get("Message", str(error)), code,
            "; the credentials need %s" % permissions if code in ACCESS_DENIED_CODES else ""))
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return AnsibleError("%s: set AWS credentials or 'profile'" % error)
    return AnsibleError(str(error))
