"""Extra clusters in the sandbox's moto and helpers that run ansible-inventory / ansible against the sandbox."""

from __future__ import annotations

import json
import pathlib
import secrets
import shutil
import subprocess
import tempfile
import types

import pytest
import yaml

import moto_cluster  # sandbox/moto_cluster.py

from ansible_collections.hpc.pcluster.tests.unit.plugins.inventory.pcluster_moto import CountingProxy

ROOT = pathlib.Path(__file__).resolve().parents[3]

# Extra clusters live in a region the sandbox's own cluster does not use, so tests that list the
# sandbox region see only the sandbox cluster; they are removed again at the end.
EXTRA_REGION = "eu-west-1"


def unsafe_free(value):
    """ansible-inventory --list JSON with the {"__ansible_unsafe": ...} wrappers removed."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unsafe_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unsafe_free(v) for v in value]
    return value


class Listing:
    """Parsed ansible-inventory --list output."""

    def __init__(self, data):
        data = unsafe_free(data)
        self.hostvars = data.get("_meta", {}).get("hostvars", {})
        self.groups = {name: sorted(body.get("hosts", [])) for name, body in data.items() if name != "_meta"}

    def hosts_where(self, **match):
        return sorted(h for h, v in self.hostvars.items() if all(v.get(k) == val for k, val in match.items()))


@pytest.fixture(scope="module")
def extra_clusters(sandbox):
    """Two more clusters in EXTRA_REGION: an Ubuntu one with two compute nodes and a Rocky one with one."""
    suffix = secrets.token_hex(3)
    names = {"ubuntu": f"inv-u-{suffix}", "rocky": f"inv-r-{suffix}"}
    octet = 100 + secrets.randbelow(100)
    network = moto_cluster.seed_environment(
        sandbox.endpoint_url, EXTRA_REGION, f"10.{octet}.0.0/16", f"10.{octet}.0.0/24", f"10.{octet}.16.0/20",
        name_prefix=f"inv-{suffix}")
    registered = {}
    try:
        registered["ubuntu"] = moto_cluster.register_cluster(
            sandbox.endpoint_url, EXTRA_REGION, names["ubuntu"], f"10.{octet}.0.10",
            [f"10.{octet}.16.11", f"10.{octet}.16.12"], config={"Region": EXTRA_REGION},
            queue="train", compute_resource="p5", public_subnet_id=network["public_subnet_id"],
            private_subnet_id=network["private_subnet_id"])
        registered["rocky"] = moto_cluster.register_cluster(
            sandbox.endpoint_url, EXTRA_REGION, names["rocky"], f"10.{octet}.0.20", [f"10.{octet}.16.21"],
            config={"Region": EXTRA_REGION}, os_name="rocky9", queue="cpu", compute_resource="c7",
            public_subnet_id=network["public_subnet_id"], private_subnet_id=network["private_subnet_id"])
        yield types.SimpleNamespace(region=EXTRA_REGION, names=names, ids=registered, octet=octet)
    finally:
        for name in names.values():
            try:
                moto_cluster.deregister_cluster(sandbox.endpoint_url, EXTRA_REGION, name)
            except Exception:  # a cluster whose registration failed half-way
                pass


@pytest.fixture
def nodes_config(sandbox, tmp_path):
    """Write a pcluster_nodes.yml based on the sandbox's own, with some options changed; returns its path."""
    base = yaml.safe_load((pathlib.Path(sandbox.inventory_dir) / "pcluster_nodes.yml").read_text())

    def write(name="test.pcluster_nodes.yml", drop=(), **options):
        config = dict(base, **options)
        for key in drop:
            config.pop(key, None)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        return path

    return write


@pytest.fixture
def ansible(sandbox):
    """Run an Ansible CLI (ansible-inventory, ansible) with the sandbox environment."""

    control_dirs = []

    def run(*argv, env=None, check=True):
        # A fresh ssh ControlPath directory per run: no connection multiplexed by an earlier run hides what
        # this one does (a hop, a host key check).
        control_dirs.append(tempfile.mkdtemp(prefix="inv-cp-", dir="/tmp"))
        full_env = dict(sandbox.env, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                        ANSIBLE_SSH_CONTROL_PATH_DIR=control_dirs[-1])
        full_env.update(env or {})
        result = subprocess.run(list(argv), env=full_env, capture_output=True, text=True, timeout=300, cwd=ROOT,
                                check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    yield run
    for control_dir in control_dirs:
        # ssh masters (ControlPersist) of the runs exit by themselves; their sockets go with the directory.
        shutil.rmtree(control_dir, ignore_errors=True)


@pytest.fixture
def inventory_list(ansible):
    def run(source, env=None):
        result = ansible("ansible-inventory", "-i", str(source), "--list", env=env)
        return Listing(json.loads(result.stdout))

    return run


@pytest.fixture
def counting_proxy(sandbox):
    with CountingProxy(sandbox.endpoint_url) as proxy:
        yield proxy
