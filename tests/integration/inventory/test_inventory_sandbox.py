"""hpc.pcluster.nodes against the sandbox: its moto, its cluster nodes over ssh, extra clusters in a second region."""

from __future__ import annotations

import re
import shlex

import pytest


def safe(name):
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def test_sandbox_inventory_names_the_head_node_and_the_compute_nodes(sandbox, inventory_list):
    listing = inventory_list(sandbox.inventory_dir)
    cluster = safe(sandbox.cluster_name)
    heads = listing.hosts_where(pcluster_node_type="HeadNode")
    assert heads == [f"{sandbox.cluster_name}-head"]
    head = listing.hostvars[heads[0]]
    assert head["ansible_host"] == sandbox.head_ip
    assert head["private_ip_address"] == sandbox.head_ip
    assert head["pcluster_node_cluster_name"] == sandbox.cluster_name
    assert listing.groups["head_node"] == heads
    assert listing.groups[f"{cluster}_head_node"] == heads
    computes = listing.hosts_where(pcluster_node_type="Compute")
    # The names sinfo shows, from ParallelCluster's node table in moto.
    assert computes == sorted(sandbox.compute_nodes)
    assert listing.groups[f"{cluster}_compute"] == computes
    for name, ip in zip(sandbox.compute_nodes, sandbox.compute_ips):
        assert listing.hostvars[name]["ansible_host"] == ip
        assert listing.hostvars[name]["pcluster_node_slurm_name"] == name
        assert listing.hostvars[name]["pcluster_node_jump_host"] == sandbox.head_ip
    # localhost from hosts.yml is still there: the plugin adds to the directory inventory.
    assert "localhost" in listing.hostvars or "localhost" in listing.groups.get("ungrouped", [])


def test_only_plugin_regions_and_endpoint_give_the_names_people_know(sandbox, inventory_list, tmp_path):
    config = tmp_path / "pcluster_nodes.yml"
    config.write_text("plugin: hpc.pcluster.nodes\nregions: [%s]\nendpoint_url: %s\n"
                      % (sandbox.region, sandbox.endpoint_url))
    listing = inventory_list(config)
    cluster_hosts = listing.hosts_where(pcluster_node_cluster_name=sandbox.cluster_name)
    assert cluster_hosts == sorted([f"{sandbox.cluster_name}-head", *sandbox.compute_nodes])
    assert sandbox.compute_nodes == [f"compute-gpu-st-distributed-ml-{n}" for n in range(1, len(sandbox.compute_nodes) + 1)]
    assert listing.hostvars[f"{sandbox.cluster_name}-head"]["ansible_host"] == sandbox.head_ip
    for name, ip in zip(sandbox.compute_nodes, sandbox.compute_ips):
        assert listing.hostvars[name]["ansible_host"] == ip


def test_ping_reaches_the_head_node_over_ssh_with_pinned_host_keys(ansible, sandbox):
    result = ansible("ansible", "-i", str(sandbox.inventory_dir), "head_node", "-m", "ansible.builtin.ping")
    assert re.search(r"^%s-head \| SUCCESS" % re.escape(sandbox.cluster_name), result.stdout, re.M), result.stdout
    assert re.search(r'"?ping"?: "?pong', result.stdout), result.stdout


def test_an_unknown_host_key_is_refused(ansible, nodes_config, sandbox, tmp_path):
    empty_known_hosts = tmp_path / "known_hosts"
    empty_known_hosts.write_text("")
    common = "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -i %s" % (
        empty_known_hosts, sandbox.ssh_key)
    config = nodes_config(ssh_common_args=common)
    # A command with nothing on ssh's input (raw): a module is written to ssh's input (pipelining), and when ssh has
    # already exited on the host key, Ansible can report the broken pipe ("Data could not be sent") instead of ssh's
    # own message.
    result = ansible("ansible", "-i", str(config), "head_node", "-m", "ansible.builtin.raw", "-a", "true", check=False)
    assert result.returncode != 0
    assert "Host key verification failed" in result.stdout + result.stderr


def test_compute_nodes_are_reached_through_the_head_node(ansible, nodes_config, sandbox):
    result = ansible("ansible", "-i", str(sandbox.inventory_dir), "compute", "-m", "ansible.builtin.command",
                     "-a", "hostname")
    hostnames = re.findall(r"\| CHANGED \| rc=0 >>\n(\S+)", result.stdout)
    assert sorted(hostnames) == sorted(sandbox.compute_nodes)

    # Without the hop the compute nodes' private addresses are not reachable from the controller.
    direct = nodes_config(proxy_jump=False)
    result = ansible("ansible", "-i", str(direct), "compute", "-m", "ansible.builtin.ping",
                     env={"ANSIBLE_TIMEOUT": "5"}, check=False)
    assert result.returncode != 0
    assert "UNREACHABLE" in result.stdout


def test_clusters_in_two_regions_with_their_groups_and_users(extra_clusters, nodes_config, inventory_list, sandbox):
    config = nodes_config(regions=[sandbox.region, extra_clusters.region], drop=["clusters"],
                          hostnames=["instance-id"], compose={})
    listing = inventory_list(config)
    ubuntu, rocky = extra_clusters.names["ubuntu"], extra_clusters.names["rocky"]

    assert set(listing.groups["pcluster"]) >= set(listing.hosts_where(pcluster_node_cluster_name=ubuntu))
    assert len(listing.groups[safe(sandbox.cluster_name)]) == 1 + len(sandbox.compute_nodes)
    assert listing.groups[safe(ubuntu)] == sorted(
        [extra_clusters.ids["ubuntu"]["head_instance_id"], *extra_clusters.ids["ubuntu"]["compute_instance_ids"]])
    assert listing.groups[f"{safe(ubuntu)}_head_node"] == [extra_clusters.ids["ubuntu"]["head_instance_id"]]
    assert listing.groups[f"{safe(ubuntu)}_queue_train_p5"] == sorted(extra_clusters.ids["ubuntu"]["compute_instance_ids"])
    assert listing.groups[f"{safe(rocky)}_queue_cpu"] == extra_clusters.ids["rocky"]["compute_instance_ids"]
    heads = listing.groups["head_node"]
    assert sorted(heads) == sorted([listing.hosts_where(pcluster_node_cluster_name=c, pcluster_node_type="HeadNode")[0]
                                    for c in (sandbox.cluster_name, ubuntu, rocky)])

    rocky_compute = listing.hostvars[extra_clusters.ids["rocky"]["compute_instance_ids"][0]]
    assert rocky_compute["aws_region"] == extra_clusters.region
    assert rocky_compute["pcluster_node_os"] == "rocky9"
    # remote_user: root in the sandbox's config wins over the OS user for every node...
    assert rocky_compute["ansible_user"] == "root"
    # ...and each node jumps through the head node of its own cluster.
    assert rocky_compute["pcluster_node_jump_host"] == f"10.{extra_clusters.octet}.0.20"
    assert listing.hostvars[extra_clusters.ids["ubuntu"]["compute_instance_ids"][0]]["pcluster_node_jump_host"] == (
        f"10.{extra_clusters.octet}.0.10")

    # Without remote_user the OS decides: rocky on Rocky Linux, ubuntu on Ubuntu.
    listing = inventory_list(nodes_config(regions=[extra_clusters.region], drop=["clusters", "remote_user", "compose"]))
    assert {v["ansible_user"] for v in listing.hostvars.values() if v["pcluster_node_cluster_name"] == rocky} == {"rocky"}
    assert {v["ansible_user"] for v in listing.hostvars.values() if v["pcluster_node_cluster_name"] == ubuntu} == {"ubuntu"}
    hop = shlex.split(listing.hostvars[listing.hosts_where(pcluster_node_cluster_name=rocky,
                                                           pcluster_node_type="Compute")[0]]["ansible_ssh_common_args"])
    assert hop[-1].startswith("ProxyCommand=ssh ") and hop[-1].endswith(f"-l rocky -W %h:%p 10.{extra_clusters.octet}.0.20")


def test_cluster_and_node_type_filters(extra_clusters, nodes_config, inventory_list, sandbox):
    ubuntu, rocky = extra_clusters.names["ubuntu"], extra_clusters.names["rocky"]
    listing = inventory_list(nodes_config(regions=[sandbox.region, extra_clusters.region], clusters=[rocky]))
    assert {v["pcluster_node_cluster_name"] for v in listing.hostvars.values() if "instance_id" in v} == {rocky}

    listing = inventory_list(nodes_config(regions=[sandbox.region, extra_clusters.region],
                                          clusters=[sandbox.cluster_name, ubuntu], node_types=["Compute"]))
    computes = [v for v in listing.hostvars.values() if "instance_id" in v]
    assert {v["pcluster_node_type"] for v in computes} == {"Compute"}
    assert len(computes) == len(sandbox.compute_nodes) + 2
    assert listing.groups.get("head_node", []) == []


def test_second_run_is_served_from_the_cache(counting_proxy, nodes_config, inventory_list, tmp_path, extra_clusters, sandbox):
    config = nodes_config(regions=[sandbox.region, extra_clusters.region], drop=["clusters"],
                          endpoint_url=counting_proxy.endpoint_url, cache=True,
                          cache_plugin="ansible.builtin.jsonfile", cache_connection=str(tmp_path / "cache"))
    first = inventory_list(config)
    assert counting_proxy.actions.count("DescribeInstances") == 2
    counting_proxy.actions.clear()
    second = inventory_list(config)
    assert counting_proxy.actions == []
    assert second.hostvars == first.hostvars
    assert second.groups == first.groups


@pytest.mark.parametrize("strict", [True, False])
def test_strict_turns_a_bad_keyed_group_into_an_error(strict, ansible, nodes_config):
    config = nodes_config(strict=strict, keyed_groups=[{"key": "ec2_tags.no_such_tag", "prefix": "tag"}])
    result = ansible("ansible-inventory", "-i", str(config), "--graph",
                     env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"}, check=False)
    if strict:
        assert result.returncode != 0
        assert "no_such_tag" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert "@tag_" not in result.stdout


def test_bad_options_are_one_clear_error(ansible, nodes_config):
    config = nodes_config(node_types=["HeadNode", "Workers"], address_preference=["elastic-ip"])
    result = ansible("ansible-inventory", "-i", str(config), "--graph",
                     env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"}, check=False)
    assert result.returncode != 0
    assert "invalid inventory options" in result.stderr
    assert "node_types: 'Workers' is not one of HeadNode, LoginNode, Compute" in result.stderr
    assert "address_preference: 'elastic-ip' is not one of" in result.stderr


def test_no_credentials_is_one_clear_error(ansible, nodes_config, tmp_path):
    config = nodes_config()
    result = ansible("ansible-inventory", "-i", str(config), "--graph", check=False, env={
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
        "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true"})
    assert result.returncode != 0
    assert "no AWS credentials found" in result.stderr
