"""Role hpc.pcluster.cluster_config applied for real with ansible-playbook on localhost (no AWS call)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import socket
import stat
import subprocess
import threading

import yaml

from ansible_collections.hpc.pcluster.tests.unit.roles import playbook_run
from ansible_collections.hpc.pcluster.tests.unit.roles.playbook_run import recap

HERE = pathlib.Path(__file__).resolve().parent / "cluster_config"
INVENTORY = HERE / "inventory"
ENV_VALUES = yaml.safe_load((INVENTORY / "group_vars" / "all" / "env.yml").read_text())
REQUIRED = [name for name in ENV_VALUES if name.startswith("cluster_config_")]


def ansible_playbook(playbook, *args, extra=None, env=None):
    return playbook_run.ansible_playbook(HERE / playbook, INVENTORY, *args, extra=extra, env=env)


def test_render_writes_0600_file_sets_facts_and_is_idempotent(tmp_path):
    out = tmp_path / "clusters" / "ml" / "cluster-config.yaml"
    facts = tmp_path / "facts.json"
    extra = {"cluster_config_output_path": str(out), "facts_out": str(facts),
             "cluster_config_tags": {"note": "a: b", "team": "ml-platform"},
             "cluster_config_compute_max_count": "4", "cluster_config_scaledown_idletime": 10}

    first = ansible_playbook("render.yml", extra=extra)
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap(first, "changed") == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700

    written = yaml.safe_load(out.read_text())
    published = json.loads(facts.read_text())
    assert published["cluster_config_file"] == str(out)
    assert published["cluster_config_data"] == written
    assert written["HeadNode"]["Networking"]["SubnetId"] == ENV_VALUES["cluster_config_public_subnet_id"]
    assert written["Tags"] == [{"Key": "note", "Value": "a: b"}, {"Key": "team", "Value": "ml-platform"}]
    assert written["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MaxCount"] == 4
    assert "DeploymentType" not in written["SharedStorage"][1]["FsxLustreSettings"]
    # Least privilege by default: read-only ECR, read access to the scripts' bucket only, SSH from the CIDR given,
    # no Docker script (the compute nodes run the node setup first); nothing to warn about.
    for node in [written["HeadNode"]] + written["Scheduling"]["SlurmQueues"]:
        assert [p["Policy"].rsplit("/", 1)[1] for p in node["Iam"]["AdditionalIamPolicies"]] == [
            "AmazonSSMManagedInstanceCore", "AmazonEC2ContainerRegistryReadOnly"]
        assert node["Iam"]["S3Access"] == [{"BucketName": "my-bucket"}]
    assert "postinstall.sh" not in out.read_text()
    node_setup = published["cluster_config_node_setup_script"]
    assert node_setup["url"] == "s3://my-bucket/hpc-pcluster-node-setup-v1.sh"
    assert written["Scheduling"]["SlurmQueues"][0]["CustomActions"]["OnNodeConfigured"]["Sequence"][0][
        "Script"] == node_setup["url"]
    assert written["HeadNode"]["Ssh"] == {"KeyName": ENV_VALUES["cluster_config_ssh_key_name"],
                                          "AllowedIps": ENV_VALUES["cluster_config_ssh_allowed_ips"]}
    assert "[WARNING]" not in first.stdout + first.stderr
    assert published["cluster_config_validation"] == {
        "valid": True, "offline_checked": True, "schema_checked": True, "full_checked": False, "dryrun_message": "",
        "validation_messages": {"ERROR": [], "WARNING": [], "INFO": []}}
    before = out.read_bytes()

    second = ansible_playbook("render.yml", extra=extra)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second, "changed") == 0
    assert out.read_bytes() == before

    # Loosened permissions and an edited value are put back, with a diff of the YAML.
    out.chmod(0o644)
    out.write_text(out.read_text().replace("MaxCount: 4", "MaxCount: 40"))
    third = ansible_playbook("render.yml", "--diff", extra=extra)
    assert third.returncode == 0, third.stdout + third.stderr
    assert recap(third, "changed") == 1
    assert "-          MaxCount: 40" in third.stdout and "+          MaxCount: 4" in third.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_bytes() == before


def test_without_the_container_roles_the_queues_get_no_node_setup_step(tmp_path):
    """pcluster_containers_enabled: false leaves the containers playbook, and so the node-setup bundle, out of
    deploy.yml: a node-setup step would hold every compute node for a setup that never comes. The step follows
    it unless cluster_config_node_setup_enabled says otherwise."""
    def render(name, **variables):
        out, facts = tmp_path / name / "cluster-config.yaml", tmp_path / name / "facts.json"
        run = ansible_playbook("render.yml", extra=dict(variables, cluster_config_output_path=str(out),
                                                        facts_out=str(facts)))
        assert run.returncode == 0, run.stdout + run.stderr
        sequence = yaml.safe_load(out.read_text())["Scheduling"]["SlurmQueues"][0]["CustomActions"][
            "OnNodeConfigured"]["Sequence"]
        return [step["Script"] for step in sequence], json.loads(facts.read_text())["cluster_config_node_setup_script"]

    scripts, node_setup = render("off", pcluster_containers_enabled=False)
    assert node_setup is None
    assert scripts == [ENV_VALUES["cluster_config_compute_node_bootstrap_script"]]
    scripts, node_setup = render("asked", pcluster_containers_enabled=False, cluster_config_node_setup_enabled=True)
    assert scripts == [node_setup["url"], ENV_VALUES["cluster_config_compute_node_bootstrap_script"]]


def test_check_mode_writes_nothing(tmp_path):
    out = tmp_path / "new" / "cluster-config.yaml"
    result = ansible_playbook("render.yml", "--check",
                              extra={"cluster_config_output_path": str(out), "facts_out": str(tmp_path / "f.json")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert not out.parent.exists()


def test_bad_inputs_are_reported_at_once_and_nothing_is_written(tmp_path):
    messages_file = tmp_path / "messages.json"
    result = ansible_playbook("failures.yml", extra={"output_dir": str(tmp_path), "facts_out": str(messages_file)})
    assert result.returncode == 0, result.stdout + result.stderr
    messages = json.loads(messages_file.read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["messages.json"]

    placeholders = messages["placeholders"]
    assert "has %d problems" % len(REQUIRED) in placeholders
    for name in REQUIRED:
        assert "%s is required and not set" % name in placeholders

    several = messages["several_problems"]
    assert "has 6 problems" in several
    for expected in (
        "cluster_name (from pcluster_cluster_name): The cluster name '9-lives' may hold only letters",
        "Image.Os (from cluster_config_os): Unknown operating system 'ubuntu1804'",
        "HeadNode.LocalStorage.RootVolume.Size (from cluster_config_head_node_root_volume_size): The size must be "
        "a positive number",
        "Scheduling.SlurmSettings.CustomSlurmSettings[0].SlurmctldHost (from cluster_config_custom_slurm_settings): "
        "The Slurm setting SlurmctldHost is managed by ParallelCluster",
        "Scheduling.SlurmQueues[0].Name (from cluster_config_queue_name): Queue name 'GPU' must begin with",
        "Scheduling.SlurmQueues[0].ComputeResources[0].MinCount (from cluster_config_compute_min_count): "
        "MinCount (5) is greater than MaxCount (2)",
    ):
        assert expected in several, several

    assert "the VPC's CIDR" in placeholders and "Session Manager" in placeholders

    assert ("cluster_config_cluster_name is gone: the cluster's name is pcluster_cluster_name, the one every playbook "
            "and role uses") in messages["two_names"] and "Set pcluster_cluster_name instead." in messages["two_names"]

    assert "Did you mean cluster_config_compute_max_count?" in messages["unknown_variable"]
    assert "has 1 problem:" in messages["unknown_variable"]

    power_saving = messages["dynamic_nodes_never_start"]
    assert "has 1 problem:" in power_saving
    assert ("Scheduling.SlurmSettings.ScaledownIdletime (from cluster_config_scaledown_idletime): ScaledownIdletime -1 "
            "makes ParallelCluster write SuspendTime=-1") in power_saving
    assert "Set ScaledownIdletime to 1 or more" in power_saving

    markup = messages["literal_markup"]
    assert "Tags[0].Value (from cluster_config_tags): The value holds Jinja2 template markup" in markup
    assert "Tags[1].Value (from cluster_config_tags): The value holds an unsubstituted shell variable (${USER})" in markup
    assert "uid=" not in markup  # the !unsafe lookup stayed a literal, it never ran


def test_lookup_in_a_vars_file_never_reaches_the_config(tmp_path):
    """Ansible renders templates in trusted vars files: the output must fail the id patterns, not be written."""
    out = tmp_path / "cluster-config.yaml"
    vars_file = tmp_path / "evil.yml"
    vars_file.write_text(
        "cluster_config_public_subnet_id: \"{{ lookup('pipe', 'id') }}\"\n"
        "cluster_config_security_group_id: \"sg-0123456789abcdef0\\nInjected: true\"\n"
        "cluster_config_private_subnet_id: 'subnet-0fedcba9876543210: {Injected: true}'\n"
    )
    result = ansible_playbook("render.yml", "-e", "@%s" % vars_file,
                              extra={"cluster_config_output_path": str(out), "facts_out": str(tmp_path / "f.json")})
    assert result.returncode != 0
    assert not out.exists()
    output = result.stdout
    uid = subprocess.run(["id"], capture_output=True, text=True, check=True).stdout.strip()
    assert "HeadNode.Networking.SubnetId (from cluster_config_public_subnet_id): '%s' is not a subnet id" % uid in output
    assert "HeadNode.Networking.AdditionalSecurityGroups[0] (from cluster_config_security_group_id): The value " \
           "holds a line break" in output
    assert "Scheduling.SlurmQueues[0].Networking.SubnetIds[0] (from cluster_config_private_subnet_id): " \
           "'subnet-0fedcba9876543210: {Injected: true}' is not a subnet id" in output


def poisoned_endpoint():
    """A local TCP port that counts the connections made to it, as AWS_ENDPOINT_URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []

    def serve():
        while True:
            try:
                conn, _address = server.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, accepted


def test_guide_behaviour_on_request_with_warnings_and_no_aws_call_offline(tmp_path):
    """The guide's full access, world-open SSH and unpinned script come back only when asked, each with a
    warning; the cluster is named by pcluster_cluster_name; and the offline check of a config with a
    capacity reservation neither looks for credentials nor calls the endpoint."""
    server, accepted = poisoned_endpoint()
    env = {"HOME": str(tmp_path), "AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % server.getsockname()[1],
           "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:%d" % server.getsockname()[1],
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp")}
    extra = {"facts_out": str(tmp_path / "facts.json"), "pcluster_cluster_name": "guide-cluster",
             "cluster_config_iam_full_access": True, "cluster_config_ssh_allowed_ips": "0.0.0.0/0",
             "cluster_config_docker_postinstall_enabled": True, "cluster_config_docker_postinstall_url": "https://raw.githubusercontent.com/aws-samples/"
             "aws-parallelcluster-post-install-scripts/main/docker/postinstall.sh",
             "cluster_config_capacity_reservation_id": "cr-0123456789abcdef0"}
    try:
        result = ansible_playbook("render.yml", extra=extra, env=env)
    finally:
        server.close()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    out = tmp_path / ".hpc-pcluster" / "guide-cluster" / "cluster-config.yaml"
    written = yaml.safe_load(out.read_text())
    assert [p["Policy"].rsplit("/", 1)[1] for p in written["HeadNode"]["Iam"]["AdditionalIamPolicies"]] == [
        "AmazonSSMManagedInstanceCore", "AmazonS3FullAccess", "AmazonEC2ContainerRegistryFullAccess",
        "AmazonElasticContainerRegistryPublicFullAccess"]
    warnings = " ".join(re.findall(r"\[WARNING\]: (.*(?:\n(?!\S).*)*)", output))
    warnings = " ".join(warnings.split())
    assert "HeadNode, Scheduling.SlurmQueues[0] get AmazonS3FullAccess" in warnings, output
    assert "SSH port is open to the whole internet" in warnings
    assert "runs the script of 'main' as root" in warnings
    assert "credentials" not in output.lower() and "describe_capacity_reservations" not in output
    assert accepted == []


# What a collection build holds (galaxy.yml's build_ignore leaves out the rest); copied for a second build.
BUILD_TREE_IGNORE = shutil.ignore_patterns(".git", ".venv", "collections", "sandbox", "bench", "reports", "output",
                                           "molecule", "__pycache__", "*.pyc", ".pytest_cache", "*.tar.gz")


def build_and_install(source, work):
    """ansible-galaxy collection build of source, installed into work/collections; returns that path."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(work / "none.cfg"))
    (work / "none.cfg").write_text("[defaults]\n")
    galaxy = str(playbook_run.BIN / "ansible-galaxy")
    build = subprocess.run([galaxy, "collection", "build", "--output-path", str(work), str(source)], env=env,
                           capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    install = subprocess.run([galaxy, "collection", "install", "--no-deps", "-p", str(work / "collections"),
                              str(next(work.glob("hpc-pcluster-*.tar.gz")))], env=env, capture_output=True, text=True,
                             timeout=300, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    return work / "collections"


def test_two_builds_that_differ_in_the_node_setup_roles_render_the_same_cluster_config(tmp_path):
    # A queue's CustomActions changing makes ParallelCluster drain and replace every node of the queue (or stop the
    # fleet): a collection upgrade that changes what the nodes run must not change them. What changes from release
    # to release goes into the bundle on shared storage; the loader the config names keeps its key and Args.
    later = tmp_path / "later-source"
    shutil.copytree(playbook_run.ROOT, later, ignore=BUILD_TREE_IGNORE, symlinks=True)
    galaxy_yml = later / "galaxy.yml"
    galaxy_yml.write_text(re.sub(r"(?m)^version: .*$", "version: 99.1.0", galaxy_yml.read_text()))
    for name in ("files/hpc-pcluster-node-setup.sh", "files/run.py", "tasks/stage.yml", "tasks/fleet.yml"):
        with open(later / "roles" / "node_setup" / name, "a", encoding="utf-8") as handle:
            handle.write("# a change of release 99.1.0\n")
    rendered = []
    for label, source in (("this", playbook_run.ROOT), ("later", later)):
        work = tmp_path / label
        work.mkdir()
        collections = build_and_install(source, work)
        out = work / "cluster-config.yaml"
        run = playbook_run.ansible_playbook(HERE / "render.yml", INVENTORY, env=dict(
            os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections)), extra={
                "cluster_config_output_path": str(out), "facts_out": str(work / "facts.json")})
        assert run.returncode == 0, run.stdout + run.stderr
        facts = json.loads((work / "facts.json").read_text())
        assert facts["cluster_config_node_setup_script"]["src"].startswith(str(collections))
        rendered.append((out.read_text(), facts["cluster_config_node_setup_script"]))
    (this_text, this_script), (later_text, later_script) = rendered
    assert this_script["sha256"] != later_script["sha256"]  # the loader itself did change
    assert later_text == this_text
    assert this_script["url"] == later_script["url"] and this_script["url"].endswith("/hpc-pcluster-node-setup-v1.sh")
