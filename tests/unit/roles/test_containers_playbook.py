"""playbooks/containers.yml and role hpc.pcluster.pyxis with two clusters in one inventory: the play
touches only the cluster being deployed, and each cluster's shared Slurm directory is written by that
cluster's own head node. Run for real with ansible-playbook; the nodes are local connections (writing
under tmp_path only) or, for the cluster that must not be touched, addresses nothing answers on."""

from __future__ import annotations

import pathlib
import re

import yaml

from ansible_collections.hpc.pcluster.tests.unit.roles import playbook_run

ROOT = pathlib.Path(__file__).resolve().parents[3]
HERE = pathlib.Path(__file__).resolve().parent / "containers"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def run_playbook(playbook, inventory, extra=None, args=()):
    proc = playbook_run.ansible_playbook(playbook, inventory, *args, extra=extra or None)
    return proc, {m.group(1): m.groups()[1:] for m in RECAP.finditer(proc.stdout)}


def node(cluster, local, tmp_path, name):
    if local:
        out = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}
    else:
        # TEST-NET-1 (RFC 5737): never answers; connecting there fails the play as unreachable.
        out = {"ansible_host": "192.0.2.%d" % (10 + len(name)), "ansible_ssh_common_args": "-o ConnectTimeout=3"}
    out["pcluster_node_cluster_name"] = cluster
    return out


def write_inventory(tmp_path, local_clusters):
    hosts = {"head_node": {}, "compute": {}}
    for cluster in ("alpha", "beta"):
        local = cluster in local_clusters
        hosts["head_node"]["%s-head" % cluster] = node(cluster, local, tmp_path, "%s-head" % cluster)
        hosts["compute"]["%s-compute-1" % cluster] = node(cluster, local, tmp_path, "%s-compute-1" % cluster)
    inventory = {"all": {"children": {group: {"hosts": members} for group, members in hosts.items()}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def test_containers_playbook_touches_only_the_cluster_being_deployed(tmp_path):
    inventory = write_inventory(tmp_path, local_clusters={"alpha"})
    # The roles themselves are not under test here: the play's host selection is.
    # The compute nodes over SSH too, so that the selection of every group is seen.
    # The compute nodes set up over SSH are released from their hold for setup: a stand-in scontrol that knows
    # no reservation (as Slurm answers for a node that was never held) and logs what it is asked.
    slurm_bin = tmp_path / "slurm-bin"
    slurm_bin.mkdir()
    (slurm_bin / "scontrol").write_text('#!/bin/sh\necho "$*" >> %s\n'
                                        'echo "delete_reservation $2: Requested reservation is invalid"; exit 1\n'
                                        % (tmp_path / "scontrol-calls"))
    (slurm_bin / "scontrol").chmod(0o755)
    extra = {"pcluster_cluster_name": "alpha", "containers_docker_enabled": False,
             "containers_enroot_enabled": False, "containers_pyxis_enabled": False, "node_setup_compute_path": "ssh",
             "node_setup_slurm_bin_dir": str(slurm_bin)}
    proc, recap = run_playbook(ROOT / "playbooks" / "containers.yml", inventory, extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert sorted(recap) == ["alpha-compute-1", "alpha-head", "localhost"], recap
    assert "[beta-" not in proc.stdout and "192.0.2." not in proc.stdout  # no task ran for the other cluster
    assert (tmp_path / "scontrol-calls").read_text() == "delete reservation=hpc-pcluster-node-setup-alpha-compute-1\n"


def pyxis_inventory(tmp_path):
    """Both clusters local, each with its own shared Slurm directory under tmp_path."""
    inventory = write_inventory(tmp_path, local_clusters={"alpha", "beta"})
    data = yaml.safe_load(inventory.read_text())
    plugin = tmp_path / "spank_pyxis.so"
    plugin.write_bytes(b"stand-in; Slurm never loads it in this test\n")
    for group in data["all"]["children"].values():
        for name, hostvars in group["hosts"].items():
            cluster = hostvars["pcluster_node_cluster_name"]
            hostvars.update({
                "pyxis_slurm_etc_dir": str(tmp_path / cluster / "etc"),
                "pyxis_plugin_path": str(plugin),
                "pyxis_runtime_path": str(tmp_path / name / "run" / "pyxis"),
                "pyxis_examples_dir": str(tmp_path / "examples"),
                "pyxis_tmpfiles_enabled": False,
                "pyxis_reload_slurm": False,
            })
    inventory.write_text(yaml.safe_dump(data))
    return inventory


def test_each_cluster_s_shared_pyxis_files_are_written_by_its_own_head_node(tmp_path):
    proc, recap = run_playbook(HERE / "pyxis_two_clusters.yml", pyxis_inventory(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    for cluster in ("alpha", "beta"):
        etc = tmp_path / cluster / "etc"
        assert (etc / "plugstack.conf").read_text().strip() == "include %s/plugstack.conf.d/*.conf" % etc
        assert (etc / "plugstack.conf.d" / "pyxis.conf").resolve() == etc / "pyxis" / "pyxis.conf"
        assert "written by %s-head" % cluster in proc.stdout
    assert set(recap) == {"alpha-head", "alpha-compute-1", "beta-head", "beta-compute-1"}


def test_a_compute_node_alone_writes_the_shared_pyxis_files_only_without_a_named_writer(tmp_path):
    # As the node-setup bundle runs the role: the compute node alone in its play. Naming the head node as the
    # writer (playbooks/node_local.yml does) leaves the shared directory to it; without a name the node writes it.
    inventory = pyxis_inventory(tmp_path)
    etc = tmp_path / "alpha" / "etc"
    proc, recap = run_playbook(HERE / "pyxis_two_clusters.yml", inventory,
                               {"pyxis_shared_config_writer": "alpha-head"}, ["--limit", "alpha-compute-1"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert set(recap) == {"alpha-compute-1"}
    assert not (etc / "plugstack.conf").exists() and not (etc / "pyxis").exists()
    assert (tmp_path / "alpha-compute-1" / "run" / "pyxis").is_dir()  # the node's own part is done
    proc, recap = run_playbook(HERE / "pyxis_two_clusters.yml", inventory, args=["--limit", "alpha-compute-1"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "written by alpha-compute-1" in proc.stdout and (etc / "plugstack.conf").is_file()
