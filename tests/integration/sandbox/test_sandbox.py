"""The default sandbox (make sandbox-up) as ParallelCluster, SSH and Slurm see it."""

from __future__ import annotations

import datetime
import json
import pathlib
import re
import secrets
import socket
import urllib.request

import boto3
import pytest
import yaml

import iam_identities  # sandbox/iam_identities.py
import moto_cluster  # sandbox/moto_cluster.py

ROOT = pathlib.Path(__file__).resolve().parents[3]


def sandbox_state(sandbox):
    """state.json as it is now (the static nodes' addresses follow their instances)."""
    return json.loads((sandbox.state_dir / "state.json").read_text())


def pcluster(sandbox, *args, check_json=True):
    proc = sandbox.run(["pcluster", *args])
    if not check_json:
        return proc
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_describe_cluster_reports_create_complete_and_head_node(sandbox):
    out = pcluster(sandbox, "describe-cluster", "--cluster-name", sandbox.cluster_name)
    assert out["clusterName"] == sandbox.cluster_name
    assert out["clusterStatus"] == "CREATE_COMPLETE"
    assert out["cloudFormationStackStatus"] == "CREATE_COMPLETE"
    assert out["computeFleetStatus"] == "RUNNING"
    assert out["version"] == "3.16.1"
    assert out["region"] == sandbox.region
    assert out["scheduler"] == {"type": "slurm"}
    assert out["headNode"]["privateIpAddress"] == sandbox.head_ip
    assert out["headNode"]["state"] == "running"
    assert {"key": "parallelcluster:version", "value": "3.16.1"} in out["tags"]


def test_describe_cluster_instances_lists_head_and_compute_nodes(sandbox):
    out = pcluster(sandbox, "describe-cluster-instances", "--cluster-name", sandbox.cluster_name)
    by_type = {}
    for instance in out["instances"]:
        by_type.setdefault(instance["nodeType"], []).append(instance)
    assert [i["privateIpAddress"] for i in by_type["HeadNode"]] == [sandbox.head_ip]
    computes = by_type["ComputeNode"]
    assert sorted(i["privateIpAddress"] for i in computes) == sorted(sandbox_state(sandbox)["compute_ips"])
    assert {i["queueName"] for i in computes} == {"compute-gpu"}
    assert {i["instanceType"] for i in computes} == {"g5.8xlarge"}


def test_config_object_is_the_rendered_config(sandbox):
    out = pcluster(sandbox, "describe-cluster", "--cluster-name", sandbox.cluster_name)
    url = out["clusterConfiguration"]["url"]
    assert url.startswith(sandbox.endpoint_url + "/parallelcluster-"), url
    with urllib.request.urlopen(url, timeout=10) as response:
        stored = response.read().decode()
    rendered = pathlib.Path(sandbox.cluster_config_path).read_text()
    assert stored == rendered
    config = yaml.safe_load(stored)
    assert config["HeadNode"]["Networking"]["SubnetId"] == sandbox.aws["public_subnet_id"]
    queue = config["Scheduling"]["SlurmQueues"][0]
    assert queue["Name"] == "compute-gpu"
    assert queue["ComputeResources"][0]["MinCount"] == len(sandbox.compute_nodes)


def test_dryrun_without_fsx_would_succeed_with_the_recorded_suppressions(sandbox, tmp_path):
    config = yaml.safe_load(pathlib.Path(sandbox.cluster_config_path).read_text())
    config.pop("SharedStorage", None)  # moto has no FSx
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = pcluster(sandbox, "create-cluster", "--cluster-name", "dryrun-check", "--cluster-configuration", str(path),
                    "--dryrun", "true", "--suppress-validators", *sandbox.suppress_validators, check_json=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # pcluster's exit code for a successful dry run
    assert json.loads(proc.stdout)["message"] == "Request would have succeeded, but DryRun flag is set."


def test_ssh_with_pinned_host_key_runs_sinfo(sandbox):
    out = sandbox.ssh("sinfo --noheader --partition=compute-gpu --format=%P,%a,%D,%t").stdout.split()
    assert out == ["compute-gpu*,up,%d,idle" % len(sandbox.compute_nodes)]
    nodes = sandbox.ssh("sinfo --noheader --partition=compute-gpu --Node --format=%N").stdout.split()
    assert sorted(nodes) == sorted(sandbox.compute_nodes)
    assert sandbox.compute_nodes == ["compute-gpu-st-distributed-ml-%d" % i
                                     for i in range(1, len(sandbox.compute_nodes) + 1)]


def test_unknown_host_key_is_refused(sandbox, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    proc = sandbox.run(sandbox.ssh_argv(str(empty)) + ["true"])
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr


def test_srun_runs_on_every_compute_node(sandbox):
    n = len(sandbox.compute_nodes)
    out = sandbox.ssh("srun --quiet --nodes=%d --ntasks-per-node=1 hostname" % n).stdout.split()
    assert sorted(out) == sorted(sandbox.compute_nodes)


def test_gpu_gres_schedules_and_sets_cuda_visible_devices(sandbox):
    gpus = sandbox.gpus_per_node
    if not gpus:
        pytest.skip("the default sandbox was started with --gpus-per-node 0")
    n = len(sandbox.compute_nodes)
    out = sandbox.ssh("srun --quiet --nodes=%d --ntasks-per-node=1 --gpus-per-node=%d "
                      "sh -c 'echo $(hostname) $CUDA_VISIBLE_DEVICES'" % (n, gpus)).stdout
    seen = dict(line.split() for line in out.strip().splitlines())
    assert sorted(seen) == sorted(sandbox.compute_nodes)
    assert all(len(v.split(",")) == gpus for v in seen.values()), seen
    refused = sandbox.ssh("srun --quiet --nodes=1 --gpus-per-node=%d --immediate=5 true" % (gpus + 1), check=False)
    assert refused.returncode != 0


def test_only_the_head_node_is_routed_from_the_host(sandbox):
    # Routes only: no packet is sent to the compute nodes' addresses from the host.
    for ip in sandbox_state(sandbox)["compute_ips"]:
        proc = sandbox.run(["ip", "route", "get", ip])
        assert proc.returncode != 0 and "No route to host" in proc.stderr, proc
    route = sandbox.run(["ip", "route", "get", sandbox.head_ip], check=True).stdout
    assert "dev %s" % sandbox.host_veth in route
    socket.create_connection((sandbox.head_ip, 22), timeout=5).close()


def test_parallelcluster_layout_on_the_nodes(sandbox):
    out = sandbox.ssh(
        "cat /opt/parallelcluster/examples/spank/plugstack.conf /opt/parallelcluster/examples/pyxis/pyxis.conf; "
        "test -s /opt/parallelcluster/examples/enroot/enroot.conf; test -f /usr/local/lib/slurm/spank_pyxis.so; "
        "test /etc/slurm/slurm.conf -ef /opt/slurm/etc/slurm.conf; test -d /etc/enroot; "
        "for m in /fsx /lustre /home /opt; do findmnt -n -o TARGET $m; done; "
        "srun --quiet --nodes=1 sh -c 'for m in /scratch /fsx /lustre; do findmnt -n -o TARGET $m; done'"
    ).stdout.splitlines()
    assert out == ["include /opt/slurm/etc/plugstack.conf.d/*",
                   "required /usr/local/lib/slurm/spank_pyxis.so runtime_path=/run/pyxis",
                   "/fsx", "/lustre", "/home", "/opt", "/scratch", "/fsx", "/lustre"]


def test_slurm_runs_the_slurm_settings_of_the_config(sandbox):
    config = yaml.safe_load(pathlib.Path(sandbox.cluster_config_path).read_text())
    slurm = config["Scheduling"]["SlurmSettings"]
    lines = [line.partition("=") for line in sandbox.ssh("scontrol show config").stdout.splitlines()]
    shown = dict((key.strip(), value.strip()) for key, sep, value in lines if sep)
    for entry in slurm["CustomSlurmSettings"]:
        for key, value in entry.items():
            assert shown[key].replace(" sec", "") == str(value), key
    # ScaledownIdletime -1: SuspendTime=-1, Slurm's power saving off (no dynamic node is ever powered up).
    assert slurm["ScaledownIdletime"] == -1 and shown["SuspendTime"] == "INFINITE"
    partition = sandbox.ssh("scontrol -o show partition %s" % config["Scheduling"]["SlurmQueues"][0]["Name"]).stdout
    assert "OverSubscribe=EXCLUSIVE" in partition
    # slurmctld loaded the job completion plugin (it does so only when it starts): a job is recorded.
    job = sandbox.ssh("sbatch --parsable --wait --job-name=sandbox-jobcomp --wrap true").stdout.strip()
    assert "JobId=%s " % job in sandbox.ssh("cat /home/slurm/slurm-job-completions.txt").stdout


def test_shared_storage_is_shared_between_nodes(sandbox):
    marker = "written-on-the-head-node"
    sandbox.ssh("echo %s > /fsx/.sandbox-test && echo %s > /home/.sandbox-test" % (marker, marker))
    try:
        out = sandbox.ssh("srun --quiet --nodes=1 cat /fsx/.sandbox-test /home/.sandbox-test").stdout.split()
        assert out == [marker, marker]
    finally:
        sandbox.ssh("rm -f /fsx/.sandbox-test /home/.sandbox-test", check=False)


def test_inventory_and_env_files(sandbox):
    inv = sandbox.inventory_dir
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    assert hosts["all"]["hosts"]["localhost"]["ansible_connection"] == "local"
    nodes = yaml.safe_load((inv / "pcluster_nodes.yml").read_text())
    assert nodes["plugin"] == "hpc.pcluster.nodes"
    assert nodes["endpoint_url"] == sandbox.endpoint_url
    assert nodes["clusters"] == [sandbox.cluster_name]
    assert "StrictHostKeyChecking=yes" in nodes["ssh_common_args"]
    assert "UserKnownHostsFile=%s" % sandbox.known_hosts in nodes["ssh_common_args"]
    group_vars = yaml.safe_load((inv / "group_vars" / "all" / "sandbox.yml").read_text())
    assert group_vars["pcluster_endpoint_url"] == sandbox.endpoint_url
    assert group_vars["cluster_config_compute_min_count"] == len(sandbox.compute_nodes)
    # What only the sandbox needs is in a file of its own, which a user's inventory can include; the environment
    # values (what a cluster.yml holds) are not in it, nor is it in the environment values.
    only = yaml.safe_load((inv / "group_vars" / "all" / "sandbox_only.yml").read_text())
    for reason in only["verify_not_available"].values():
        assert "not available in the sandbox" in reason
    assert only["cluster_config_suppress_validators"] == sandbox.suppress_validators
    assert only["pyxis_slurmd_restart_command"] and only["verify_distributed_mpirun_args"]
    assert not set(only) & set(group_vars), set(only) & set(group_vars)
    assert not [key for key in only if key.startswith("pcluster_") or key.endswith("_id")], only.keys()
    # The key pair the config names exists in moto, ed25519.
    pairs = boto3.client("ec2", endpoint_url=sandbox.endpoint_url, region_name=sandbox.region,
                         **iam_identities.ADMIN_CREDENTIALS).describe_key_pairs(
        KeyNames=[group_vars["cluster_config_ssh_key_name"]])["KeyPairs"]
    assert [p.get("KeyType") for p in pairs] == ["ed25519"]
    assert sandbox.env["AWS_ENDPOINT_URL"] == sandbox.endpoint_url
    assert sandbox.env["SANDBOX_HEAD_IP"] == sandbox.head_ip
    for secret in (sandbox.ssh_key, sandbox.known_hosts, inv / "group_vars" / "all" / "sandbox.yml",
                   inv / "group_vars" / "all" / "sandbox_only.yml", sandbox.cluster_config_path):
        assert pathlib.Path(secret).stat().st_mode & 0o077 == 0, secret


def test_second_up_says_so_and_changes_nothing(sandbox):
    before = (sandbox.state_dir / "state.json").read_text()
    cmd = [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "sandbox" / "sandbox.py"), "up",
           "--state-dir", str(sandbox.state_dir)]
    again = sandbox.run(cmd)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "already running" in again.stdout
    if_needed = sandbox.run(cmd + ["--if-needed"])
    assert if_needed.returncode == 0 and "already running" in if_needed.stdout
    assert (sandbox.state_dir / "state.json").read_text() == before


def register_elsewhere(sandbox, region, name, net, *args, **kwargs):
    """register_cluster in a VPC of its own in region (net: the first two octets), with the sandbox's config."""
    seed = moto_cluster.seed_environment(sandbox.endpoint_url, region, "%s.0.0/16" % net, "%s.0.0/24" % net,
                                         "%s.16.0/20" % net, name_prefix=name)
    config = yaml.safe_load(pathlib.Path(sandbox.cluster_config_path).read_text())
    config["Region"] = region
    return moto_cluster.register_cluster(sandbox.endpoint_url, region, name, "%s.0.10" % net, *args, config=config,
                                         public_subnet_id=seed["public_subnet_id"],
                                         private_subnet_id=seed["private_subnet_id"], **kwargs)


def test_register_cluster_helper_adds_a_cluster_in_another_region(sandbox):
    region, name = "sa-east-1", "sandbox-helper-%s" % secrets.token_hex(3)
    register_elsewhere(sandbox, region, name, "10.250", compute_count=5)
    try:
        listed = pcluster(sandbox, "list-clusters", "--region", region)["clusters"]
        assert (name, "CREATE_COMPLETE") in [(c["clusterName"], c["clusterStatus"]) for c in listed]
        instances = pcluster(sandbox, "describe-cluster-instances", "--cluster-name", name, "--region", region,
                             "--node-type", "ComputeNode")["instances"]
        assert len(instances) == 5
    finally:
        moto_cluster.deregister_cluster(sandbox.endpoint_url, region, name)


def test_the_static_nodes_are_instances_clustermgtd_launched_from_the_launch_template(sandbox):
    # ParallelCluster's clustermgtd launched them (RunInstances with the cluster's launch template): they carry the
    # template's tags, subnet, security groups and instance profile, the node table names their Slurm nodes, and
    # Slurm's nodes point at them (NodeAddr, and the InstanceId the node daemons set).
    ec2 = moto_cluster.client("ec2", sandbox.endpoint_url, sandbox.region)
    template = "%s-compute-gpu-distributed-ml" % sandbox.cluster_name
    version = ec2.describe_launch_template_versions(LaunchTemplateName=template)["LaunchTemplateVersions"][0]
    data = version["LaunchTemplateData"]
    instances = [i for r in ec2.describe_instances(Filters=[
        {"Name": "tag:parallelcluster:cluster-name", "Values": [sandbox.cluster_name]},
        {"Name": "tag:parallelcluster:node-type", "Values": ["Compute"]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"] for i in r["Instances"]]
    assert sorted(i["PrivateIpAddress"] for i in instances) == sorted(sandbox_state(sandbox)["compute_ips"])
    node_table = moto_cluster.client("dynamodb", sandbox.endpoint_url, sandbox.region)
    for instance in instances:
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["aws:ec2launchtemplate:id"] == version["LaunchTemplateId"]
        assert tags["parallelcluster:queue-name"] == "compute-gpu" and tags["parallelcluster:node-type"] == "Compute"
        assert instance["SubnetId"] == data["NetworkInterfaces"][0]["SubnetId"] == sandbox.aws["private_subnet_id"]
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == data["NetworkInterfaces"][0]["Groups"]
        assert instance["IamInstanceProfile"]["Arn"].endswith("/" + data["IamInstanceProfile"]["Name"])
        item = node_table.query(TableName="parallelcluster-slurm-%s" % sandbox.cluster_name, IndexName="InstanceId",
                                KeyConditionExpression="InstanceId = :i",
                                ExpressionAttributeValues={":i": {"S": instance["InstanceId"]}})["Items"][0]
        node = sandbox.ssh("/opt/slurm/bin/scontrol show node %s" % item["Id"]["S"]).stdout
        assert "NodeAddr=%s " % instance["PrivateIpAddress"] in node and "InstanceId=%s" % instance["InstanceId"] in node
    behaviour = ec2.describe_instance_attribute(InstanceId=instances[0]["InstanceId"],
                                                Attribute="instanceInitiatedShutdownBehavior")
    assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"


def test_the_node_daemons_run_as_parallelcluster_runs_them(sandbox):
    # supervisord on the head node runs clustermgtd (aws-parallelcluster-node) and clusterstatusmgtd; clustermgtd
    # beats; slurmctld's ResumeProgram and SuspendProgram are ParallelCluster's wrappers of slurm_resume / slurm_suspend.
    status = sandbox.ssh("%s/bin/supervisorctl status" % sandbox.state["containers"]["ami"]["virtualenvs"]["cookbook"]).stdout
    assert re.search(r"^clustermgtd\s+RUNNING", status, re.M) and re.search(r"^clusterstatusmgtd\s+RUNNING", status, re.M)
    node = sandbox.state["containers"]["ami"]["virtualenvs"]["node"]
    assert sandbox.ssh("%s/bin/pip show aws-parallelcluster-node | grep ^Version" % node).stdout.strip() == "Version: 3.16.1"
    heartbeat = sandbox.ssh("cat /opt/slurm/etc/pcluster/.slurm_plugin/clustermgtd_heartbeat").stdout.strip()
    beat = datetime.datetime.strptime(heartbeat, "%Y-%m-%d %H:%M:%S.%f%z")
    assert (datetime.datetime.now(tz=datetime.timezone.utc) - beat).total_seconds() < 60
    config = dict(line.partition("=")[::2] for line in sandbox.ssh("scontrol show config").stdout.splitlines())
    programs = {key.strip(): value.strip() for key, value in config.items()}
    assert programs["ResumeProgram"] == "/opt/parallelcluster/scripts/slurm/slurm_resume"
    assert programs["SuspendProgram"] == programs["ResumeFailProgram"] == "/opt/parallelcluster/scripts/slurm/slurm_suspend"
    computemgtd = sandbox.ssh("srun --quiet --nodes=1 %s/bin/supervisorctl status computemgtd"
                              % sandbox.state["containers"]["ami"]["virtualenvs"]["cookbook"], check=False).stdout
    assert "RUNNING" in computemgtd, computemgtd


def test_moto_created_the_predicted_ids(sandbox):
    # `up` renders the config with these ids while moto is being seeded; a moto that creates
    # others still works, but renders twice (slower up): update PREDICTED_SEED_IDS then.
    predicted = moto_cluster.predicted_seed(sandbox.region)
    if predicted is None:
        pytest.skip("no prediction for region %s" % sandbox.region)
    assert {k: sandbox.aws[k] for k in predicted} == predicted


def test_dryrun_of_the_whole_config_with_the_fsx_descriptions_would_succeed(sandbox, tmp_path):
    # moto describes the placeholders fs-0123456789abcdef0 and fsvol-0123456789abcdef0 (moto_server.py),
    # so pcluster validates the SharedStorage too. The URL validator is suppressed: it would try the internet.
    proc = pcluster(sandbox, "create-cluster", "--cluster-name", "dryrun-check", "--cluster-configuration",
                    sandbox.cluster_config_path, "--dryrun", "true", "--suppress-validators",
                    *sandbox.suppress_validators, "type:AsyncTimedUrlValidator", check_json=False)
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["message"] == "Request would have succeeded, but DryRun flag is set.", out
    assert not [m for m in out.get("configurationValidationErrors", []) if m["level"] == "ERROR"], out
    assert yaml.safe_load(pathlib.Path(sandbox.cluster_config_path).read_text())["SharedStorage"]
