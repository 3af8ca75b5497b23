"""deploy.yml, verify.yml and destroy.yml end to end against a private sandbox."""

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
import yaml

# Checks the sandbox cannot show: they must be not_available with a reason, never passed.
SANDBOX_UNAVAILABLE = ("nvidia_smi", "efa", "os_release", "storage_type", "nccl_allreduce_run")
# Checks the sandbox's nodes pass for real with the AMI layer's Enroot and Pyxis and Docker installed
# into their roots (not_available, with the reason, on a machine without the vendored archives).
CONTAINER_CHECKS = ("docker", "enroot", "pyxis_plugin", "pyxis_loaded", "container_smoke")


def checks_of(report, check):
    return [c for c in report["checks"] if c["check"] == check]


def read_report(sandbox):
    path = sandbox.latest_report()
    report = json.loads((path / "report.json").read_text())
    junit = ET.parse(path / "junit.xml").getroot()
    markdown = (path / "report.md").read_text()
    return report, junit, markdown


def test_deploy_first_run_verifies_and_writes_the_report(e2e_sandbox, first_deploy, deploy_vars):
    assert "Report: %s" % (e2e_sandbox.report_dir / e2e_sandbox.cluster_name) in first_deploy.stdout
    report, junit, markdown = read_report(e2e_sandbox)
    assert report["cluster"] == e2e_sandbox.cluster_name
    # What the cluster runs: the config ParallelCluster stored, not the one the controller built.
    assert report["config_source"] == "stored"
    assert report["summary"]["failed"] == 0
    assert report["gpu_counts"]["g5.8xlarge"] == {"count": 1, "model": "NVIDIA A10G",
                                                  "source": "EC2 DescribeInstanceTypes"}
    for check in ("slurm_controller", "squeue", "job_completion_log"):
        assert [c["status"] for c in checks_of(report, check)] == ["passed"], check
    assert [c["status"] for c in checks_of(report, "partition")] == ["passed"]
    for node in e2e_sandbox.compute_nodes:
        states = dict((c["check"], c) for c in report["checks"] if c["node"] == node)
        assert states["node_state"]["status"] == "passed", states["node_state"]
        assert states["srun"]["status"] == "passed"
        assert states["srun"]["seen"].startswith("hostname %s" % node)
        # Slurm's GPU scheduling is real in the sandbox (stand-in devices): the count it grants is checked.
        assert states["gpu_count"]["status"] == "passed", states["gpu_count"]
        assert "granted by Slurm" in states["gpu_count"]["seen"]
    mounts = checks_of(report, "storage_mount")
    assert {c["expected"].split()[0] for c in mounts} == {"/fsx", "/lustre"}
    assert all(c["status"] == "passed" for c in mounts)
    # What the sandbox cannot have is not_available with a reason, never passed.
    for name in SANDBOX_UNAVAILABLE:
        found = checks_of(report, name)
        assert found, name
        for check in found:
            assert check["status"] == "not_available", check
            assert "not available in the sandbox" in check["hint"], check
    if deploy_vars.get("pcluster_containers_enabled") is not False:
        assert_container_checks(e2e_sandbox, report)
        if e2e_sandbox.state["containers"]["ami"]["real"]:
            # What is left: no GPU (nvidia-smi; NCCL, one check per group of nodes), FSx, EFA or ParallelCluster OS.
            left = [c for c in report["checks"] if c["status"] == "not_available"]
            assert {c["check"] for c in left} <= set(SANDBOX_UNAVAILABLE), left
            assert len(left) <= 12, report["summary"]
    # One test job across both compute nodes.
    assert len(report["jobs"]) == 1 and sorted(report["jobs"][0]["nodes"]) == sorted(e2e_sandbox.compute_nodes)
    # The MPI all-reduce across both, judged against the network the sandbox measured.
    for check in ("mpi_allreduce_run", "mpi_allreduce_correct", "mpi_allreduce_bandwidth"):
        assert [c["status"] for c in checks_of(report, check)] == ["passed"], check
    mpi = [r for r in report["groups"]["distributed"]["runs"] if r["backend"] == "mpi"][0]
    assert mpi["hosts_seen"] == e2e_sandbox.compute_nodes and mpi["busbw_at_largest"] >= mpi["expected"]["threshold"]
    assert "## Distributed all-reduce" in markdown
    # JUnit: one testcase per check, skipped for not_available.
    suite = junit.find("testsuite")
    assert int(suite.get("tests")) == report["summary"]["total"]
    assert int(suite.get("skipped")) == report["summary"]["not_available"]
    assert suite.get("failures") == "0"
    assert "| passed | node_state | %s |" % e2e_sandbox.compute_nodes[0] in markdown


def test_deploy_names_nodes_as_slurm_does_and_says_how_to_reach_the_head_node(e2e_sandbox, first_deploy):
    head = "%s-head" % e2e_sandbox.cluster_name
    # The play recap, the node-setup summary and the report name the nodes the way sinfo and people do, not by
    # address or instance id. The compute nodes set themselves up through one Slurm job (node_setup_compute_path
    # slurm, the default), so the recap holds the controller and the head node, and the summary every compute node.
    assert set(first_deploy.recap) == {"localhost", head}, first_deploy.recap
    folded = " ".join(first_deploy.stdout.split())  # the YAML callback wraps long messages
    for node in e2e_sandbox.compute_nodes:
        assert re.search(r"- '?%s: ok \(ok=\d+ changed=\d+ failed=0," % re.escape(node), folded), folded[-3000:]
    report, _junit, markdown = read_report(e2e_sandbox)
    assert report["head_node"] == head
    assert head in markdown and e2e_sandbox.state["head_ip"] not in markdown
    # pcluster ssh's equivalent, with the key and the pinned known_hosts the inventory uses.
    found = re.search(r"^Reach the head node %s: (ssh .*)$" % re.escape(head), first_deploy.stdout, re.M)
    assert found, first_deploy.stdout[-3000:]
    command = shlex.split(found.group(1))
    assert command[0] == "ssh" and command[-1] == "root@%s" % e2e_sandbox.state["head_ip"]
    assert "UserKnownHostsFile=%s" % e2e_sandbox.state["known_hosts"] in command
    assert "StrictHostKeyChecking=yes" in command
    assert command[command.index("-i") + 1] == e2e_sandbox.state["ssh_key"]
    ssh = subprocess.run(command + ["-o", "BatchMode=yes", "hostname"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert ssh.returncode == 0, ssh.stderr


def test_session_manager_without_its_plugin_stops_deploy_naming_it(e2e_sandbox, tmp_path):
    if os.path.exists("/usr/local/bin/session-manager-plugin"):
        pytest.skip("this machine has the Session Manager plugin")
    inventory = tmp_path / "inventory"
    shutil.copytree(e2e_sandbox.inventory, inventory)
    config = yaml.safe_load((inventory / "pcluster_nodes.yml").read_text())
    config["use_ssm"] = True
    (inventory / "pcluster_nodes.yml").write_text(yaml.safe_dump(config))
    env = dict(e2e_sandbox.env)
    env.pop("AWS_SESSION_MANAGER_PLUGIN", None)
    run = e2e_sandbox.playbook("deploy.yml", inventory=str(inventory), env=env)
    output = " ".join(run.output.split())
    assert run.rc != 0
    assert ("%s-head: use_ssm: true needs the AWS Session Manager plugin (session-manager-plugin) on this controller"
            % e2e_sandbox.cluster_name) in output, output[-3000:]
    # It stops before any node is contacted.
    assert set(run.recap) == {"localhost"}, run.recap


def assert_container_checks(e2e_sandbox, report):
    """Docker on every node, Enroot, Pyxis loaded by Slurm, a container through Pyxis: passed for real."""
    expected_nodes = {"docker": 1 + len(e2e_sandbox.compute_nodes), "enroot": 1 + len(e2e_sandbox.compute_nodes),
                      "pyxis_plugin": 1, "pyxis_loaded": 1, "container_smoke": 1}
    containers = e2e_sandbox.state["containers"]
    unavailable = e2e_sandbox.state["verify_not_available"]
    for name in CONTAINER_CHECKS:
        found = checks_of(report, name)
        assert len(found) == expected_nodes[name], (name, found)
        if name in unavailable:
            # Only where the sandbox could not build the real chain (or reach a package mirror): said so.
            assert not containers["ami"]["real"] or (name == "docker" and containers["proxy"]["note"]), name
            assert all(c["status"] == "not_available" and c["hint"] == unavailable[name] for c in found), found
        else:
            assert all(c["status"] == "passed" for c in found), found
    if "enroot" not in unavailable:
        assert {c["seen"] for c in checks_of(report, "enroot")} == {"4.1.2"}
    if "container_smoke" not in unavailable:
        assert containers["image"] in checks_of(report, "container_smoke")[0]["expected"]


def test_deploy_second_run_changes_nothing(e2e_sandbox, first_deploy, deploy_vars):
    run = e2e_sandbox.playbook("deploy.yml", deploy_vars)
    assert run.rc == 0, run.output[-6000:]
    assert run.recap, run.stdout[-3000:]
    assert all(host["changed"] == 0 for host in run.recap.values()), run.recap
    # Every compute node applied this bundle since it booted: it answers at once (the roles' own second run on the
    # nodes is in test_containers.py).
    folded = " ".join(run.stdout.split())
    for node in e2e_sandbox.compute_nodes:
        assert re.search(r"- '?%s: up-to-date \(ok=0 changed=0 failed=0," % re.escape(node), folded), folded[-3000:]
    # It fits on one screen (the concise callback of ansible.cfg): the cluster's state, a line per compute node,
    # the verification summary, how to reach the head node, the recap and a line saying nothing changed.
    lines = run.stdout.strip().splitlines()
    assert len(lines) <= 40, run.stdout
    assert lines[-1] == "Nothing changed: every host was already as configured (changed=0).", run.stdout
    assert "Reach the head node %s-head: ssh " % e2e_sandbox.cluster_name in run.stdout
    assert "TASK [" not in run.stdout and "skipping:" not in run.stdout, run.stdout


def stored_config_versions(sandbox):
    """The versions of the config object ParallelCluster stored for the cluster, in moto's S3: [(version, bytes)]
    (read as the sandbox's admin: ParallelCluster's user policies allow it too, but this is the test's own look)."""
    import boto3  # pylint: disable=import-outside-toplevel

    from iam_identities import ADMIN_CREDENTIALS  # pylint: disable=import-outside-toplevel

    reg = sandbox.state["registration"]
    s3 = boto3.client("s3", endpoint_url=sandbox.state["endpoint_url"], region_name=sandbox.state["region"],
                      **ADMIN_CREDENTIALS)
    versions = s3.list_object_versions(Bucket=reg["bucket"], Prefix=reg["config_key"]).get("Versions", [])
    return [(v["VersionId"], s3.get_object(Bucket=reg["bucket"], Key=reg["config_key"], VersionId=v["VersionId"])["Body"].read())
            for v in versions]


def test_check_mode_shows_the_change_and_touches_nothing(e2e_sandbox, first_deploy, deploy_vars):
    before = stored_config_versions(e2e_sandbox)
    config_file = e2e_sandbox.state_dir / "cluster-config.yaml"
    file_before = config_file.read_bytes()

    # One more static node (MinCount = MaxCount: ScaledownIdletime -1 leaves no dynamic node that could not start).
    run = e2e_sandbox.playbook("deploy.yml", dict(deploy_vars, cluster_config_compute_min_count=3,
                                                  cluster_config_compute_max_count=3), args=["--check", "--diff"])

    assert run.rc == 0, run.output[-6000:]
    cluster_task = run.stdout.split("TASK [Create or update the cluster and wait until it is ready]", 1)[1].split("TASK [", 1)[0]
    assert "changed: [localhost]" in cluster_task
    assert "-      MaxCount: 2" in cluster_task and "+      MaxCount: 3" in cluster_task  # stored vs desired
    assert "Check mode: cluster %s would change (dryrun update, update cluster)" % e2e_sandbox.cluster_name in " ".join(run.stdout.split())
    nodes = [host for host in run.recap if host != "localhost"]
    assert nodes and all(run.recap[host]["ok"] == 0 and run.recap[host]["changed"] == 0 for host in nodes), run.recap
    # Nothing changed: not the config stored in moto, not the file on the controller.
    assert stored_config_versions(e2e_sandbox) == before and len(before) == 1
    assert config_file.read_bytes() == file_before


def test_verify_alone_reads_the_stored_config(e2e_sandbox):
    # Container checks depend on containers.yml having run; this test is about the expectations (the all-reduce
    # is deploy.yml's, as its runs here show).
    run = e2e_sandbox.playbook("playbooks/verify.yml", {"verify_containers": False, "verify_distributed": False})
    assert run.rc == 0, run.output[-6000:]
    report = read_report(e2e_sandbox)[0]
    assert report["config_source"] == "stored"
    assert len(checks_of(report, "node_state")) == len(e2e_sandbox.compute_nodes)
    assert all(c["changed"] == 0 for c in run.recap.values())


def test_verify_of_a_cluster_that_does_not_exist_says_so(e2e_sandbox):
    # Not in the inventory (deleted on AWS: its instances are gone): verify.yml says the cluster may not exist.
    run = e2e_sandbox.playbook("playbooks/verify.yml", {"pcluster_cluster_name": "gone-cluster"})
    assert run.rc != 0
    assert "No head node of cluster 'gone-cluster' in the inventory" in run.output
    assert "the cluster does not exist (deleted, or not created yet" in run.output
    # In the inventory, but ParallelCluster does not know it where the role asks (another region): said so,
    # before any node is contacted.
    run = e2e_sandbox.playbook("playbooks/verify.yml", {"verify_region": "eu-west-1"})
    assert run.rc != 0
    assert ("verify: cluster '%s' does not exist in eu-west-1 (ParallelCluster describes no such cluster: "
            "deleted, or not created yet)" % e2e_sandbox.cluster_name) in " ".join(run.output.split()), run.output
    assert "Run hpc.pcluster.cluster_config first" not in run.output


def test_a_node_set_down_is_reported_by_name(e2e_sandbox):
    node = e2e_sandbox.compute_nodes[-1]
    # ParallelCluster's clustermgtd replaces a static node that is down: paused while the node stays down.
    supervisorctl = "%s/bin/supervisorctl" % e2e_sandbox.state["containers"]["ami"]["virtualenvs"]["cookbook"]
    e2e_sandbox.head(supervisorctl, "stop", "clustermgtd")
    e2e_sandbox.head("scontrol", "update", "nodename=%s" % node, "state=down", "reason=e2e-down-test")
    try:
        run = e2e_sandbox.playbook("playbooks/verify.yml")
    finally:
        e2e_sandbox.head("scontrol", "update", "nodename=%s" % node, "state=resume")
        e2e_sandbox.head(supervisorctl, "start", "clustermgtd")
    assert run.rc != 0
    assert "node_state on %s: expected idle, alloc or mix, seen DOWN" % node in run.output
    assert "Reason=e2e-down-test" in run.output
    report, junit = read_report(e2e_sandbox)[:2]
    failed = [(c["check"], c["node"]) for c in report["checks"] if c["status"] == "failed"]
    assert ("node_state", node) in failed
    assert ("srun", node) in failed  # left out of the test job
    # The all-reduce needs two usable nodes: not run, and said so.
    assert ("mpi_allreduce_run", "compute-gpu-st-distributed-ml-[1-2]") in failed
    assert "fewer than 2 usable nodes" in run.output
    others = [n for n in e2e_sandbox.compute_nodes if n != node]
    assert all(("node_state", n) not in failed for n in others)
    assert junit.find("testsuite").get("failures") == str(len(failed))
    # The node is back for the other tests.
    deadline = time.time() + 30
    while "idle" not in e2e_sandbox.head("sinfo", "--noheader", "--nodes=%s" % node, "--format=%t"):
        assert time.time() < deadline, "node %s did not come back" % node
        time.sleep(1)


def test_gpu_expectation_without_nvidia_smi_fails_clearly(e2e_sandbox):
    # The sandbox's list without the GPU entries: the nodes are expected to show their GPUs.
    not_available = {name: reason for name, reason in e2e_sandbox.state["verify_not_available"].items()
                     if name not in ("gpu", "nvidia_smi", "gpu_count")}
    run = e2e_sandbox.playbook("playbooks/verify.yml", {"verify_not_available": not_available,
                                                        "verify_require_nvidia_smi": True})
    assert run.rc != 0
    for node in e2e_sandbox.compute_nodes:
        assert ("nvidia_smi on %s: expected nvidia-smi -L lists 1 GPU(s), seen nvidia-smi not found" % node) in run.output
    assert "should carry 1 GPU(s) but has no nvidia-smi" in run.output
    report = read_report(e2e_sandbox)[0]
    # The GPUs Slurm granted still match the instance type; only the missing nvidia-smi fails.
    assert {c["status"] for c in checks_of(report, "gpu_count")} == {"passed"}
    assert {c["status"] for c in checks_of(report, "nvidia_smi")} == {"failed"}


def test_destroy_refuses_without_confirmation(e2e_sandbox):
    run = e2e_sandbox.playbook("playbooks/destroy.yml")
    assert run.rc != 0
    assert "Refusing to delete cluster '%s' without confirmation" % e2e_sandbox.cluster_name in run.output
    assert "-e destroy_confirm=%s" % e2e_sandbox.cluster_name in run.output
    run = e2e_sandbox.playbook("playbooks/destroy.yml", {"destroy_confirm": "another-cluster"})
    assert run.rc != 0 and "without confirmation" in run.output


def test_destroy_refuses_while_jobs_of_any_user_are_not_finished(e2e_sandbox):
    # A finished (cancelled) job is not counted; a running job of root and a pending (held) job of another user are.
    done = e2e_sandbox.head("sbatch", "--parsable", "--hold", "--job-name=e2e-done", "--wrap", "true").strip()
    e2e_sandbox.head("scancel", done)
    job = e2e_sandbox.head("sbatch", "--parsable", "--job-name=e2e-busy", "--wrap", "sleep 300").strip()
    held = e2e_sandbox.head("runuser", "-u", "nobody", "--", "sbatch", "--parsable", "--hold", "--chdir=/tmp",
                            "--job-name=e2e-held", "--wrap", "true").strip()
    try:
        deadline = time.time() + 20
        while "RUNNING" not in e2e_sandbox.head("squeue", "--noheader", "--jobs=%s" % job, "--format=%T", check=False):
            assert time.time() < deadline, "job %s did not start" % job
            time.sleep(0.5)
        run = e2e_sandbox.playbook("playbooks/destroy.yml", {"destroy_confirm": e2e_sandbox.cluster_name})
    finally:
        e2e_sandbox.head("scancel", job, held, check=False)
    assert run.rc != 0
    assert "2 job(s) not finished" in run.output
    # The jobs as a table under its header, not squeue's raw "id|state|..." lines.
    assert re.search(r"^\s+JOBID\s+STATE\s+USER\s+PARTITION\s+NAME\s+NODES$", run.output, re.M), run.output
    assert re.search(r"^\s+%s\s+RUNNING\s+root\s+compute-gpu\s+e2e-busy\s+compute-gpu-st-" % job, run.output, re.M)
    assert re.search(r"^\s+%s\s+PENDING\s+nobody\s+compute-gpu\s+e2e-held$" % held, run.output, re.M)
    assert "|RUNNING|" not in run.output
    assert "e2e-done" not in run.output
    assert "destroy_force=true" in run.output
