"""A cluster created and deleted through ParallelCluster's own template, in a sandbox without a cluster
(`sandbox.py up --no-cluster`).

The collection's cluster module runs the real pcluster create-cluster and delete-cluster; the sandbox's
CloudFormation runs ParallelCluster's stack; the head node instance the stack creates is booted by the sandbox's
hypervisor with the stack's own user data (cfn-init from the launch template's metadata, the cookbook's stand-in,
cfn-signal to the stack's wait condition), and its clustermgtd launches the static compute node. One sandbox for
the file: create, a second create, deploy.yml with an SSH CIDR of the user's (an update), an update of MaxCount,
delete, and a create whose head node script fails.

The cluster here has no container roles (the sandbox's config without the queue's node-setup step, which is what
deploy.yml renders with pcluster_containers_enabled false): what these tests look at is the stack, and the other
e2e sandboxes show the container roles on the nodes.
"""

from __future__ import annotations

import json
import pathlib
import time

import pytest
import yaml

PLAY = """
- name: The cluster, through ParallelCluster's template
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/hpc.pcluster.aws:
      region: "{{ pcluster_region }}"
      endpoint_url: "{{ pcluster_endpoint_url }}"
  tasks:
    - name: The cluster is {{ cluster_state }}
      hpc.pcluster.cluster:
        name: "{{ cluster_name }}"
        state: "{{ cluster_state }}"
        config: "{{ (lookup('file', cluster_config_file) | from_yaml) if cluster_state == 'present' else omit }}"
        suppress_validators: "{{ cluster_config_suppress_validators }}"
        wait_timeout: 900
      register: stack_cluster
      ignore_errors: "{{ expect_failure }}"
    - name: Keep what the module returned
      ansible.builtin.copy:
        content: "{{ stack_cluster | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
"""


def cluster(sandbox, tmp_path, state, config=None, expect_failure=False):
    """The play above with state (and the config's file); returns (run, what the module returned, seconds).
    expect_failure: the module's failure is what the test looks at (the play goes on to keep it)."""
    (tmp_path / "play.yml").write_text(PLAY)
    config_file = tmp_path / "cluster-config.yaml"
    config_file.write_text(yaml.safe_dump(config or {}))
    started = time.monotonic()
    run = sandbox.playbook(str(tmp_path / "play.yml"), {
        "cluster_name": sandbox.cluster_name, "cluster_state": state, "cluster_config_file": str(config_file),
        "result_file": str(tmp_path / "result.json"), "expect_failure": expect_failure}, timeout=1200)
    seconds = time.monotonic() - started
    assert run.rc == 0, run.output[-6000:] + boot_logs(sandbox)
    return run, json.loads((tmp_path / "result.json").read_text()), seconds


def boot_logs(sandbox) -> str:
    """The hypervisor's log and the booted instances' logs, for a failure's message."""
    logs = sandbox.state_dir / "logs"
    parts = [(logs / "hypervisor.log").read_text()[-3000:]] if (logs / "hypervisor.log").exists() else []
    parts += ["== %s\n%s" % (path.name, path.read_text()[-3000:]) for path in sorted(logs.glob("boot-*.log"))]
    _instance_id, record = head_node_record(sandbox)
    for path in HEAD_NODE_LOGS if record else ():
        try:
            parts.append("== head node %s\n%s" % (path, pathlib.Path("/proc/%d/root%s" % (record["pid"], path)).read_text()[-3000:]))
        except OSError:
            pass
    return "\n" + "\n".join(parts)


HEAD_NODE_LOGS = ("/var/log/cfn-init.log", "/var/log/cfn-init-cmd.log", "/var/log/chef-client.log", "/var/log/cfn-hup.log",
                  "/var/log/cfn-hup-runner.log", "/var/log/parallelcluster/bootstrap_error_msg",
                  "/var/log/cloudwatch-agent.log")


def sandbox_config(sandbox) -> dict:
    """The sandbox's cluster config without the queues' node-setup step (see the module's docstring)."""
    config = yaml.safe_load((sandbox.state_dir / "cluster-config.yaml").read_text())
    for queue in config["Scheduling"]["SlurmQueues"]:
        sequence = queue["CustomActions"]["OnNodeConfigured"]["Sequence"]
        sequence[:] = [step for step in sequence if "/hpc-pcluster-node-setup-" not in step["Script"]]
    return config


# deploy.yml's variables for this cluster: as the sandbox's config above.
NO_CONTAINERS = {"pcluster_containers_enabled": False}


def head_node_record(sandbox) -> tuple:
    if not (sandbox.state_dir / "nodes.json").exists():  # the hypervisor has booted nothing yet
        return None, None
    for instance_id, record in sandbox.node_records().items():
        if record.get("node_type") == "HeadNode":
            return instance_id, record
    return None, None


def on_head(sandbox, ip, command, timeout=60):
    import shlex  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel

    ssh = ["ssh", "-i", sandbox.state["ssh_key"], "-o", "UserKnownHostsFile=%s" % sandbox.state["known_hosts"],
           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "root@%s" % ip]
    return subprocess.run(ssh + [shlex.join(command) if isinstance(command, list) else command],
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def created(stack_sandbox, tmp_path_factory):
    """The create, shared by the tests that look at what it left."""
    assert not stack_sandbox.aws("cloudformation").list_stacks(StackStatusFilter=["CREATE_COMPLETE"])["StackSummaries"]
    run, result, seconds = cluster(stack_sandbox, tmp_path_factory.mktemp("create"), "present",
                                   sandbox_config(stack_sandbox))
    print("create through the stack: %.1f s" % seconds)
    return {"run": run, "result": result, "seconds": seconds}


def test_create_runs_the_stack_and_boots_its_head_node(stack_sandbox, created):
    result = created["result"]
    assert result["changed"] and result["status"] == "CREATE_COMPLETE", result
    stack = stack_sandbox.aws("cloudformation").describe_stacks(StackName=stack_sandbox.cluster_name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    # The stack's head node instance, booted by the hypervisor, ran its user data to the end.
    instance_id, record = head_node_record(stack_sandbox)
    assert instance_id == result["head_node"]["instance_id"], (stack_sandbox.node_records(), result["head_node"])
    assert record["bootstrap"] == "ok", record
    ip = result["head_node"]["private_ip_address"]
    assert ip != stack_sandbox.state["head_ip"]  # not the sandbox's router
    output = on_head(stack_sandbox, ip, "cat /var/log/cloud-init-output.log; cat /var/log/cfn-init.log")
    assert output.returncode == 0, output.stderr
    assert "ConfigSets completed: deployFiles" in output.stdout and "ConfigSets completed: default" in output.stdout
    # Its clustermgtd launched the static node, which Slurm has up (no node-setup step holds it).
    nodes = on_head(stack_sandbox, ip, "sinfo -h -N -o '%N %t'")
    assert nodes.returncode == 0, nodes.stderr
    static = [line.split() for line in nodes.stdout.splitlines() if "-st-" in line]
    assert static and all(state == "idle" for _name, state in static), nodes.stdout


def test_the_head_node_bootstrap_log_is_in_the_cluster_s_log_group(stack_sandbox, created):
    instance_id = created["result"]["head_node"]["instance_id"]
    logs = stack_sandbox.aws("logs")
    groups = [g["logGroupName"] for g in logs.describe_log_groups(
        logGroupNamePrefix="/aws/parallelcluster/%s" % stack_sandbox.cluster_name)["logGroups"]]
    assert len(groups) == 1, groups
    streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=groups[0])["logStreams"]]
    prefix = "ip-%s.%s." % (created["result"]["head_node"]["private_ip_address"].replace(".", "-"), instance_id)
    assert {prefix + "cfn-init", prefix + "chef-client", prefix + "clustermgtd"} <= set(streams), (
        streams, boot_logs(stack_sandbox))
    events = logs.get_log_events(logGroupName=groups[0], logStreamName=prefix + "cfn-init")["events"]
    assert any("ConfigSets completed: default" in event["message"] for event in events), events[-5:]


def test_a_second_create_changes_nothing(stack_sandbox, created, tmp_path):
    _run, result, _seconds = cluster(stack_sandbox, tmp_path, "present", sandbox_config(stack_sandbox))
    assert not result["changed"], result
    assert result["status"] == "CREATE_COMPLETE"


# A user's own address (the cluster_config role's example): nothing in the sandbox seeded it.
USER_SSH_CIDR = "203.0.113.7/32"


def test_a_user_s_own_ssh_cidr_updates_the_stack_cleanly_through_deploy_yml(stack_sandbox, created, deploy_vars):
    """deploy.yml from the sandbox's inventory with one value of the user's own: its update runs through the
    stack (the head node's security group gets the CIDR), and the rest of deploy.yml runs on the updated cluster."""
    started = time.monotonic()
    run = stack_sandbox.playbook("deploy.yml", dict(deploy_vars, cluster_config_ssh_allowed_ips=USER_SSH_CIDR,
                                                    **NO_CONTAINERS), timeout=1800)
    print("deploy.yml with an SSH CIDR of the user's: %.1f s" % (time.monotonic() - started))
    assert run.rc == 0, run.output[-6000:] + boot_logs(stack_sandbox)
    cfn = stack_sandbox.aws("cloudformation")
    assert cfn.describe_stacks(StackName=stack_sandbox.cluster_name)["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
    group = cfn.describe_stack_resource(StackName=stack_sandbox.cluster_name, LogicalResourceId="HeadNodeSecurityGroup")[
        "StackResourceDetail"]["PhysicalResourceId"]
    rules = stack_sandbox.aws("ec2").describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["IpPermissions"]
    assert [r["CidrIp"] for rule in rules if rule.get("FromPort") == 22 for r in rule["IpRanges"]] == [USER_SSH_CIDR]


def dynamic_nodes(sandbox, ip) -> list:
    listed = on_head(sandbox, ip, "sinfo -h -N -o '%N'")
    assert listed.returncode == 0, listed.stderr
    return sorted({name for name in listed.stdout.split() if "-dy-" in name})


def test_an_update_of_max_count_runs_through_the_stack_and_the_head_node_applies_it(stack_sandbox, created, tmp_path):
    ip = created["result"]["head_node"]["private_ip_address"]
    before = dynamic_nodes(stack_sandbox, ip)
    config = sandbox_config(stack_sandbox)
    resource = config["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]
    resource["MaxCount"] += 1
    _run, result, seconds = cluster(stack_sandbox, tmp_path, "present", config)
    print("update through the stack: %.1f s" % seconds)
    assert result["changed"] and result["status"] == "UPDATE_COMPLETE", result
    # The head node's cfn-hup saw the stack's new metadata and ran the update config set: Slurm has one more node.
    assert len(dynamic_nodes(stack_sandbox, ip)) == len(before) + 1, (before, boot_logs(stack_sandbox))
    hup = on_head(stack_sandbox, ip, "cat /var/log/chef-client.log")
    assert "head node updated" in hup.stdout, hup.stdout[-3000:]


def test_delete_removes_the_stack_its_instances_and_their_nodes(stack_sandbox, created, tmp_path):
    _run, result, seconds = cluster(stack_sandbox, tmp_path, "absent")
    print("delete through the stack: %.1f s" % seconds)
    assert result["changed"], result
    ec2 = stack_sandbox.aws("ec2")
    alive = [i["InstanceId"] for r in ec2.describe_instances(Filters=[
        {"Name": "tag:parallelcluster:cluster-name", "Values": [stack_sandbox.cluster_name]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])["Reservations"]
        for i in r["Instances"]]
    assert not alive
    wait_for_no_nodes(stack_sandbox)
    delete_kept_log_group(stack_sandbox, "/aws/parallelcluster/%s-" % stack_sandbox.cluster_name)


def delete_kept_log_group(sandbox, prefix):
    """The deleted cluster's log group, the one whose name starts with prefix, is still there: it outlives the
    cluster (Monitoring.Logs.CloudWatch.DeletionPolicy defaults to Retain). Its name carries the minute of the
    create, so a create of the same name within that minute would fail on it (ClusterCreationFailure,
    CloudWatchLogGroup already exists) until it is deleted, as on AWS: delete it. Returns its name."""
    logs = sandbox.aws("logs")
    kept = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=prefix)["logGroups"]]
    assert len(kept) == 1, kept
    logs.delete_log_group(logGroupName=kept[0])
    return kept[0]


def wait_for_no_nodes(sandbox, timeout=30):
    deadline = time.monotonic() + timeout
    while sandbox.node_records() and time.monotonic() < deadline:
        time.sleep(1)
    assert not sandbox.node_records()


def failed_create(sandbox, tmp_path, config, code):
    """A create that fails with ParallelCluster's failure code: the module's report names the code and the head node's
    error log stream (in the cluster's log group, filled by the head node's CloudWatch agent). Once the rollback has
    stopped the head node, the failed cluster is deleted, and its retained log group after it. Returns (the module's
    message, the stream's messages)."""
    _run, result, seconds = cluster(sandbox, tmp_path, "present", config, expect_failure=True)
    print("failed create through the stack (%s): %.1f s" % (code, seconds))
    assert result.get("failed"), result
    failure = result["failure"]
    assert failure["cluster_status"] == "CREATE_FAILED", failure
    assert [f["failure_code"] for f in failure["failures"]] == [code], failure
    assert failure["log_group"].startswith("/aws/parallelcluster/%s-" % sandbox.cluster_name), failure
    error_stream = failure["log_streams"][0]
    assert error_stream.endswith(".bootstrap_error_msg"), failure["log_streams"]
    assert code in result["msg"] and error_stream in result["msg"], result["msg"]
    events = sandbox.aws("logs").get_log_events(logGroupName=failure["log_group"], logStreamName=error_stream)["events"]
    # The rollback terminated the head node instance, and the hypervisor stopped its node.
    wait_for_no_nodes(sandbox)
    _run, deleted, _seconds = cluster(sandbox, tmp_path, "absent")
    assert deleted["changed"], deleted
    assert delete_kept_log_group(sandbox, failure["log_group"]) == failure["log_group"]
    return result["msg"], [e["message"] for e in events]


def head_node_script(sandbox, config, name, body):
    """The config with one OnNodeConfigured script of the head node, uploaded to its bootstrap bucket; the bucket."""
    bucket = config["HeadNode"]["Iam"]["S3Access"][0]["BucketName"]
    sandbox.aws("s3").put_object(Bucket=bucket, Key="bootstrap/%s" % name, Body=body)
    config["HeadNode"]["CustomActions"] = {"OnNodeConfigured": {"Sequence": [{"Script": "s3://%s/bootstrap/%s" % (bucket, name)}]}}
    return bucket


def test_a_head_node_script_that_exits_1_fails_the_create_as_on_aws(stack_sandbox, tmp_path):
    """After the delete: a create whose head node OnNodeConfigured script exits 1. The head node signals the
    failure with its bootstrap_error_msg, the stack rolls back, and the module's failure report names
    ParallelCluster's failure code and the log streams."""
    config = sandbox_config(stack_sandbox)
    bucket = head_node_script(stack_sandbox, config, "fails.sh",
                              b"#!/bin/bash\necho 'this OnNodeConfigured script fails'\nexit 1\n")
    _msg, messages = failed_create(stack_sandbox, tmp_path, config, "OnNodeConfiguredExecutionFailure")
    assert any("Failed to execute OnNodeConfigured script 1 s3://%s/bootstrap/fails.sh" % bucket in m
               for m in messages), messages


def test_a_head_node_role_that_may_not_read_its_script_fails_the_create_naming_the_download(stack_sandbox, tmp_path):
    """A create whose head node role lacks the script's bucket (no Iam.S3Access for it): the head node's download,
    signed with its instance role's credentials, is refused; the create fails with ParallelCluster's
    OnNodeConfiguredDownloadFailure, and the module's report says to check the role's S3 access."""
    config = sandbox_config(stack_sandbox)
    bucket = head_node_script(stack_sandbox, config, "succeeds.sh", b"#!/bin/bash\nexit 0\n")
    config["HeadNode"]["Iam"]["S3Access"] = [a for a in config["HeadNode"]["Iam"]["S3Access"] if a["BucketName"] != bucket]
    if not config["HeadNode"]["Iam"]["S3Access"]:
        del config["HeadNode"]["Iam"]["S3Access"]
    msg, messages = failed_create(stack_sandbox, tmp_path, config, "OnNodeConfiguredDownloadFailure")
    assert "Iam.S3Access" in msg, msg
    assert any("Failed to download OnNodeConfigured script 1 s3://%s/bootstrap/succeeds.sh" % bucket in m and "403" in m
               for m in messages), messages
