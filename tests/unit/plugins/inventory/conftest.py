"""A private moto server holding several ParallelCluster clusters in two regions, and a runner for the plugin."""

from __future__ import annotations

import os
import types

import pytest
import yaml

import moto_cluster  # sandbox/moto_cluster.py: ParallelCluster's node table

from ansible_collections.hpc.pcluster.tests.unit.plugins.inventory.pcluster_moto import CountingProxy, MotoServer, Network, node_tags


@pytest.fixture(scope="session")
def moto_clusters():
    """Clusters registered in a private moto server.

    us-east-1: ``alpha`` (ubuntu2204; head node with a public IP, one login node, compute nodes in two queues, one
    stopped compute node), ``beta`` (rocky9; head node without a public IP) and an instance that is not part of
    any cluster. eu-west-1: ``gamma`` whose instances lack the attributes tag (the OS comes from its AMI name).

    Node tables (Slurm node name -> instance): alpha's holds its first GPU node and its CPU node, not its second
    GPU node (launched, not recorded yet); beta's names its first node like alpha's first GPU node; gamma has none.
    """
    with MotoServer() as server:
        east = Network(server.endpoint_url, "us-east-1", 0)
        west = Network(server.endpoint_url, "eu-west-1", 1)
        ids = {}
        ids["alpha_head"] = east.launch(node_tags("alpha", "HeadNode"), public=True, ip="10.0.0.10",
                                        instance_type="m5.8xlarge")[0]
        ids["alpha_login"] = east.launch(node_tags("alpha", "LoginNode", pool="login-pool"), ip="10.0.16.5")[0]
        ids["alpha_gpu"] = east.launch(
            node_tags("alpha", "Compute", queue="compute-gpu", compute_resource="distributed-ml"), count=2,
            instance_type="g5.8xlarge")
        ids["alpha_cpu"] = east.launch(node_tags("alpha", "Compute", queue="cpu", compute_resource="c5"))
        stopped = east.launch(node_tags("alpha", "Compute", queue="cpu", compute_resource="c5"))
        east.ec2.stop_instances(InstanceIds=stopped)
        ids["alpha_stopped"] = stopped[0]
        ids["beta_head"] = east.launch(node_tags("beta", "HeadNode", os_name="rocky9"), ip="10.0.16.100")[0]
        ids["beta_compute"] = east.launch(
            node_tags("beta", "Compute", os_name="rocky9", queue="q1", compute_resource="cr-1"), count=2)
        ids["unrelated"] = east.launch({"Name": "web"})[0]
        gamma_image = west.pcluster_image("aws-parallelcluster-3.15.0-amzn2023-hvm-x86_64-202510010000 2025-10-01")
        ids["gamma_head"] = west.launch(node_tags("gamma", "HeadNode", os_name=None, version="3.15.0"),
                                        public=True, image_id=gamma_image)[0]
        ids["gamma_compute"] = west.launch(
            node_tags("gamma", "Compute", os_name=None, version="3.15.0", queue="q", compute_resource="r"),
            image_id=gamma_image)
        moto_cluster.register_slurm_nodes(server.endpoint_url, "us-east-1", "alpha", {
            "compute-gpu-st-distributed-ml-1": ids["alpha_gpu"][0], "cpu-dy-c5-1": ids["alpha_cpu"][0]}, "10.0.0.10")
        moto_cluster.register_slurm_nodes(server.endpoint_url, "us-east-1", "beta", {
            "compute-gpu-st-distributed-ml-1": ids["beta_compute"][0], "q1-st-cr-1-2": ids["beta_compute"][1]},
            "10.0.16.100")
        described = {}
        for network in (east, west):
            for reservation in network.ec2.describe_instances()["Reservations"]:
                for instance in reservation["Instances"]:
                    described[instance["InstanceId"]] = instance
        yield types.SimpleNamespace(endpoint_url=server.endpoint_url, ids=ids, instances=described)


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Dummy credentials and no AWS configuration files or instance metadata from the machine."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture(scope="session")
def inventory_plugin_loader():
    from ansible.plugins.loader import inventory_loader

    return inventory_loader


class Inventory:
    """What one parse produced: host names, groups and host variables."""

    def __init__(self, data):
        self.data = data
        self.hosts = {name: host.get_vars() for name, host in data.hosts.items()}
        self.groups = {name: sorted(h.name for h in group.get_hosts()) for name, group in data.groups.items()}

    def by_id(self):
        return {hostvars["instance_id"]: hostvars for hostvars in self.hosts.values()}

    def name_of(self, instance_id):
        return next(name for name, hostvars in self.hosts.items() if hostvars["instance_id"] == instance_id)

    def group_ids(self, group):
        return sorted(self.hosts[name]["instance_id"] for name in self.groups.get(group, []))


@pytest.fixture
def run_plugin(inventory_plugin_loader, tmp_path, aws_env):
    """Write a pcluster_nodes.yml with the given options and parse it with the plugin, in this process."""
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader

    def run(options, cache=True, name="test.pcluster_nodes.yml"):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(dict({"plugin": "hpc.pcluster.nodes"}, **options)))
        plugin = inventory_plugin_loader.get("hpc.pcluster.nodes")
        assert plugin.verify_file(str(path))
        data = InventoryData()
        plugin.parse(data, DataLoader(), str(path), cache=cache)
        # InventoryManager does this after every parse: it writes the cache plugin's changes to its storage.
        try:
            plugin.update_cache_if_changed()
        except AttributeError:  # no cache plugin when the cache option is off
            pass
        data.reconcile_inventory()
        return Inventory(data)

    return run


@pytest.fixture
def counting_proxy(moto_clusters):
    with CountingProxy(moto_clusters.endpoint_url) as proxy:
        yield proxy
