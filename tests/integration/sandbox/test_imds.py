"""The nodes' instance metadata service (sandbox/imds.py) and their instance roles (sandbox/iam_roles.py): every node
reads its identity and its role's credentials at 169.254.169.254 inside its own network namespace, as on EC2, and
its calls are made with that role."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time

import boto3
import pytest
from botocore.exceptions import ClientError

# sandbox/imds.py, sandbox/iam_identities.py, sandbox/moto_cluster.py
import iam_identities
import imds
import moto_cluster
from ansible_collections.hpc.pcluster.tests.integration.conftest import release_node_setup_holds

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")


def records(sandbox):
    """The hypervisor's records of the running instances: {instance id: {name, ip, pid, bootstrap, node_type, ...}}."""
    return json.loads((sandbox.state_dir / "nodes.json").read_text())


def nodes_of(sandbox):
    """[(node name, instance id, holder pid)] of the head node and the static compute nodes' current instances."""
    state = json.loads((sandbox.state_dir / "state.json").read_text())
    out = [("head", state["head_instance_id"], state["holders"]["head"])]
    computes = sorted((r["name"], instance_id, r["pid"]) for instance_id, r in records(sandbox).items()
                      if r.get("node_type") != "HeadNode" and r.get("name") in sandbox.compute_nodes)
    return out + computes


def client_with(credentials, service, sandbox):
    return boto3.session.Session(region_name=sandbox.region, **credentials).client(
        service, endpoint_url=sandbox.endpoint_url)


def curl_in(pid, *args):
    """curl inside the node held by pid (its network namespace): (status code, body)."""
    proc = subprocess.run(["nsenter", "-t", str(pid), "-n", "curl", "-s", "-o", "-", "-w", "\n%{http_code}",
                           "--max-time", "5", *args], capture_output=True, text=True, timeout=30, check=False)
    body, _sep, code = proc.stdout.rpartition("\n")
    return int(code or 0), body


def test_every_node_reads_its_identity_and_its_roles_credentials_at_169_254_169_254(sandbox):
    roles = sandbox.state["iam"]["node_roles"]
    for name, instance_id, pid in nodes_of(sandbox):
        netns = "/proc/%d/ns/net" % pid
        identity = imds.node_identity(netns)
        assert identity["instance_id"] == instance_id and identity["region"] == sandbox.region
        group = "HeadNode" if name == "head" else sandbox.state["queue"]
        assert identity["role"] == roles[group]["role_name"]
        caller = client_with(identity["credentials"], "sts", sandbox).get_caller_identity()["Arn"]
        assert caller == "arn:aws:sts::%s:assumed-role/%s/%s" % (
            iam_identities.ACCOUNT_ID, roles[group]["role_name"], instance_id)


def test_the_service_speaks_imdsv2_as_ec2_does(sandbox):
    name, instance_id, pid = nodes_of(sandbox)[1]
    base = "http://169.254.169.254/latest"
    assert curl_in(pid, base + "/meta-data/instance-id")[0] == 401  # IMDSv1 refused (ImdsSupport v2.0)
    code, token = curl_in(pid, "-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60", base + "/api/token")
    assert code == 200 and token
    with_token = ("-H", "X-aws-ec2-metadata-token: " + token)
    assert curl_in(pid, *with_token, base + "/meta-data/instance-id") == (200, instance_id)
    ip = records(sandbox)[instance_id]["ip"]
    assert curl_in(pid, *with_token, base + "/meta-data/local-ipv4") == (200, ip)
    assert curl_in(pid, *with_token, base + "/meta-data/placement/region") == (200, sandbox.region)
    code, document = curl_in(pid, *with_token, base + "/dynamic/instance-identity/document")
    assert code == 200 and json.loads(document)["instanceId"] == instance_id
    code, info = curl_in(pid, *with_token, base + "/meta-data/iam/info")
    assert code == 200 and json.loads(info)["InstanceProfileArn"] == (
        sandbox.state["iam"]["node_roles"][sandbox.state["queue"]]["instance_profile_arn"])
    assert curl_in(pid, "-H", "X-aws-ec2-metadata-token: not-a-token", base + "/meta-data/instance-id")[0] == 401


def test_a_compute_nodes_calls_are_made_with_its_role(sandbox):
    name, instance_id, pid = nodes_of(sandbox)[1]
    compute = imds.node_identity("/proc/%d/ns/net" % pid)
    head = imds.node_identity("/proc/%d/ns/net" % nodes_of(sandbox)[0][2])
    ddb = client_with(compute["credentials"], "dynamodb", sandbox)
    table = "parallelcluster-slurm-%s" % sandbox.cluster_name
    # What ParallelCluster's compute node does to learn its name: its role allows it.
    items = ddb.query(TableName=table, IndexName="InstanceId", KeyConditionExpression="InstanceId = :i",
                      ExpressionAttributeValues={":i": {"S": instance_id}})["Items"]
    assert [item["Id"]["S"] for item in items] == [name]
    with pytest.raises(ClientError) as denied:
        ddb.scan(TableName=table)
    assert "assumed-role/%s/%s is not authorized to perform: dynamodb:Scan" % (
        compute["role"], instance_id) in denied.value.response["Error"]["Message"]
    # The cluster's config in ParallelCluster's bucket: the head node's role reads it, the compute node's does not.
    reg = sandbox.state["registration"]
    client_with(head["credentials"], "s3", sandbox).get_object(Bucket=reg["bucket"], Key=reg["config_key"])
    with pytest.raises(ClientError) as denied:
        client_with(compute["credentials"], "s3", sandbox).get_object(Bucket=reg["bucket"], Key=reg["config_key"])
    assert "s3:GetObject" in denied.value.response["Error"]["Message"]
    # The bootstrap scripts' bucket is in the queue's S3Access.
    bucket = sandbox.state["aws"]["bootstrap_bucket"]
    client_with(compute["credentials"], "s3", sandbox).get_object(Bucket=bucket, Key="bootstrap/compute-node-bootstrap.sh")


@pytest.fixture(name="scratch_netns")
def scratch_netns_fixture():
    name = "iamtest-%s" % secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield "/run/netns/%s" % name
    subprocess.run(["ip", "netns", "delete", name], check=False)


def test_credentials_are_assumed_again_before_they_expire_and_a_terminated_instance_is_not_served(
        sandbox, scratch_netns, tmp_path):
    # A daemon of its own for one instance in a namespace of its own, with credentials that last 900 s and are
    # assumed again 3 s after each assumption.
    state = {"endpoint_url": sandbox.endpoint_url, "region": sandbox.region, "iam": sandbox.state["iam"]}
    (tmp_path / "state.json").write_text(json.dumps(state))
    (tmp_path / "logs").mkdir()
    head_id = sandbox.state["head_instance_id"]
    profile = sandbox.state["iam"]["node_roles"]["HeadNode"]["instance_profile_arn"]
    with open(tmp_path / "logs" / "imds.log", "wb") as log:
        daemon = subprocess.Popen([sys.executable, imds.__file__, "serve", "--state-dir", str(tmp_path),
                                   "--duration", "900", "--refresh-before", "897"], stdout=log, stderr=subprocess.STDOUT)
    try:
        imds.register(tmp_path, {"instance_id": head_id, "netns": scratch_netns, "private_ip": "10.250.0.10",
                                 "hostname": "ip-10-250-0-10", "region": sandbox.region,
                                 "availability_zone": sandbox.region + "a", "instance_type": "m5.8xlarge",
                                 "ami_id": moto_cluster.OFFICIAL_AMI_ID, "instance_profile_arn": profile})
        first = imds.node_identity(scratch_netns)["credentials"]
        time.sleep(4.5)
        second = imds.node_identity(scratch_netns)["credentials"]
        assert first["aws_access_key_id"] != second["aws_access_key_id"]
        for credentials in (first, second):  # both work: the old ones until they expire, as on EC2
            client_with(credentials, "sts", sandbox).get_caller_identity()
        imds.deregister(tmp_path, head_id)
        deadline = time.time() + 10
        while (tmp_path / "imds" / ("%s.serving" % head_id)).exists():
            assert time.time() < deadline, "the daemon still serves a terminated instance"
            time.sleep(0.1)
        with pytest.raises(OSError):
            imds.node_identity(scratch_netns)
    finally:
        daemon.kill()
        daemon.wait()
    assert "credentials of role" in (tmp_path / "logs" / "imds.log").read_text()


def node_instance(sandbox, node):
    """The instance ParallelCluster's node table names for a Slurm node."""
    item = moto_cluster.client("dynamodb", sandbox.endpoint_url, sandbox.region).get_item(
        TableName="parallelcluster-slurm-%s" % sandbox.cluster_name, Key={"Id": {"S": node}}).get("Item", {})
    return item.get("InstanceId", {}).get("S")


def replace_node(sandbox, node, timeout=240):
    """Drain a static node, as an admin does to have ParallelCluster's clustermgtd replace it, and wait for the new
    instance's bootstrap: {ok, instance, error (its boot log when it failed)}."""
    old = node_instance(sandbox, node)
    deadline = time.time() + 120
    while True:  # clustermgtd leaves a node it counts as in replacement alone: until its last word says otherwise
        lines = [line for line in sandbox.ssh("cat /var/log/parallelcluster/clustermgtd").stdout.splitlines()
                 if "following nodes are currently in replacement:" in line.lower()]
        if lines and node not in lines[-1]:
            break
        assert time.time() < deadline, "clustermgtd still counts %s as in replacement" % node
        time.sleep(2)
    sandbox.ssh("scontrol update nodename=%s state=drain reason=replace" % node)
    deadline = time.time() + timeout
    while time.time() < deadline:
        new = node_instance(sandbox, node)
        log = sandbox.state_dir / "logs" / ("boot-%s.log" % new)
        text = log.read_text() if new and new != old and log.exists() else ""
        if "bootstrap done" in text:
            return {"ok": True, "instance": new, "error": ""}
        if "bootstrap FAILED" in text or "shutdown" in text:
            return {"ok": False, "instance": new, "error": text}
        time.sleep(2)
    return {"ok": False, "instance": node_instance(sandbox, node), "error": "no bootstrap outcome within %d s" % timeout}


@pytest.fixture(name="without_role_policy")
def without_role_policy_fixture(sandbox):
    """without_role_policy(name): the compute queue's role without its inline policy name (the admin takes it off) for
    one test; afterwards the policy is back and the node used is replaced again, so the sandbox is as before."""
    role = sandbox.state["iam"]["node_roles"][sandbox.state["queue"]]["role_name"]
    iam = moto_cluster.client("iam", sandbox.endpoint_url, sandbox.region)
    taken = {}

    def take(name):
        taken[name] = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        iam.delete_role_policy(RoleName=role, PolicyName=name)
        return role

    yield take
    for name, document in taken.items():
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))
    node = sandbox.compute_nodes[-1]
    # clustermgtd replaces the node whose bootstrap failed again (a bootstrap failure); that one boots.
    deadline = time.time() + 300
    while not any(r.get("name") == node and r.get("bootstrap") == "ok" for r in records(sandbox).values()):
        assert time.time() < deadline, "%s was not replaced by a node that booted after its role was restored" % node
        time.sleep(2)
    # Its node setup's boot script holds the new static node out of scheduling, as on a fresh sandbox (no bundle).
    release_node_setup_holds(sandbox)
    deadline = time.time() + 120
    while sandbox.ssh("sinfo --noheader --nodes=%s --format=%%t" % node).stdout.strip() not in ("idle", "mix", "alloc"):
        assert time.time() < deadline, "%s did not come back after its role was restored" % node
        time.sleep(1)


def test_a_node_whose_role_may_not_query_the_node_table_cannot_learn_its_name(sandbox, without_role_policy):
    role = without_role_policy("parallelcluster-slurm-compute")  # SlurmDynamoDBTableQuery
    node = sandbox.compute_nodes[-1]
    outcome = replace_node(sandbox, node)
    assert outcome["ok"] is False
    assert "Failed when retrieving Compute info from DynamoDB" in outcome["error"], outcome
    assert "assumed-role/%s/" % role in outcome["error"] and "not authorized to perform: dynamodb:Query" in (
        outcome["error"]), outcome


def test_a_node_whose_role_lacks_the_bootstrap_bucket_fails_its_bootstrap_saying_why(sandbox, without_role_policy):
    role = without_role_policy("S3Access")  # the queue's Iam.S3Access: the bootstrap scripts' bucket
    node = sandbox.compute_nodes[-1]
    outcome = replace_node(sandbox, node)
    assert outcome["ok"] is False
    bucket = sandbox.state["aws"]["bootstrap_bucket"]
    assert "Failed to download OnNodeConfigured script 1 s3://%s/" % bucket in outcome["error"], outcome
    # The download starts with a HeadObject, as `aws s3 cp` does on ParallelCluster's nodes: S3 answers a HEAD with
    # no body, so the error says 403 Forbidden and cannot name the role or the action (the same as on AWS).
    assert "(403) when calling the HeadObject operation: Forbidden" in outcome["error"], (role, outcome)
