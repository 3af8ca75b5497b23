"""Seed moto like the guide's previous chapter, and register ParallelCluster clusters in it.

moto cannot run ParallelCluster's CloudFormation template, so a "created"
cluster is represented by what ParallelCluster itself reads back when it
describes a cluster (pcluster/models/cluster.py, cluster_resources.py,
s3_bucket.py, compute_fleet_status_manager.py):

* a parent-less CloudFormation stack named after the cluster, tagged
  ``parallelcluster:version`` and ``parallelcluster:cluster-name``, whose
  parameters carry ``ResourcesS3Bucket``, ``ArtifactS3RootDirectory``,
  ``ConfigVersion`` (the S3 version id of the original config),
  ``Scheduler``, ``ClusterUser`` and ``OfficialAmi``, and whose one resource
  is the ``HeadNodeSecurityGroup`` (pcluster's update validation reads it);
* ParallelCluster's default bucket ``parallelcluster-<hash>-v1-do-not-delete``
  (versioned, marked bootstrapped) holding the original config at
  ``<artifact dir>/configs/cluster-config.yaml``;
* the DynamoDB table ``parallelcluster-<name>`` with the compute fleet status;
* EC2 instances tagged like ParallelCluster's (head node in the public subnet, compute nodes in the
  private subnet) with the given private IPs; the head node also carries the tags CloudFormation puts on
  the ``HeadNode`` resource of the cluster's stack (``aws:cloudformation:stack-name`` and friends);
* the node table ``parallelcluster-slurm-<name>`` in which ParallelCluster's slurm_resume and clustermgtd
  record the instance behind each Slurm node (``Id`` = node name, ``InstanceId``, ``HeadNodePrivateIp``,
  ``HeadNodeHostname``; a global secondary index ``InstanceId``), filled for the static compute nodes.

Usable on its own (tests and benchmarks add clusters in other regions or with
1000 compute nodes)::

    from moto_cluster import register_cluster
    register_cluster(endpoint_url, "eu-west-1", "big", head_ip="10.1.0.10",
                     compute_count=1000, config=config_dict)
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import re
import secrets
import string
import sys
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "collections"))

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.os_table import (  # noqa: E402  pylint: disable=wrong-import-position
    OS_DEFAULT_USER,
    OS_TABLE,
)

from iam_identities import ADMIN_CREDENTIALS  # noqa: E402  pylint: disable=wrong-import-position

PCLUSTER_VERSION = "3.16.1"
# What a moto server that does not enforce IAM (start_moto_server's, unless told to) accepts; the sandbox's own
# moto enforces it, and client() signs as the sandbox's admin there.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# The template Metadata key that marks a registered cluster's stack (moto_cfn.service refuses its updates).
REGISTRATION_MARK = "SandboxRegistration"
MOTO_ACCOUNT_ID = "123456789012"

# An official-looking ParallelCluster AMI: pcluster searches for
# "aws-parallelcluster-<version>-<os part>-<arch>*" owned by "amazon".
OFFICIAL_AMI_ID = "ami-0a9c3a1e5c16f0b01"
OFFICIAL_AMI_OWNER = "247102896272"


# moto draws its resource ids from a random generator that POST /moto-api/seed?a=N seeds:
# after seeding it with MOTO_RNG_SEED, seed_environment() on a fresh moto 5.2.5 server enforcing IAM
# (whose IAM backend, with AWS's managed policies, is made before the seed) creates these ids.
# `sandbox.py up` renders the cluster config with them while moto is still being seeded, and
# renders again if moto created others (e.g. another moto version or region).
MOTO_RNG_SEED = 42
PREDICTED_SEED_IDS = {
    "us-east-1": {"vpc_id": "vpc-462ddaed16dc0cf0b", "public_subnet_id": "subnet-e9d9136682575250d",
                  "private_subnet_id": "subnet-5fe85df2fbdaa35ad", "security_group_id": "sg-6bb4734865425feea"},
}


def official_ami_record(version: str = PCLUSTER_VERSION, ami_id: str = OFFICIAL_AMI_ID) -> dict:
    """One entry of a MOTO_AMIS_PATH file: the ParallelCluster ubuntu2204 x86_64 AMI."""
    return {
        "ami_id": ami_id,
        "name": f"aws-parallelcluster-{version}-{OS_TABLE['ubuntu2204'].ami_name_part}-x86_64-202511170000 "
                "2025-11-17T00-00-00.000Z",
        "description": f"AWS ParallelCluster AMI for ubuntu2204, slurm-24.11, version {version}",
        "owner_id": OFFICIAL_AMI_OWNER,
        "public": True,
        "virtualization_type": "hvm",
        "architecture": "x86_64",
        "state": "available",
        "platform": None,
        "image_type": "machine",
        "hypervisor": "xen",
        "root_device_name": "/dev/sda1",
        "root_device_type": "ebs",
        "sriov": "simple",
        "creation_date": "2025-11-17T00:00:00.000Z",
    }


@functools.lru_cache(maxsize=64)
def client(service: str, endpoint_url: str, region: str):
    """A boto3 client for the moto server, signed as the sandbox's admin (iam_identities.py: the sandbox's own
    set-up and the tests that deliberately need more than the pcluster user), with few retries; cached,
    since creating a client costs about 0.1 s."""
    # boto3 is imported here, not at the top: `sandbox.py up` starts moto before paying for it.
    import boto3  # pylint: disable=import-outside-toplevel
    from botocore.config import Config  # pylint: disable=import-outside-toplevel

    return boto3.session.Session(region_name=region, **ADMIN_CREDENTIALS).client(
        service, endpoint_url=endpoint_url, config=Config(retries={"max_attempts": 2, "mode": "standard"})
    )


def pcluster_bucket_name(region: str, account_id: str = MOTO_ACCOUNT_ID) -> str:
    """ParallelCluster's default bucket name (S3Bucket.get_bucket_name)."""
    suffix = hashlib.sha256((account_id + region).encode()).hexdigest()[0:16]
    return f"parallelcluster-{suffix}-v1-do-not-delete"


def _tags(mapping: dict) -> list:
    return [{"Key": k, "Value": v} for k, v in mapping.items()]


def bootstrap_locations(region: str, name_prefix: str = "ml-training") -> dict:
    """The bucket and the S3 URLs of the bootstrap scripts seed_environment() creates."""
    bucket = f"{name_prefix}-bootstrap-{MOTO_ACCOUNT_ID}-{region}"
    return {
        "bootstrap_bucket": bucket,
        "head_node_bootstrap_script": f"s3://{bucket}/bootstrap/head-node-bootstrap.sh",
        "compute_node_bootstrap_script": f"s3://{bucket}/bootstrap/compute-node-bootstrap.sh",
    }


def predicted_seed(region: str, name_prefix: str = "ml-training") -> dict | None:
    """What seed_environment(..., rng_seed=MOTO_RNG_SEED) should return on a fresh moto server, if known."""
    ids = PREDICTED_SEED_IDS.get(region)
    return dict(ids, **bootstrap_locations(region, name_prefix)) if ids else None


def seed_environment(endpoint_url: str, region: str, vpc_cidr: str, public_cidr: str, private_cidr: str,
                     name_prefix: str = "ml-training", rng_seed: int | None = None) -> dict:
    """Create what the guide's previous chapter creates: VPC, public and private
    subnets (with internet and NAT gateways), a security group, and an S3 bucket
    holding the head and compute bootstrap scripts. Returns their ids.
    rng_seed seeds moto's id generator first (see PREDICTED_SEED_IDS)."""
    if rng_seed is not None:
        request = urllib.request.Request(f"{endpoint_url}/moto-api/seed?a={int(rng_seed)}", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
    ec2 = client("ec2", endpoint_url, region)
    s3 = client("s3", endpoint_url, region)
    az = f"{region}a"
    vpc_id = ec2.create_vpc(CidrBlock=vpc_cidr, TagSpecifications=[
        {"ResourceType": "vpc", "Tags": _tags({"Name": f"{name_prefix}-vpc"})}])["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    public = ec2.create_subnet(VpcId=vpc_id, CidrBlock=public_cidr, AvailabilityZone=az, TagSpecifications=[
        {"ResourceType": "subnet", "Tags": _tags({"Name": f"{name_prefix}-public"})}])["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vpc_id, CidrBlock=private_cidr, AvailabilityZone=az, TagSpecifications=[
        {"ResourceType": "subnet", "Tags": _tags({"Name": f"{name_prefix}-private"})}])["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    public_rt = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=public_rt, SubnetId=public)
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=eip)["NatGateway"]["NatGatewayId"]
    private_rt = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=private_rt, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    ec2.associate_route_table(RouteTableId=private_rt, SubnetId=private)
    sg = ec2.create_security_group(GroupName=f"{name_prefix}-sg", Description="Cluster nodes (EFA: all traffic within the group)",
                                   VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg}]}])
    ec2.authorize_security_group_egress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg}]}])
    bucket = bootstrap_locations(region, name_prefix)["bootstrap_bucket"]
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    scripts = {}
    for role in ("head", "compute"):
        key = f"bootstrap/{role}-node-bootstrap.sh"
        body = f"#!/bin/bash\n# {role} node bootstrap script (sandbox)\nset -euo pipefail\necho '{role} node configured'\n"
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
        scripts[role] = f"s3://{bucket}/{key}"
    return {
        "vpc_id": vpc_id,
        "public_subnet_id": public,
        "private_subnet_id": private,
        "security_group_id": sg,
        "internet_gateway_id": igw,
        "nat_gateway_id": nat,
        "availability_zone": az,
        "bootstrap_bucket": bucket,
        "head_node_bootstrap_script": scripts["head"],
        "compute_node_bootstrap_script": scripts["compute"],
    }


def upload_node_setup_scripts(endpoint_url: str, region: str, config: dict, script_path: str) -> list:
    """Put the node-setup boot script where the config's OnNodeConfigured steps name it, as deploy.yml does
    before it creates a cluster (module hpc.pcluster.node_setup_script: same content, same sha256 metadata).
    Only at URLs named after the loader's interface (its header: "interface N" -> ...-vN.sh); returns the URLs
    written."""
    with open(script_path, "rb") as handle:
        body = handle.read()
    sha256 = hashlib.sha256(body).hexdigest()
    interface = re.search(rb"^# hpc\.pcluster node-setup loader - interface (\d+)\.$", body, re.M)
    name = "/hpc-pcluster-node-setup-v%s.sh" % (interface.group(1).decode() if interface else "?")
    s3 = client("s3", endpoint_url, region)
    written = []
    queues = (config.get("Scheduling") or {}).get("SlurmQueues") or []
    for queue in queues:
        steps = (((queue.get("CustomActions") or {}).get("OnNodeConfigured") or {}).get("Sequence") or [])
        for step in steps:
            url = step.get("Script", "")
            if url.startswith("s3://") and url.endswith(name) and url not in written:
                bucket, _sep, key = url[len("s3://"):].partition("/")
                s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/x-shellscript",
                              Metadata={"sha256": sha256})
                written.append(url)
    return written


def registered_config(endpoint_url: str, region: str, cluster_name: str) -> dict:
    """The cluster config registered for cluster_name (what ParallelCluster's nodes read as theirs)."""
    cfn = client("cloudformation", endpoint_url, region)
    stack = cfn.describe_stacks(StackName=cluster_name)["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
    body = client("s3", endpoint_url, region).get_object(
        Bucket=params["ResourcesS3Bucket"], Key=f"{params['ArtifactS3RootDirectory']}/configs/cluster-config.yaml",
        VersionId=params["ConfigVersion"])["Body"].read()
    return yaml.safe_load(body)


def fsx_standins(endpoint_url: str, region: str, vpc_id: str, subnet_id: str, security_group_id: str,
                 lustre_id: str, openzfs_volume_id: str, openzfs_file_system_id: str = "fs-0123456789abcdef1") -> dict:
    """The contents of moto_server.py's SANDBOX_FSX_PATH file: an existing FSx for Lustre file
    system and an FSx for OpenZFS volume (with its file system), described as the FSx API does,
    so that pcluster can load a config naming them (moto implements no FSx volumes). Each file
    system gets a network interface in subnet_id with security_group_id (created in moto), as
    pcluster's FSx networking validator expects."""
    import ipaddress
    ec2 = client("ec2", endpoint_url, region)
    # Addresses at the end of the subnet, away from those of the nodes (its start).
    cidr = ipaddress.ip_network(ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["CidrBlock"])
    addresses = iter([str(cidr[-6]), str(cidr[-7])])

    def file_system(fs_id, fs_type, extra):
        eni = ec2.create_network_interface(SubnetId=subnet_id, Groups=[security_group_id], PrivateIpAddress=next(addresses),
                                           Description=f"ENI for FSx {fs_id} (sandbox)")["NetworkInterface"]
        return dict({
            "FileSystemId": fs_id, "FileSystemType": fs_type, "Lifecycle": "AVAILABLE", "OwnerId": MOTO_ACCOUNT_ID,
            "StorageCapacity": 1200, "StorageType": "SSD", "VpcId": vpc_id, "SubnetIds": [subnet_id],
            "NetworkInterfaceIds": [eni["NetworkInterfaceId"]], "DNSName": f"{fs_id}.fsx.{region}.amazonaws.com",
            "ResourceARN": f"arn:aws:fsx:{region}:{MOTO_ACCOUNT_ID}:file-system/{fs_id}"}, **extra)
    return {
        "FileSystems": [
            file_system(lustre_id, "LUSTRE", {"LustreConfiguration": {
                "DeploymentType": "PERSISTENT_2", "PerUnitStorageThroughput": 250, "MountName": "sandbox"}}),
            file_system(openzfs_file_system_id, "OPENZFS", {"OpenZFSConfiguration": {
                "DeploymentType": "SINGLE_AZ_2", "ThroughputCapacity": 160,
                "RootVolumeId": openzfs_volume_id}}),
        ],
        "Volumes": [{
            "VolumeId": openzfs_volume_id, "FileSystemId": openzfs_file_system_id, "VolumeType": "OPENZFS",
            "Lifecycle": "AVAILABLE", "Name": "fsx",
            "ResourceARN": f"arn:aws:fsx:{region}:{MOTO_ACCOUNT_ID}:volume/{openzfs_file_system_id}/{openzfs_volume_id}",
            "OpenZFSConfiguration": {"VolumePath": "/fsx", "DataCompressionType": "NONE"}}],
    }


def warm_up(endpoint_url: str, region: str) -> None:
    """First calls to moto's CloudFormation, DynamoDB and S3 backends (moto sets
    each up on first use, up to about 0.6 s), so that register_cluster is quick."""
    client("cloudformation", endpoint_url, region).list_stacks()
    client("dynamodb", endpoint_url, region).list_tables()
    client("s3", endpoint_url, region).list_buckets()


def ensure_pcluster_bucket(endpoint_url: str, region: str) -> str:
    """ParallelCluster's default bucket of the region, as its first create leaves it (the bucket policy left out:
    moto applies its Deny for the CloudWatch Logs service principal to every caller, pcluster's uploads included)."""
    return _ensure_pcluster_bucket(client("s3", endpoint_url, region), region)


def _ensure_pcluster_bucket(s3, region: str) -> str:
    """ParallelCluster's default bucket, configured as S3BucketFactory leaves it."""
    name = pcluster_bucket_name(region)
    try:
        s3.head_bucket(Bucket=name)
    except s3.exceptions.ClientError:
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        s3.put_object(Bucket=name, Key="parallelcluster/.bootstrapped",
                      Body=json.dumps({"bootstrapped_features": ["basic", "export-logs"]}).encode())
    return name


def _config_text(config) -> str:
    if config is None:
        raise ValueError("config is required: a dict or the YAML text ParallelCluster stores as cluster-config.yaml")
    if isinstance(config, (bytes, str)):
        return config.decode() if isinstance(config, bytes) else config
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def _subnet_for(ec2, subnet_id, ip):
    if subnet_id:
        return subnet_id
    import ipaddress
    addr = ipaddress.ip_address(ip) if ip else None
    for subnet in ec2.describe_subnets()["Subnets"]:
        if addr is None or addr in ipaddress.ip_network(subnet["CidrBlock"]):
            return subnet["SubnetId"]
    raise ValueError(f"no subnet in moto contains {ip}; create one (seed_environment) or pass the subnet id")


def register_cluster(endpoint_url: str, region: str, cluster_name: str, head_ip: str,
                     compute_ips: list | None = None, *, compute_count: int | None = None,
                     config=None, version: str = PCLUSTER_VERSION,
                     queue: str = "compute-gpu", compute_resource: str = "distributed-ml",
                     node_names: list | None = None,
                     head_instance_type: str = "m5.8xlarge", compute_instance_type: str = "g5.8xlarge",
                     public_subnet_id: str | None = None, private_subnet_id: str | None = None,
                     security_group_ids: list | None = None, image_id: str = OFFICIAL_AMI_ID,
                     os_name: str = "ubuntu2204", fleet_status: str = "RUNNING",
                     extra_tags: dict | None = None, head_instance_profile: str | None = None,
                     artifacts: dict | None = None) -> dict:
    """Register a cluster in moto as ParallelCluster leaves a created one.

    ``compute_ips`` gives each compute instance its private IP (one EC2 call per
    instance); without it, ``compute_count`` instances are launched in one call
    with addresses chosen by moto (fast for 1000 nodes). ``config`` is the
    cluster configuration (dict or YAML text) stored as the original config.
    ``node_names`` are the compute nodes' Slurm names, recorded in the node table (default: static
    node names ``<queue>-st-<compute resource>-<n>``). ``head_instance_profile`` names the head node's instance
    profile; ``artifacts`` ({file name: text}) are uploaded beside the config, as pcluster uploads
    ``cluster-config-with-implied-values.yaml`` and ``instance-types-data.json``.
    Returns ids: stack_id, head_instance_id, compute_instance_ids, bucket, config_key,
    config_version, table, node_table, artifact_keys ({file name: key}).
    """
    if compute_ips is None and compute_count is None:
        raise ValueError("give compute_ips or compute_count")
    ec2 = client("ec2", endpoint_url, region)
    s3 = client("s3", endpoint_url, region)
    cfn = client("cloudformation", endpoint_url, region)
    ddb = client("dynamodb", endpoint_url, region)
    text = _config_text(config)

    bucket = _ensure_pcluster_bucket(s3, region)
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _index in range(16))
    artifact_dir = f"parallelcluster/{version}/clusters/{cluster_name}-{suffix}"
    config_key = f"{artifact_dir}/configs/cluster-config.yaml"
    config_version = s3.put_object(Bucket=bucket, Key=config_key, Body=text.encode())["VersionId"]
    artifact_keys = {}
    for name, body in (artifacts or {}).items():
        artifact_keys[name] = f"{artifact_dir}/configs/{name}"
        s3.put_object(Bucket=bucket, Key=artifact_keys[name], Body=body.encode())

    head_subnet = _subnet_for(ec2, public_subnet_id, head_ip)
    vpc_id = ec2.describe_subnets(SubnetIds=[head_subnet])["Subnets"][0]["VpcId"]

    cluster_tags = {"parallelcluster:cluster-name": cluster_name, "parallelcluster:version": version}
    cluster_tags.update(extra_tags or {})
    parameters = {
        "ClusterUser": OS_DEFAULT_USER.get(os_name, "ec2-user"),
        "ResourcesS3Bucket": bucket,
        "ArtifactS3RootDirectory": artifact_dir,
        "Scheduler": "slurm",
        "OfficialAmi": image_id,
        "ConfigVersion": config_version,
    }
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"AWS ParallelCluster Template (sandbox registration of {cluster_name})",
        # moto_cfn refuses to update a registration: it is not ParallelCluster's template (see REGISTRATION_MARK).
        "Metadata": {REGISTRATION_MARK: "registered by sandbox/moto_cluster.py, not created from ParallelCluster's template"},
        "Parameters": {key: {"Type": "String", "Default": value} for key, value in parameters.items()},
        # pcluster's update validation reads the stack's resources and looks up the head node's
        # security group; moto lists a WaitConditionHandle without LogicalResourceId, which breaks it.
        "Resources": {"HeadNodeSecurityGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": f"{cluster_name} head node (sandbox registration)", "VpcId": vpc_id}}},
        "Outputs": {"HeadNodePrivateIP": {"Value": head_ip}, "Scheduler": {"Value": "slurm"}},
    }
    stack_id = cfn.create_stack(
        StackName=cluster_name, TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        Tags=_tags(cluster_tags))["StackId"]
    _wait_created(cfn, stack_id)

    table = f"parallelcluster-{cluster_name}"
    ddb.create_table(TableName=table, AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName=table, Item={"Id": {"S": "COMPUTE_FLEET"}, "Data": {"M": {
        "status": {"S": fleet_status},
        "lastStatusUpdatedTime": {"S": str(datetime.datetime.now(tz=datetime.timezone.utc))}}}})

    attributes = f"{os_name}, slurm, {version}, x86_64"
    base_tags = dict(cluster_tags, **{"parallelcluster:attributes": attributes})
    security_groups = list(security_group_ids or [])

    def launch(node_type, subnet_id, ip, instance_type, count, tags):
        kwargs = {"ImageId": image_id, "MinCount": count, "MaxCount": count, "InstanceType": instance_type,
                  "SubnetId": subnet_id,
                  "TagSpecifications": [{"ResourceType": "instance", "Tags": _tags(tags)}]}
        if node_type == "HeadNode" and head_instance_profile:
            kwargs["IamInstanceProfile"] = {"Name": head_instance_profile}
        if ip:
            kwargs["PrivateIpAddress"] = ip
        if security_groups:
            kwargs["SecurityGroupIds"] = security_groups
        return [i["InstanceId"] for i in ec2.run_instances(**kwargs)["Instances"]]

    head_id = launch("HeadNode", head_subnet, head_ip, head_instance_type, 1,
                     dict(base_tags, **{"Name": "HeadNode", "parallelcluster:node-type": "HeadNode",
                                        "aws:cloudformation:stack-name": cluster_name,
                                        "aws:cloudformation:logical-id": "HeadNode",
                                        "aws:cloudformation:stack-id": stack_id}))[0]
    compute_tags = dict(base_tags, **{"Name": "Compute", "parallelcluster:node-type": "Compute",
                                      "parallelcluster:queue-name": queue,
                                      "parallelcluster:compute-resource-name": compute_resource})
    compute_ids = []
    if compute_ips is not None:
        compute_subnet = _subnet_for(ec2, private_subnet_id, compute_ips[0] if compute_ips else None)
        for ip in compute_ips:
            compute_ids += launch("Compute", compute_subnet, ip, compute_instance_type, 1, compute_tags)
    elif compute_count:
        compute_subnet = _subnet_for(ec2, private_subnet_id, None)
        compute_ids = launch("Compute", compute_subnet, None, compute_instance_type, compute_count, compute_tags)
    names = node_names or [f"{queue}-st-{compute_resource}-{n}" for n in range(1, len(compute_ids) + 1)]
    node_table = register_slurm_nodes(endpoint_url, region, cluster_name, dict(zip(names, compute_ids)), head_ip)
    return {
        "stack_id": stack_id,
        "head_instance_id": head_id,
        "compute_instance_ids": compute_ids,
        "bucket": bucket,
        "artifact_dir": artifact_dir,
        "config_key": config_key,
        "config_version": config_version,
        "table": table,
        "node_table": node_table,
        "artifact_keys": artifact_keys,
    }


def _wait_created(cfn, stack_id: str, timeout: float = 60.0) -> None:
    """The sandbox's CloudFormation creates a stack's resources after CreateStack returns, as AWS does."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        status = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
        if status == "CREATE_COMPLETE":
            return
        if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
            raise RuntimeError(f"registering stack {stack_id}: {status}")
        time.sleep(0.05)


def register_slurm_nodes(endpoint_url: str, region: str, cluster_name: str, nodes: dict, head_ip: str) -> str:
    """Record Slurm node name -> instance id in the cluster's node table as ParallelCluster does
    (pcluster templates/slurm_builder.py creates the table; the node package's
    InstanceManager._store_assigned_hostnames writes the items). Creates the table if needed; returns its name."""
    ddb = client("dynamodb", endpoint_url, region)
    table = f"parallelcluster-slurm-{cluster_name}"
    try:
        ddb.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"},
                                  {"AttributeName": "InstanceId", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[{"IndexName": "InstanceId",
                                     "KeySchema": [{"AttributeName": "InstanceId", "KeyType": "HASH"}],
                                     "Projection": {"ProjectionType": "ALL"}}])
    except ddb.exceptions.ResourceInUseException:
        pass
    head_hostname = "ip-" + head_ip.replace(".", "-")
    items = [{"PutRequest": {"Item": {"Id": {"S": name}, "InstanceId": {"S": instance_id},
                                      "HeadNodePrivateIp": {"S": head_ip}, "HeadNodeHostname": {"S": head_hostname}}}}
             for name, instance_id in nodes.items()]
    for start in range(0, len(items), 25):  # BatchWriteItem takes 25 items at most
        ddb.batch_write_item(RequestItems={table: items[start:start + 25]})
    return table


def deregister_cluster(endpoint_url: str, region: str, cluster_name: str) -> None:
    """Remove what register_cluster created (stack, table, instances); returns once the stack is deleted."""
    import time

    ec2 = client("ec2", endpoint_url, region)
    ids = [i["InstanceId"] for r in ec2.describe_instances(Filters=[
        {"Name": "tag:parallelcluster:cluster-name", "Values": [cluster_name]}])["Reservations"] for i in r["Instances"]]
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
    cfn = client("cloudformation", endpoint_url, region)
    stack_id = cfn.describe_stacks(StackName=cluster_name)["Stacks"][0]["StackId"]
    cfn.delete_stack(StackName=stack_id)
    deadline = time.monotonic() + 60
    while cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] != "DELETE_COMPLETE":
        if time.monotonic() > deadline:
            raise RuntimeError(f"stack {cluster_name} was not deleted within 60 s")
        time.sleep(0.1)
    ddb = client("dynamodb", endpoint_url, region)
    ddb.delete_table(TableName=f"parallelcluster-{cluster_name}")
    try:
        ddb.delete_table(TableName=f"parallelcluster-slurm-{cluster_name}")
    except ddb.exceptions.ResourceNotFoundException:
        pass


# --------------------------------------------------------------------------- a moto server of one's own

def start_moto_server(work_dir, log_path=None, timeout: float = 30.0, env: dict | None = None):
    """Start sandbox/moto_server.py on a free 127.0.0.1 port as `sandbox.py up` starts it (the ParallelCluster
    AMI alone, IAM's managed policies, the FSx descriptions from <work_dir>/moto-fsx.json), in a process
    group of its own, with env added to its environment; returns (process, endpoint URL) once it answers.
    Stop it with stop_moto_server."""
    import os
    import socket
    import subprocess
    import time

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    amis = work_dir / "moto-amis.json"
    amis.write_text(json.dumps([official_ami_record()]))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true", MOTO_AMIS_PATH=str(amis),
               SANDBOX_FSX_PATH=str(work_dir / "moto-fsx.json"), **(env or {}))
    with open(log_path or work_dir / "moto.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent / "moto_server.py"),
                                 "-H", "127.0.0.1", "-p", str(port)], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}; see {log_path or work_dir / 'moto.log'}")
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read(1)
            return proc, url
        except OSError:
            time.sleep(0.05)
    stop_moto_server(proc)
    raise RuntimeError(f"moto server at {url} did not answer within {timeout:.0f} s")


def stop_moto_server(proc) -> None:
    """Stop a server start_moto_server started (its process group)."""
    import os
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def prepare_account(endpoint_url: str, region: str, work_dir, vpc_cidr: str = "10.100.0.0/16",
                    public_cidr: str = "10.100.0.0/24", private_cidr: str = "10.100.16.0/20") -> dict:
    """What `sandbox.py up` puts in moto before a cluster exists: the seeded network and bootstrap bucket
    (with moto's ids seeded as up seeds them), the FSx descriptions, ParallelCluster's default bucket."""
    seed = seed_environment(endpoint_url, region, vpc_cidr, public_cidr, private_cidr, rng_seed=MOTO_RNG_SEED)
    (Path(work_dir) / "moto-fsx.json").write_text(json.dumps(fsx_standins(
        endpoint_url, region, seed["vpc_id"], seed["private_subnet_id"], seed["security_group_id"],
        "fs-0123456789abcdef0", "fsvol-0123456789abcdef0")))
    seed["pcluster_bucket"] = _ensure_pcluster_bucket(client("s3", endpoint_url, region), region)
    return seed


# --------------------------------------------------------------------------- the head node's side of a create

HEAD_NODE_LAUNCH_TEMPLATE = "HeadNodeLaunchTemplate"
WAIT_CONDITION_HANDLE_FILE = "/opt/parallelcluster/tmp/wait_condition_handle.txt"


def wait_condition_url(endpoint_url: str, region: str, cluster_name: str) -> str:
    """The URL the head node signals, read as cfn-init reads it: the file deployConfigFiles writes from the
    head node launch template's metadata (DescribeStackResource)."""
    detail = client("cloudformation", endpoint_url, region).describe_stack_resource(
        StackName=cluster_name, LogicalResourceId=HEAD_NODE_LAUNCH_TEMPLATE)["StackResourceDetail"]
    files = json.loads(detail["Metadata"])["AWS::CloudFormation::Init"]["deployConfigFiles"]["files"]
    return files[WAIT_CONDITION_HANDLE_FILE]["content"]


def pending_wait_condition_url(endpoint_url: str, region: str, cluster_name: str, timeout: float = 60.0) -> str:
    """The handle URL of the head node's wait condition, once the stack waits for it and the head node
    exists: what the head node reads after its launch, or after an update changed the launch template's
    metadata (cfn-hup)."""
    import time

    cfn = client("cloudformation", endpoint_url, region)
    deadline = time.monotonic() + timeout
    while True:
        resources = cfn.list_stack_resources(StackName=cluster_name)["StackResourceSummaries"]
        waiting = {r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::CloudFormation::WaitCondition"
                   and r["ResourceStatus"] == "CREATE_IN_PROGRESS"}
        ready = {r["LogicalResourceId"] for r in resources if r["ResourceStatus"].endswith("_COMPLETE")}
        if waiting and {HEAD_NODE_LAUNCH_TEMPLATE, "HeadNode"} <= ready:
            url = wait_condition_url(endpoint_url, region, cluster_name)
            if url in waiting:
                return url
        if time.monotonic() > deadline:
            raise TimeoutError(f"stack {cluster_name} does not wait for the head node's signal")
        time.sleep(0.1)


def signal_wait_condition(url: str, success: bool = True, reason: str = "", unique_id: str = "",
                          data: str = "") -> None:
    """What cfn-signal sends: PUT the JSON document to the handle's URL."""
    body = json.dumps({"Status": "SUCCESS" if success else "FAILURE", "Reason": reason or
                       ("Configuration Complete" if success else "Configuration failed"),
                       "UniqueId": unique_id, "Data": data}).encode()
    request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def reserve_address(endpoint_url: str, region: str, subnet_id: str, ip: str) -> str:
    """A network interface holding ip in moto (so that moto gives it to no instance): the sandbox's VPC router and
    endpoint (`sandbox.py up --no-cluster`). Returns its id."""
    return client("ec2", endpoint_url, region).create_network_interface(
        SubnetId=subnet_id, PrivateIpAddress=ip,
        Description="the sandbox's VPC network: its bridge, package proxy and AWS endpoint")["NetworkInterface"][
        "NetworkInterfaceId"]
