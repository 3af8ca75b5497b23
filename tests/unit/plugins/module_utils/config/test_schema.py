"""ParallelCluster's schema run offline (plugins/module_utils/config_schema.py): paths, messages, no AWS call."""

from __future__ import annotations

import copy
import pathlib
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.config import rules as config_rules
from ansible_collections.hpc.pcluster.plugins.module_utils.config import schema as config_schema
from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import format_path
from ansible_collections.hpc.pcluster.tests.unit.fixtures.guide.guide import guide_config, valid_guide_config

COLLECTIONS = pathlib.Path(__file__).resolve().parents[5] / "collections"


def paths(problems):
    return [p["path"] for p in problems]


def test_pcluster_schema_alone_names_the_fsx_path():
    problems = config_schema.schema_problems(guide_config(), "ml-training-cluster")
    assert paths(problems) == ["SharedStorage[1].FsxLustreSettings.DeploymentType"]
    assert problems[0]["message"].startswith("DeploymentType cannot be specified")


def test_nested_marshmallow_messages_become_dotted_indexed_paths():
    messages = {"Scheduling": {"SlurmQueues": {0: {"ComputeResources": {1: {"MinCount": ["Not a valid integer."]}},
                                                   "Networking": {"SubnetIds": {0: ["String does not match."]}}}}},
                "_schema": ["top level"]}
    flat = [(format_path(p), m) for p, m in config_schema.flatten_messages(messages)]
    assert flat == [
        ("Scheduling.SlurmQueues[0].ComputeResources[1].MinCount", "Not a valid integer."),
        ("Scheduling.SlurmQueues[0].Networking.SubnetIds[0]", "String does not match."),
        ("", "top level"),
    ]


def test_schema_type_errors_are_reported_with_paths():
    config = copy.deepcopy(valid_guide_config())
    config["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MaxCount"] = "two"
    config["HeadNode"]["LocalStorage"]["RootVolume"]["DeleteOnTermination"] = "maybe"
    problems = config_schema.schema_problems(config, "ml-training-cluster")
    assert sorted(paths(problems)) == [
        "HeadNode.LocalStorage.RootVolume.DeleteOnTermination",
        "Scheduling.SlurmQueues[0].ComputeResources[0].MaxCount",
    ]
    assert [p["fix"] for p in problems if p["path"].endswith("MaxCount")] == ["Use a whole number."]


def test_an_aws_call_during_the_schema_check_is_refused_before_it_is_sent():
    import boto3

    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y",
                          endpoint_url="http://127.0.0.1:9")
    with config_schema.no_aws_calls(), pytest.raises(config_schema.SchemaNeedsAws) as refused:
        client.describe_capacity_reservations(CapacityReservationIds=["cr-0123456789abcdef0"])
    assert refused.value.operation == "DescribeCapacityReservations"


def _config_with_every_aws_backed_part():
    """Parts whose pcluster objects look things up in AWS: capacity reservations, capacity blocks, several
    instance types, login nodes, a custom AMI, an existing placement group, EFS/EBS/FSx storage."""
    config = valid_guide_config()
    queue = config["Scheduling"]["SlurmQueues"][0]
    queue["CapacityReservationTarget"] = {"CapacityReservationId": "cr-0123456789abcdef1"}
    queue["ComputeResources"][0]["CapacityReservationTarget"] = {"CapacityReservationId": "cr-0123456789abcdef0"}
    flexible = [{"InstanceType": "g5.xlarge"}, {"InstanceType": "g5.2xlarge"}]
    queue["ComputeResources"].append({"Name": "flex", "Instances": flexible, "MaxCount": 4})
    config["Scheduling"]["SlurmSettings"]["ScaledownIdletime"] = 10  # -1 is refused with dynamic nodes
    queue["Networking"]["PlacementGroup"] = {"Enabled": True, "Name": "existing-group"}
    config["Scheduling"]["SlurmQueues"].append({
        "Name": "block", "CapacityType": "CAPACITY_BLOCK", "Networking": {"SubnetIds": ["subnet-0fedcba9876543210"]},
        "ComputeResources": [{"Name": "p5", "InstanceType": "p5.48xlarge", "MinCount": 1, "MaxCount": 1,
                              "CapacityReservationTarget": {"CapacityReservationId": "cr-0123456789abcdef2"}}]})
    config["Image"]["CustomAmi"] = "ami-0123456789abcdef0"
    config["LoginNodes"] = {"Pools": [{"Name": "login", "InstanceType": "t3.large", "Count": 1,
                                       "Networking": {"SubnetIds": ["subnet-0123456789abcdef0"]}}]}
    config["SharedStorage"].append({"Name": "efs", "StorageType": "Efs", "MountDir": "/efs",
                                    "EfsSettings": {"FileSystemId": "fs-0123456789abcdef9"}})
    config["SharedStorage"].append({"Name": "ebs", "StorageType": "Ebs", "MountDir": "/ebs",
                                    "EbsSettings": {"VolumeId": "vol-0123456789abcdef0"}})
    return config


def test_the_offline_check_passes_configs_that_name_aws_resources_without_asking_aws():
    problems, schema_checked, note = config_rules.validate_config(_config_with_every_aws_backed_part(), "ml")
    assert (problems, schema_checked, note) == ([], True, "")


@pytest.fixture()
def listener():
    """A TCP port that counts connections: the poisoned AWS endpoint."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _address = server.accept()
            except OSError:
                continue
            accepted.append(conn)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def _validate_in_a_fresh_process(config, env):
    code = textwrap.dedent("""
        import json, sys
        from ansible_collections.hpc.pcluster.plugins.module_utils.config.rules import validate_config
        print(json.dumps(validate_config(json.loads(sys.stdin.read()), "ml")))
    """)
    import json

    return subprocess.run([sys.executable, "-c", code], input=json.dumps(config), capture_output=True, text=True,
                          env=dict(env, PYTHONPATH=str(COLLECTIONS)), timeout=120, check=False)


@pytest.mark.parametrize("credentials", [False, True], ids=["no credentials", "credentials"])
def test_offline_check_makes_no_aws_call_with_a_capacity_reservation(listener, tmp_path, credentials):
    """No credential lookup, no connection to the (poisoned) endpoint, no warning: whatever the config holds."""
    port, accepted = listener
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % port,
           "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:%d" % port,
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    if credentials:
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    proc = _validate_in_a_fresh_process(_config_with_every_aws_backed_part(), env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '[[], true, ""]', proc.stdout
    assert "credentials" not in proc.stderr.lower() and "Unable to cache" not in proc.stderr, proc.stderr
    assert accepted == []
