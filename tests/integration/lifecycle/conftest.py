"""Helpers for the lifecycle modules against the sandbox's moto with the real pcluster.

Throwaway clusters are registered (sandbox/moto_cluster.py) in a region of
their own (LIFECYCLE_REGION), seeded like the sandbox region, so that tests
listing the sandbox region keep seeing only the sandbox cluster; each is
removed again. The default sandbox cluster is only read, never changed.
"""

from __future__ import annotations

import secrets

import pytest
import yaml

# sandbox/moto_cluster.py
import moto_cluster

from ansible_collections.hpc.pcluster.tests.integration.lifecycle.lifecycle_helpers import (
    LIFECYCLE_REGION,
    lifecycle_config,
    run_playbook,
)


@pytest.fixture(name="playbook")
def playbook_fixture(sandbox, tmp_path):
    """playbook(*steps) -> PlaybookRun."""
    return lambda *steps, **kwargs: run_playbook(sandbox, tmp_path, list(steps), **kwargs)


@pytest.fixture(scope="session", name="lifecycle_region")
def lifecycle_region_fixture(sandbox):
    """LIFECYCLE_REGION seeded like the sandbox region (VPC, subnets, security group); returns the ids."""
    ec2 = moto_cluster.client("ec2", sandbox.endpoint_url, LIFECYCLE_REGION)
    existing = ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["lifecycle-public", "lifecycle-private"]}])["Subnets"]
    if len(existing) < 2:
        return moto_cluster.seed_environment(sandbox.endpoint_url, LIFECYCLE_REGION, "10.210.0.0/16", "10.210.0.0/24", "10.210.1.0/24", name_prefix="lifecycle")
    by_name = {next(t["Value"] for t in s["Tags"] if t["Key"] == "Name"): s for s in existing}
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["lifecycle-sg"]}])["SecurityGroups"]
    return {
        "vpc_id": by_name["lifecycle-public"]["VpcId"],
        "public_subnet_id": by_name["lifecycle-public"]["SubnetId"],
        "private_subnet_id": by_name["lifecycle-private"]["SubnetId"],
        "security_group_id": groups[0]["GroupId"],
    }


def free_head_ip(endpoint_url, subnet_id):
    """The lowest address of the lifecycle public subnet that no instance or interface in moto holds."""
    ec2 = moto_cluster.client("ec2", endpoint_url, LIFECYCLE_REGION)
    subnet = [{"Name": "subnet-id", "Values": [subnet_id]}]
    used = {
        instance.get("PrivateIpAddress")
        for reservation in ec2.describe_instances(Filters=subnet)["Reservations"]
        for instance in reservation["Instances"]
    }
    used |= {eni.get("PrivateIpAddress") for eni in ec2.describe_network_interfaces(Filters=subnet)["NetworkInterfaces"]}
    return next(ip for ip in ("10.210.0.%d" % host for host in range(20, 250)) if ip not in used)


@pytest.fixture(name="throwaway_cluster")
def throwaway_cluster_fixture(sandbox, lifecycle_region):
    """register(config=None) -> (name, config): a cluster registered in moto for one test, removed afterwards."""
    names = []

    def register(config=None, fleet_status="RUNNING"):
        name = "lifecycle-%s" % secrets.token_hex(3)
        config = config or lifecycle_config(lifecycle_region)
        moto_cluster.register_cluster(
            sandbox.endpoint_url, LIFECYCLE_REGION, name, free_head_ip(sandbox.endpoint_url, lifecycle_region["public_subnet_id"]), compute_count=1,
            config=yaml.safe_dump(config, sort_keys=False),
            public_subnet_id=lifecycle_region["public_subnet_id"], private_subnet_id=lifecycle_region["private_subnet_id"],
            fleet_status=fleet_status,
        )
        names.append(name)
        return name, config

    yield register
    for name in names:
        try:
            moto_cluster.deregister_cluster(sandbox.endpoint_url, LIFECYCLE_REGION, name)
        except Exception:  # pylint: disable=broad-except
            pass  # already deleted by the test
