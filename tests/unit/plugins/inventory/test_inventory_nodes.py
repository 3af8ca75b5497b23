"""hpc.pcluster.nodes against a real moto server: groups, host variables, jumps, filters, cache and errors."""

from __future__ import annotations

import os
import shlex
import types

import pytest
from ansible.errors import AnsibleError

from ansible_collections.hpc.pcluster.plugins.inventory import nodes
from ansible_collections.hpc.pcluster.plugins.plugin_utils import ec2_instances, node_connection
from ansible_collections.hpc.pcluster.tests.unit.plugins.inventory.pcluster_moto import node_tags

BOTH_REGIONS = {"regions": ["us-east-1", "eu-west-1"]}
SCAN = "DynamoDB_20120810.Scan"


@pytest.fixture
def endpoint(moto_clusters):
    return {"endpoint_url": moto_clusters.endpoint_url}


def proxy_command(ssh_common_args):
    """The ProxyCommand of an ansible_ssh_common_args value, split as the shell that ssh starts would split it."""
    args = shlex.split(ssh_common_args)
    values = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "-o" and args[i + 1].startswith("ProxyCommand=")]
    assert len(values) == 1, ssh_common_args
    return shlex.split(values[0][len("ProxyCommand="):])


def test_verify_file_accepts_only_pcluster_nodes_files(inventory_plugin_loader, tmp_path):
    plugin = inventory_plugin_loader.get("hpc.pcluster.nodes")
    for name, expected in [("pcluster_nodes.yml", True), ("prod.pcluster_nodes.yaml", True),
                           ("aws_ec2.yml", False), ("hosts.yml", False)]:
        (tmp_path / name).write_text("plugin: hpc.pcluster.nodes\n")
        assert plugin.verify_file(str(tmp_path / name)) is expected, name
    assert plugin.verify_file(str(tmp_path / "missing.pcluster_nodes.yml")) is False


def test_groups_cover_clusters_node_types_queues_and_compute_resources(run_plugin, endpoint, moto_clusters):
    ids = moto_clusters.ids
    inv = run_plugin(dict(BOTH_REGIONS, **endpoint))

    alpha = sorted([ids["alpha_head"], ids["alpha_login"], *ids["alpha_gpu"], *ids["alpha_cpu"]])
    beta = sorted([ids["beta_head"], *ids["beta_compute"]])
    gamma = sorted([ids["gamma_head"], *ids["gamma_compute"]])
    assert inv.group_ids("pcluster") == sorted(alpha + beta + gamma)
    assert inv.group_ids("alpha") == alpha
    assert inv.group_ids("beta") == beta
    assert inv.group_ids("gamma") == gamma
    assert inv.group_ids("head_node") == sorted([ids["alpha_head"], ids["beta_head"], ids["gamma_head"]])
    assert inv.group_ids("login_node") == [ids["alpha_login"]]
    assert inv.group_ids("compute") == sorted(
        [*ids["alpha_gpu"], *ids["alpha_cpu"], *ids["beta_compute"], *ids["gamma_compute"]])
    assert inv.group_ids("alpha_head_node") == [ids["alpha_head"]]
    assert inv.group_ids("alpha_login_node") == [ids["alpha_login"]]
    assert inv.group_ids("alpha_compute") == sorted([*ids["alpha_gpu"], *ids["alpha_cpu"]])
    assert inv.group_ids("alpha_queue_compute_gpu") == sorted(ids["alpha_gpu"])
    assert inv.group_ids("alpha_queue_compute_gpu_distributed_ml") == sorted(ids["alpha_gpu"])
    assert inv.group_ids("alpha_queue_cpu") == ids["alpha_cpu"]
    assert inv.group_ids("alpha_queue_cpu_c5") == ids["alpha_cpu"]
    assert inv.group_ids("alpha_login_pool_login_pool") == [ids["alpha_login"]]
    assert inv.group_ids("beta_queue_q1_cr_1") == sorted(ids["beta_compute"])
    assert inv.group_ids("gamma_compute") == ids["gamma_compute"]
    # A stopped node and an instance of no cluster are not listed.
    listed = set(inv.by_id())
    assert ids["alpha_stopped"] not in listed
    assert ids["unrelated"] not in listed


def test_host_variables_describe_the_instance_and_the_node(run_plugin, endpoint, moto_clusters):
    ids = moto_clusters.ids
    inv = run_plugin(dict(BOTH_REGIONS, **endpoint)).by_id()

    head = inv[ids["alpha_head"]]
    described = moto_clusters.instances[ids["alpha_head"]]
    assert described["PublicIpAddress"]
    assert head["instance_id"] == ids["alpha_head"]
    assert head["instance_type"] == "m5.8xlarge"
    assert head["private_ip_address"] == "10.0.0.10"
    assert head["public_ip_address"] == described["PublicIpAddress"]
    assert head["availability_zone"] == "us-east-1a"
    assert head["instance_state"] == "running"
    assert head["aws_region"] == "us-east-1"
    assert head["pcluster_node_cluster_name"] == "alpha"
    assert head["pcluster_node_type"] == "HeadNode"
    assert head["pcluster_node_version"] == "3.16.1"
    assert head["pcluster_node_os"] == "ubuntu2204"
    assert head["ansible_user"] == "ubuntu"
    assert head["ansible_host"] == described["PublicIpAddress"]
    assert "pcluster_node_queue" not in head
    assert "ansible_ssh_common_args" not in head

    gpu = inv[ids["alpha_gpu"][0]]
    assert gpu["pcluster_node_type"] == "Compute"
    assert gpu["pcluster_node_queue"] == "compute-gpu"
    assert gpu["pcluster_node_compute_resource"] == "distributed-ml"
    assert gpu["instance_type"] == "g5.8xlarge"
    assert "public_ip_address" not in gpu
    assert gpu["ansible_host"] == gpu["private_ip_address"]

    assert inv[ids["alpha_login"]]["pcluster_node_login_pool"] == "login-pool"
    assert inv[ids["beta_compute"][0]]["ansible_user"] == "rocky"
    assert inv[ids["beta_head"]]["ansible_host"] == "10.0.16.100"


def test_os_without_attributes_tag_comes_from_the_ami_name(run_plugin, endpoint, moto_clusters):
    ids = moto_clusters.ids
    inv = run_plugin(dict(regions=["eu-west-1"], **endpoint)).by_id()
    for instance_id in [ids["gamma_head"], *ids["gamma_compute"]]:
        assert inv[instance_id]["pcluster_node_os"] == "alinux2023"
        assert inv[instance_id]["ansible_user"] == "ec2-user"
        assert inv[instance_id]["pcluster_node_version"] == "3.15.0"


def test_nodes_behind_the_head_node_get_a_proxy_command_with_the_common_args(run_plugin, endpoint, moto_clusters):
    ids = moto_clusters.ids
    common = "-i '/keys/my key' -o UserKnownHostsFile=/keys/known_hosts%1 -o StrictHostKeyChecking=yes"
    inv = run_plugin(dict(BOTH_REGIONS, ssh_common_args=common, **endpoint)).by_id()

    alpha_head_ip = moto_clusters.instances[ids["alpha_head"]]["PublicIpAddress"]
    assert inv[ids["alpha_head"]]["ansible_ssh_common_args"] == common
    for instance_id in [ids["alpha_login"], *ids["alpha_gpu"], *ids["alpha_cpu"]]:
        args = inv[instance_id]["ansible_ssh_common_args"]
        assert args.startswith(common + " ")
        # The hop runs its own ssh with the same key and known_hosts ('%' doubled for ssh's token expansion).
        assert proxy_command(args) == [
            "ssh", "-i", "/keys/my key", "-o", "UserKnownHostsFile=/keys/known_hosts%%1",
            "-o", "StrictHostKeyChecking=yes", "-l", "ubuntu", "-W", "%h:%p", alpha_head_ip,
        ]
        assert inv[instance_id]["pcluster_node_jump_host"] == alpha_head_ip
    # beta's head node has no public address: its private one is the hop, with beta's own OS user.
    assert proxy_command(inv[ids["beta_compute"][0]]["ansible_ssh_common_args"])[-4:] == [
        "rocky", "-W", "%h:%p", "10.0.16.100"]


def test_address_preference_and_remote_user_choose_the_address_and_the_user(run_plugin, endpoint, moto_clusters):
    ids = moto_clusters.ids
    inv = run_plugin(dict(regions=["us-east-1"], address_preference=["private-ip-address"], remote_user="root",
                          **endpoint)).by_id()
    assert inv[ids["alpha_head"]]["ansible_host"] == "10.0.0.10"
    assert inv[ids["alpha_head"]]["ansible_user"] == "root"
    hop = proxy_command(inv[ids["alpha_gpu"][0]]["ansible_ssh_common_args"])
    assert hop == ["ssh", "-l", "root", "-W", "%h:%p", "10.0.0.10"]


def test_proxy_jump_can_be_turned_off(run_plugin, endpoint, moto_clusters):
    inv = run_plugin(dict(regions=["us-east-1"], proxy_jump=False, ssh_common_args="-o IdentitiesOnly=yes",
                          **endpoint)).by_id()
    for hostvars in inv.values():
        assert hostvars["ansible_ssh_common_args"] == "-o IdentitiesOnly=yes"
        assert "pcluster_node_jump_host" not in hostvars


def test_session_manager_connection_variables(run_plugin, endpoint, moto_clusters):
    ids = moto_clusters.ids
    inv = run_plugin(dict(BOTH_REGIONS, use_ssm=True, ssm_bucket_name="transfer-bucket", **endpoint)).by_id()
    gamma = inv[ids["gamma_compute"][0]]
    assert gamma["ansible_connection"] == "amazon.aws.aws_ssm"
    assert gamma["ansible_aws_ssm_instance_id"] == ids["gamma_compute"][0]
    assert gamma["ansible_aws_ssm_region"] == "eu-west-1"
    assert gamma["ansible_aws_ssm_bucket_name"] == "transfer-bucket"
    assert gamma["ansible_aws_ssm_endpoint_url"] == moto_clusters.endpoint_url
    assert "ansible_ssh_common_args" not in gamma


def test_cluster_and_node_type_filters(run_plugin, endpoint, moto_clusters):
    ids = moto_clusters.ids
    inv = run_plugin(dict(BOTH_REGIONS, clusters=["beta", "gamma"], **endpoint))
    assert sorted(inv.by_id()) == sorted([ids["beta_head"], *ids["beta_compute"], ids["gamma_head"], *ids["gamma_compute"]])

    inv = run_plugin(dict(regions=["us-east-1"], clusters=["alpha"], node_types=["Compute"], **endpoint))
    assert sorted(inv.by_id()) == sorted([*ids["alpha_gpu"], *ids["alpha_cpu"]])
    assert inv.group_ids("head_node") == []
    # The head node is not listed but is still the hop of the compute nodes.
    head_ip = moto_clusters.instances[ids["alpha_head"]]["PublicIpAddress"]
    assert all(proxy_command(h["ansible_ssh_common_args"])[-1] == head_ip for h in inv.by_id().values())

    inv = run_plugin(dict(regions=["us-east-1"], node_types=["HeadNode", "LoginNode"], **endpoint))
    assert sorted(inv.by_id()) == sorted([ids["alpha_head"], ids["alpha_login"], ids["beta_head"]])


def test_hostnames_follow_the_preference_list(run_plugin, endpoint, moto_clusters):
    ids = moto_clusters.ids
    inv = run_plugin(dict(regions=["us-east-1"], clusters=["alpha"], hostnames=["public-ip-address", "private-ip-address"],
                          **endpoint))
    head_ip = moto_clusters.instances[ids["alpha_head"]]["PublicIpAddress"]
    assert inv.name_of(ids["alpha_head"]) == head_ip
    assert inv.name_of(ids["alpha_login"]) == "10.0.16.5"

    inv = run_plugin(dict(regions=["us-east-1"], hostnames=["tag:parallelcluster:node-type"], **endpoint))
    # Names taken by an earlier instance fall back to the instance id.
    names = sorted(inv.hosts)
    assert "HeadNode" in names and "Compute" in names and "LoginNode" in names
    assert len(names) == 8
    assert sum(name.startswith("i-") for name in names) == 5


def test_every_page_is_read(run_plugin, endpoint, moto_clusters, counting_proxy, monkeypatch):
    monkeypatch.setattr(ec2_instances, "PAGE_SIZE", 5)
    inv = run_plugin({"regions": ["us-east-1"], "endpoint_url": counting_proxy.endpoint_url})
    assert counting_proxy.actions.count("DescribeInstances") >= 2
    assert len(inv.hosts) == 8


def test_one_describe_call_per_region_and_no_image_lookup_when_tags_tell_the_os(run_plugin, counting_proxy):
    run_plugin({"regions": ["us-east-1"], "endpoint_url": counting_proxy.endpoint_url, "hostnames": ["instance-id"]})
    assert counting_proxy.actions == ["DescribeInstances"]
    counting_proxy.actions.clear()
    run_plugin({"regions": ["us-east-1", "eu-west-1"], "endpoint_url": counting_proxy.endpoint_url,
                "hostnames": ["instance-id"]})
    # gamma has no attributes tag: one DescribeImages for its region.
    assert sorted(counting_proxy.actions) == ["DescribeImages", "DescribeInstances", "DescribeInstances"]


def test_one_node_table_scan_per_cluster_with_compute_nodes(run_plugin, counting_proxy):
    run_plugin({"regions": ["us-east-1", "eu-west-1"], "endpoint_url": counting_proxy.endpoint_url})
    # alpha, beta and gamma have compute nodes (gamma's table is missing: still one call).
    assert counting_proxy.actions.count(SCAN) == 3
    assert counting_proxy.actions.count("DescribeInstances") == 2
    counting_proxy.actions.clear()
    run_plugin({"regions": ["us-east-1"], "endpoint_url": counting_proxy.endpoint_url, "node_types": ["HeadNode"]})
    assert SCAN not in counting_proxy.actions


def test_cache_hit_makes_no_aws_call(run_plugin, counting_proxy, tmp_path):
    options = {
        "regions": ["us-east-1", "eu-west-1"],
        "endpoint_url": counting_proxy.endpoint_url,
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(tmp_path / "cache"),
    }
    first = run_plugin(options)
    assert "DescribeInstances" in counting_proxy.actions
    counting_proxy.actions.clear()

    second = run_plugin(options)
    assert counting_proxy.actions == []
    assert second.hosts == first.hosts
    assert second.groups == first.groups

    # cache=False is what --flush-cache and meta: refresh_inventory ask for: fetch again and store it.
    run_plugin(options, cache=False)
    assert counting_proxy.actions.count("DescribeInstances") == 2
    counting_proxy.actions.clear()

    # Other query options: the cached answer no longer applies.
    narrowed = run_plugin(dict(options, clusters=["beta"]))
    assert sorted(counting_proxy.actions) == ["DescribeInstances", "DescribeInstances", SCAN]
    assert {h["pcluster_node_cluster_name"] for h in narrowed.hosts.values()} == {"beta"}
    # The Slurm node names are cached with the rest.
    assert "q1-st-cr-1-2" in second.hosts and second.hosts["q1-st-cr-1-2"] == first.hosts["q1-st-cr-1-2"]


def test_constructed_options_see_host_variables_and_tags(run_plugin, endpoint, moto_clusters):
    ids = moto_clusters.ids
    inv = run_plugin(dict(
        regions=["us-east-1"], clusters=["alpha"], strict=True,
        compose={"ansible_python_interpreter": "'/usr/bin/python3'", "node_name": "ec2_tags['Name'] | lower"},
        groups={"gpu_nodes": "instance_type.startswith('g5')"},
        keyed_groups=[{"key": "instance_type", "prefix": "type"}, {"key": "ec2_tags['parallelcluster:version']", "prefix": "v"}],
        **endpoint))
    assert inv.group_ids("gpu_nodes") == sorted(ids["alpha_gpu"])
    assert inv.group_ids("type_g5_8xlarge") == sorted(ids["alpha_gpu"])
    assert len(inv.group_ids("v_3_16_1")) == 5
    head = inv.by_id()[ids["alpha_head"]]
    assert head["ansible_python_interpreter"] == "/usr/bin/python3"
    assert head["node_name"] == "headnode"
    assert "ec2_tags" not in head


def test_strict_makes_a_bad_keyed_group_an_error(run_plugin, endpoint):
    options = dict(regions=["us-east-1"], keyed_groups=[{"key": "no_such_variable", "prefix": "x"}], **endpoint)
    inv = run_plugin(dict(options, strict=False))
    assert not [g for g in inv.groups if g.startswith("x_")]
    with pytest.raises(AnsibleError, match="no_such_variable"):
        run_plugin(dict(options, strict=True))


def test_invalid_options_are_reported_together(run_plugin, endpoint):
    with pytest.raises(AnsibleError) as error:
        run_plugin(dict(regions=["us-east-1"], hostnames=["dns-name", "bogus"], address_preference=["instance-id"],
                        ssh_common_args="-o 'unterminated", ssm_bucket_name="b", **endpoint))
    message = str(error.value)
    assert "invalid inventory options" in message
    assert "hostnames: 'bogus'" in message
    assert "address_preference: 'instance-id'" in message
    assert "ssh_common_args" in message
    assert "ssm_bucket_name: only used with use_ssm: true" in message


def test_unknown_node_type_is_refused(run_plugin, endpoint):
    with pytest.raises(AnsibleError, match="node_types"):
        run_plugin(dict(regions=["us-east-1"], node_types=["HeadNode", "Worker"], **endpoint))


def test_missing_region_is_one_clear_error(run_plugin, endpoint):
    with pytest.raises(AnsibleError, match="no region: set the 'regions' option"):
        run_plugin(dict(endpoint))


def test_region_from_the_environment(run_plugin, endpoint, aws_env, moto_clusters):
    aws_env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    inv = run_plugin(dict(endpoint))
    assert sorted(inv.by_id()) == sorted([moto_clusters.ids["gamma_head"], *moto_clusters.ids["gamma_compute"]])


def test_missing_credentials_is_one_clear_error(run_plugin, endpoint, aws_env):
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AnsibleError, match="no AWS credentials found"):
        run_plugin(dict(regions=["us-east-1"], **endpoint))


def test_unknown_profile_is_one_clear_error(run_plugin, endpoint):
    with pytest.raises(AnsibleError, match="profile.*nope"):
        run_plugin(dict(regions=["us-east-1"], profile="nope", **endpoint))


def test_unreachable_endpoint_names_the_region(run_plugin):
    from ansible_collections.hpc.pcluster.tests.unit.plugins.inventory.pcluster_moto import free_port

    with pytest.raises(AnsibleError) as error:
        run_plugin({"regions": ["us-east-1", "eu-west-1"], "endpoint_url": "http://127.0.0.1:%d" % free_port()})
    message = str(error.value)
    assert "listing cluster nodes failed" in message
    assert "us-east-1: " in message and "eu-west-1: " in message


@pytest.mark.parametrize(
    "image, expected",
    [
        ({"Name": "aws-parallelcluster-3.16.1-ubuntu-2204-lts-hvm-x86_64-202511170000 2025-11-17"}, "ubuntu2204"),
        ({"Name": "aws-parallelcluster-3.16.1-rocky9-hvm-arm64-202511170000"}, "rocky9"),
        ({"Name": "my-custom", "Tags": [{"Key": "parallelcluster:os", "Value": "rhel9"}]}, "rhel9"),
        ({"Name": "something-else"}, None),
    ],
)
def test_os_from_image(image, expected):
    assert nodes.os_from_image(image) == expected


def test_os_from_attributes_tag():
    assert nodes.os_from_attributes("alinux2023, slurm, 3.16.1, arm64") == "alinux2023"
    assert nodes.os_from_attributes("") is None
    assert nodes.os_from_attributes(None) is None


# -- host names ------------------------------------------------------------------------------------------


def test_default_host_names_are_the_names_people_know(run_plugin, endpoint, moto_clusters):
    ids = moto_clusters.ids
    inv = run_plugin(dict(BOTH_REGIONS, **endpoint))
    assert inv.name_of(ids["alpha_head"]) == "alpha-head"
    assert inv.name_of(ids["beta_head"]) == "beta-head"
    assert inv.name_of(ids["gamma_head"]) == "gamma-head"
    assert inv.name_of(ids["alpha_login"]) == "alpha-login-pool-" + ids["alpha_login"]
    # Compute nodes: their Slurm node names from the cluster's node table.
    assert inv.name_of(ids["alpha_gpu"][0]) == "compute-gpu-st-distributed-ml-1"
    assert inv.name_of(ids["alpha_cpu"][0]) == "cpu-dy-c5-1"
    assert inv.name_of(ids["beta_compute"][1]) == "q1-st-cr-1-2"
    # beta's node has the name alpha's node has: qualified by its cluster.
    assert inv.name_of(ids["beta_compute"][0]) == "beta-compute-gpu-st-distributed-ml-1"
    # Not (yet) in the node table, or no node table at all: the instance id.
    assert inv.name_of(ids["alpha_gpu"][1]) == ids["alpha_gpu"][1]
    assert inv.name_of(ids["gamma_compute"][0]) == ids["gamma_compute"][0]

    assert inv.hosts["compute-gpu-st-distributed-ml-1"]["pcluster_node_slurm_name"] == "compute-gpu-st-distributed-ml-1"
    assert inv.hosts["beta-compute-gpu-st-distributed-ml-1"]["pcluster_node_slurm_name"] == (
        "compute-gpu-st-distributed-ml-1")
    assert "pcluster_node_slurm_name" not in inv.by_id()[ids["alpha_gpu"][1]]
    # The address Ansible connects to is unchanged.
    assert inv.hosts["alpha-head"]["ansible_host"] == moto_clusters.instances[ids["alpha_head"]]["PublicIpAddress"]
    assert inv.hosts["cpu-dy-c5-1"]["ansible_host"] == inv.hosts["cpu-dy-c5-1"]["private_ip_address"]
    assert inv.group_ids("alpha_head_node") == [ids["alpha_head"]]


def test_nodes_the_table_does_not_know_are_named_in_verbose_output(run_plugin, endpoint, moto_clusters, capsys,
                                                                   monkeypatch):
    from ansible.utils.display import Display

    monkeypatch.setattr(Display(), "verbosity", 1)
    ids = moto_clusters.ids
    run_plugin(dict(BOTH_REGIONS, **endpoint))
    out = capsys.readouterr().out
    assert ("us-east-1: 1 compute node(s) of cluster alpha are not in its node table parallelcluster-slurm-alpha "
            "(yet), so they have no Slurm node name; named %s" % ids["alpha_gpu"][1]) in out
    assert "eu-west-1: cluster gamma has no node table parallelcluster-slurm-gamma" in out
    assert "cluster beta are not in" not in out


QUERY = "DynamoDB_20120810.Query"


def test_without_scan_the_index_is_queried_per_node(run_plugin, moto_clusters, counting_proxy, capsys, monkeypatch):
    from ansible.utils.display import Display

    options = {"regions": ["us-east-1"], "endpoint_url": counting_proxy.endpoint_url}
    scanned = run_plugin(options)
    counting_proxy.actions.clear()
    counting_proxy.deny = {SCAN}
    monkeypatch.setattr(Display(), "verbosity", 1)
    queried = run_plugin(options)

    # ParallelCluster's user policies allow Query, not Scan: the same names, one Query per compute node listed.
    assert queried.hosts == scanned.hosts
    ids = moto_clusters.ids
    compute = len(ids["alpha_gpu"]) + len(ids["alpha_cpu"]) + len(ids["beta_compute"])
    assert counting_proxy.actions.count(SCAN) == 2 and counting_proxy.actions.count(QUERY) == compute
    out = " ".join(capsys.readouterr().out.split())
    assert ("us-east-1: no dynamodb:Scan on parallelcluster-slurm-alpha (User: arn:aws:iam::123456789012:user/"
            "pcluster-user is not authorized to perform: dynamodb:Scan") in out
    assert "one Query of its InstanceId index per compute node (3)" in out


def test_a_node_table_that_cannot_be_read_names_the_action(run_plugin, moto_clusters, counting_proxy, capsys):
    counting_proxy.deny = {SCAN, QUERY}
    inv = run_plugin({"regions": ["us-east-1"], "endpoint_url": counting_proxy.endpoint_url, "clusters": ["beta"]})

    assert sorted(inv.hosts) == sorted(["beta-head"] + moto_clusters.ids["beta_compute"])
    err = " ".join(capsys.readouterr().err.split())
    assert ("cannot read the node table parallelcluster-slurm-beta of cluster beta (AccessDeniedException: User: "
            "arn:aws:iam::123456789012:user/pcluster-user is not authorized to perform: dynamodb:Query") in err
    assert "its compute nodes are named by instance id" in err


def test_hostnames_option_overrides_the_default_and_skips_the_node_table(run_plugin, moto_clusters, counting_proxy):
    ids = moto_clusters.ids
    inv = run_plugin({"regions": ["us-east-1"], "endpoint_url": counting_proxy.endpoint_url,
                      "hostnames": ["private-ip-address"]})
    assert SCAN not in counting_proxy.actions
    assert inv.name_of(ids["alpha_head"]) == "10.0.0.10"
    assert inv.name_of(ids["alpha_login"]) == "10.0.16.5"
    # node-name combines with the other sources: a node without one takes the next.
    inv = run_plugin({"regions": ["us-east-1"], "endpoint_url": counting_proxy.endpoint_url,
                      "hostnames": ["node-name", "private-ip-address"]})
    assert inv.name_of(ids["alpha_gpu"][0]) == "compute-gpu-st-distributed-ml-1"
    gpu = moto_clusters.instances[ids["alpha_gpu"][1]]
    assert inv.name_of(ids["alpha_gpu"][1]) == gpu["PrivateIpAddress"]


def test_every_page_of_the_node_table_is_read(run_plugin, moto_clusters, counting_proxy, monkeypatch):
    from ansible_collections.hpc.pcluster.plugins.plugin_utils import node_names

    monkeypatch.setattr(node_names, "SCAN_PAGE_SIZE", 1)
    inv = run_plugin({"regions": ["us-east-1"], "endpoint_url": counting_proxy.endpoint_url, "clusters": ["alpha"]})
    assert counting_proxy.actions.count(SCAN) >= 2
    assert {"compute-gpu-st-distributed-ml-1", "cpu-dy-c5-1"} <= set(inv.hosts)


def test_login_node_names_stay_with_their_node_when_another_is_replaced():
    from ansible_collections.hpc.pcluster.plugins.plugin_utils.node_names import login_node_names

    def login(instance_id, launched, pool=None, cluster="c"):
        tags = {"parallelcluster:cluster-name": cluster, "parallelcluster:node-type": "LoginNode"}
        if pool:
            tags["parallelcluster:login-nodes-pool-name"] = pool
        return {"instance_id": instance_id, "aws_region": "r", "launch_time": launched, "tags": tags}

    records = [login("i-3", "2025-01-02", "gpu-login"), login("i-1", "2025-01-03", "gpu-login"),
               login("i-2", "2025-01-01", "gpu-login"), login("i-9", "2025-01-01"),
               login("i-5", "2025-01-01", "gpu-login", cluster="d")]
    before = login_node_names(records)
    assert before == {"i-2": "c-gpu-login-i-2", "i-3": "c-gpu-login-i-3", "i-1": "c-gpu-login-i-1",
                      "i-9": "c-login-i-9", "i-5": "d-gpu-login-i-5"}
    # The pool's oldest node is replaced: the new one launches last, the others keep their names.
    after = login_node_names([r for r in records if r["instance_id"] != "i-2"]
                             + [login("i-7", "2025-01-04", "gpu-login")])
    assert {i: after[i] for i in before if i != "i-2"} == {i: n for i, n in before.items() if i != "i-2"}
    assert after["i-7"] == "c-gpu-login-i-7" and "c-gpu-login-i-2" not in after.values()


# -- the head node ParallelCluster created ---------------------------------------------------------------


@pytest.fixture(scope="module")
def forged_heads(moto_clusters):
    """us-west-2: cluster delta with its real head node (private address), one compute node, and instances
    tagged as delta's head node that its stack did not launch: no CloudFormation tags, another stack's tags,
    and a delta instance of another resource (a login node's) re-tagged HeadNode. Each forged one has a public
    address and is running, so a tag-only check would prefer it as the jump host."""
    from ansible_collections.hpc.pcluster.tests.unit.plugins.inventory.pcluster_moto import Network

    west = Network(moto_clusters.endpoint_url, "us-west-2", 2)
    real = west.launch(node_tags("delta", "HeadNode"), ip="10.2.16.10")[0]
    compute = west.launch(node_tags("delta", "Compute", queue="q", compute_resource="r"))[0]
    forged = {
        "untagged": node_tags("delta", "HeadNode", launched_by_stack=False),
        "other stack": dict(node_tags("delta", "HeadNode", launched_by_stack=False), **{
            "aws:cloudformation:stack-name": "attacker", "aws:cloudformation:logical-id": "HeadNode"}),
        "other resource": dict(node_tags("delta", "HeadNode", launched_by_stack=False), **{
            "aws:cloudformation:stack-name": "delta", "aws:cloudformation:logical-id": "LoginNodesPoolASG"}),
    }
    forged_ids = {kind: west.launch(tags, public=True)[0] for kind, tags in forged.items()}
    return types.SimpleNamespace(real=real, compute=compute, forged=forged_ids)


def test_only_the_head_node_the_cluster_stack_launched_is_trusted(run_plugin, endpoint, forged_heads, capsys):
    inv = run_plugin(dict(regions=["us-west-2"], **endpoint))
    assert inv.group_ids("head_node") == [forged_heads.real]
    assert inv.group_ids("delta_head_node") == [forged_heads.real]
    listed = set(inv.by_id())
    assert not listed & set(forged_heads.forged.values())
    compute = inv.by_id()[forged_heads.compute]
    assert compute["pcluster_node_jump_host"] == "10.2.16.10"
    assert proxy_command(compute["ansible_ssh_common_args"])[-1] == "10.2.16.10"
    err = capsys.readouterr().err
    for instance_id in forged_heads.forged.values():
        assert "%s (us-west-2) is tagged as the head node of cluster delta, but the cluster's CloudFormation " \
               "stack did not launch it" % instance_id in " ".join(err.split())


# -- reaching the head node ------------------------------------------------------------------------------


def test_head_and_login_nodes_carry_the_command_that_reaches_them(run_plugin, endpoint, moto_clusters, tmp_path):
    common = "-i '/keys/my key' -o UserKnownHostsFile=/keys/known_hosts -o StrictHostKeyChecking=yes"
    inv = run_plugin(dict(regions=["us-east-1"], clusters=["alpha"], ssh_common_args=common, **endpoint))
    head_ip = moto_clusters.instances[moto_clusters.ids["alpha_head"]]["PublicIpAddress"]
    assert shlex.split(inv.hosts["alpha-head"]["pcluster_node_connect_command"]) == [
        "ssh", "-i", "/keys/my key", "-o", "UserKnownHostsFile=/keys/known_hosts", "-o", "StrictHostKeyChecking=yes",
        "ubuntu@" + head_ip]
    login = shlex.split(inv.hosts["alpha-login-pool-" + moto_clusters.ids["alpha_login"]]["pcluster_node_connect_command"])
    assert login[-1] == "ubuntu@10.0.16.5" and proxy_command(" ".join(shlex.quote(a) for a in login[1:-1]))
    assert "pcluster_node_connect_command" not in inv.hosts["cpu-dy-c5-1"]

    plugin_bin = tmp_path / "bin"
    plugin_bin.mkdir()
    (plugin_bin / "session-manager-plugin").write_text("#!/bin/sh\n")
    (plugin_bin / "session-manager-plugin").chmod(0o755)
    inv = run_plugin(dict(regions=["us-east-1"], clusters=["alpha"], use_ssm=True, profile=None, **endpoint))
    assert shlex.split(inv.hosts["alpha-head"]["pcluster_node_connect_command"]) == [
        "aws", "ssm", "start-session", "--target", moto_clusters.ids["alpha_head"], "--region", "us-east-1",
        "--endpoint-url", moto_clusters.endpoint_url]


def test_session_manager_without_its_plugin_is_named_on_every_node(run_plugin, endpoint, aws_env, tmp_path, capsys):
    aws_env.setenv("PATH", str(tmp_path))  # no session-manager-plugin here
    aws_env.delenv("AWS_SESSION_MANAGER_PLUGIN", raising=False)
    if os.path.exists(node_connection.SSM_PLUGIN_DEFAULT_PATH):
        pytest.skip("this machine has %s" % node_connection.SSM_PLUGIN_DEFAULT_PATH)
    inv = run_plugin(dict(regions=["us-east-1"], clusters=["alpha"], use_ssm=True, **endpoint))
    problem = inv.hosts["alpha-head"]["pcluster_node_connection_problem"]
    assert "use_ssm: true needs the AWS Session Manager plugin (session-manager-plugin) on this controller" in problem
    assert "AWS_SESSION_MANAGER_PLUGIN" in problem
    assert all(h["pcluster_node_connection_problem"] == problem for h in inv.hosts.values())

    plugin = tmp_path / "session-manager-plugin"
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    inv = run_plugin(dict(regions=["us-east-1"], clusters=["alpha"], use_ssm=True, **endpoint))
    assert not [h for h in inv.hosts.values() if "pcluster_node_connection_problem" in h]
    aws_env.setenv("AWS_SESSION_MANAGER_PLUGIN", str(tmp_path / "elsewhere"))
    inv = run_plugin(dict(regions=["us-east-1"], clusters=["alpha"], use_ssm=True, **endpoint))
    assert "AWS_SESSION_MANAGER_PLUGIN is %s, which does not exist" % (tmp_path / "elsewhere") in (
        inv.hosts["alpha-head"]["pcluster_node_connection_problem"])
