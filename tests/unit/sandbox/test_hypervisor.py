"""What the sandbox's hypervisor reads of an instance (sandbox/hypervisor.py), from what the sandbox registers
as ParallelCluster's template would (sandbox/pcluster_resources.py)."""

import base64
import datetime
import json

import hypervisor
import pcluster_resources

CLUSTER = {"name": "demo", "region": "eu-west-1", "stack_id": "arn:aws:cloudformation:eu-west-1:123456789012:stack/demo/x",
           "bucket": "parallelcluster-abc-v1-do-not-delete", "config_key": "k/configs/cluster-config-with-implied-values.yaml",
           "config_version": "v1", "head_ip": "10.1.0.10", "os": "ubuntu2204", "user": "ubuntu",
           "instance_types_key": "k/configs/instance-types-data.json"}
QUEUE = {"Name": "q", "ComputeResources": [{"Name": "cr", "InstanceType": "g5.8xlarge", "Efa": {"Enabled": True}}],
         "ComputeSettings": {"LocalStorage": {"EphemeralVolume": {"MountDir": "/scratch"}}}}


def test_fn_sub_substitutes_names_and_keeps_escaped_ones():
    text = "a=${A} b=${AWS::Region} c=${!literal} d=${Unknown}"
    assert pcluster_resources.fn_sub(text, {"A": 1, "AWS::Region": "r"}) == "a=1 b=r c=${literal} d=NONE"


def test_the_compute_user_data_carries_the_dna_the_hypervisor_reads_back():
    dna = pcluster_resources.compute_dna(dict(CLUSTER), QUEUE, QUEUE["ComputeResources"][0])
    encoded = pcluster_resources.user_data({"DnaJson": json.dumps(dna), "ExtraJson": json.dumps({"cluster": {"extra": "x"}}),
                                            "Timeout": "7200", "PclusterTmpDir": "/opt/parallelcluster/tmp"})
    text = base64.b64decode(encoded).decode()
    assert "Content-Type: multipart/mixed" in text and "shutdown -h now" in text  # ParallelCluster's own user data
    read = hypervisor.dna_from_user_data(encoded)
    assert read["cluster"] == dict(dna["cluster"], extra="x")
    assert read["cluster"]["node_type"] == "ComputeFleet" and read["cluster"]["scheduler_queue_name"] == "q"
    assert read["cluster"]["slurm_ddb_table"] == "parallelcluster-slurm-demo"
    assert hypervisor.user_data_timeout(encoded) == 7200


def test_an_instance_without_parallelcluster_user_data_has_no_dna():
    assert hypervisor.dna_from_user_data(None) is None
    assert hypervisor.dna_from_user_data(base64.b64encode(b"#!/bin/sh\necho hello\n").decode()) is None
    assert hypervisor.user_data_timeout(None) == hypervisor.DEFAULT_BOOTSTRAP_TIMEOUT


def test_head_dna_names_the_artifacts_a_head_node_reads():
    dna = pcluster_resources.head_dna(CLUSTER, {"DevSettings": {"Timeouts": {"ComputeNodeBootstrapTimeout": 600}}})["cluster"]
    assert dna["node_type"] == "HeadNode" and dna["ddb_table"] == "parallelcluster-demo"
    assert dna["cluster_config_s3_key"].endswith("cluster-config-with-implied-values.yaml")
    assert dna["instance_types_data_s3_key"].endswith("instance-types-data.json")
    assert dna["compute_node_bootstrap_timeout"] == 600
    assert pcluster_resources.head_dna(CLUSTER, {})["cluster"]["compute_node_bootstrap_timeout"] == 1800


def test_the_metadata_of_an_instance():
    instance = {"InstanceId": "i-1", "PrivateIpAddress": "10.1.16.4", "Placement": {"AvailabilityZone": "eu-west-1a"},
                "InstanceType": "g5.8xlarge", "ImageId": "ami-1", "LaunchTime": datetime.datetime(2026, 12, 1, 10, 0, 0),
                "IamInstanceProfile": {"Arn": "arn:aws:iam::123456789012:instance-profile/p"}}
    assert hypervisor.imds_record(instance, "eu-west-1", 42, "ip-10-1-16-4") == {
        "instance_id": "i-1", "netns": "/proc/42/ns/net", "private_ip": "10.1.16.4", "hostname": "ip-10-1-16-4",
        "region": "eu-west-1", "availability_zone": "eu-west-1a", "instance_type": "g5.8xlarge", "ami_id": "ami-1",
        "instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/p"}
    document = hypervisor.identity_document(instance, "eu-west-1")
    assert document["instanceId"] == "i-1" and document["privateIp"] == "10.1.16.4"
    assert document["pendingTime"] == "2026-12-01T10:00:00Z"


def test_hash_suffix_of_a_node_group():
    assert pcluster_resources.hash_suffix("HeadNode") == "HeadNode"
    suffix = pcluster_resources.hash_suffix("compute-gpu")
    assert len(suffix) == 16 and suffix[0].isupper() or suffix[0].isdigit()
