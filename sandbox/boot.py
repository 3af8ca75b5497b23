"""Starting the sandbox's nodes: shared file systems, a root of its own per node, the network,
the package-mirror proxy, then munge, Slurm and sshd in every node (sandbox.py up)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import container_chain
import nodes
import rootfs

HERE = Path(__file__).resolve().parent


class BootError(Exception):
    """A step that failed, with a message meant for the user."""


def node_layout(state_dir: Path, state: dict, name: str) -> dict:
    """Where node name's root is built (rootfs.start_node) and what of the machine it sees."""
    inside = rootfs.NODE_SANDBOX_DIR
    return {"shared": str(state_dir / "shared"), "roots": str(state_dir / "roots"),
            "ami": state["containers"]["ami"]["path"],
            "binds": [(str(state_dir / "logs"), f"{inside}/logs", "rw"),
                      (str(state_dir / "nodes" / name), f"{inside}/node", "ro"),
                      (str(state_dir / "ssh" / "authorized_keys"), f"{inside}/authorized_keys", "ro"),
                      (str(HERE / "bin"), f"{inside}/bin", "ro"),
                      # Slurm's ResumeProgram and SuspendProgram hand requests to the fleet stand-in here.
                      (str(state_dir / "fleet"), f"{inside}/fleet", "rw")]}


def start_holders(state_dir: Path, state: dict, p: dict, save) -> tuple[int, list]:
    """The base holder with the shared file systems, one holder per node with its root, the network
    and the proxy. Returns (head holder pid, compute holder pids); save(state) records progress."""
    base = rootfs.start_base(state_dir / "shared")
    state["holders"]["base"] = base.pid
    save(state)
    nodes.wait_holder(base, "the shared file systems")
    shared = {name: rootfs.shared_path(base.pid, str(state_dir / "shared"), name) for name in rootfs.SHARED}
    nodes.populate_shared(shared, p, f"{rootfs.NODE_SANDBOX_DIR}/logs")
    container_chain.install_image(state["containers"], shared["fsx"])
    procs = {"head": rootfs.start_node(base.pid, p["head"]["name"], False, 0,
                                       node_layout(state_dir, state, p["head"]["name"]))}
    for c in p["computes"]:
        procs[c["name"]] = rootfs.start_node(base.pid, c["name"], True, p["gpus_per_node"],
                                             node_layout(state_dir, state, c["name"]))
    for name, proc in procs.items():
        state["holders"][name] = proc.pid
    save(state)
    for name, proc in procs.items():
        nodes.wait_holder(proc, f"node {name}")
    head_pid = procs["head"].pid
    compute_pids = [procs[c["name"]].pid for c in p["computes"]]
    nodes.setup_network(p, head_pid, compute_pids)
    if not state["containers"]["proxy"]["note"]:
        state["proxy_pid"] = container_chain.start_proxy(state_dir, state["containers"], head_pid).pid
        save(state)
    return head_pid, compute_pids


def write_keys(state_dir: Path, state: dict, keygens: list) -> None:
    """The login key's authorized_keys (bound into every node), once ssh-keygen has made the keys."""
    for keygen in keygens:
        if keygen.wait() != 0:
            raise BootError(f"ssh-keygen failed: {keygen.stderr.read().decode()}")
    nodes.write(str(state_dir / "ssh" / "authorized_keys"), Path(state["ssh_key"] + ".pub").read_text(), 0o600)
    os.chmod(state["ssh_key"], 0o600)


def start_daemons(state_dir: Path, state: dict, p: dict, pids: tuple) -> None:
    """Each node's own files, then munge, slurmctld, sshd and slurmd; the known_hosts of their keys."""
    head_pid, compute_pids = pids
    proxy = state["containers"]["proxy"]
    munge_key = os.urandom(1024)
    known = []
    all_nodes = [(p["head"], head_pid)] + list(zip(p["computes"], compute_pids))
    inside = rootfs.NODE_SANDBOX_DIR
    for node, pid in all_nodes:
        ndir = state_dir / "nodes" / node["name"]
        nodes.populate_node(pid, p, munge_key, None if proxy["note"] else proxy["url"])
        nodes.write(str(ndir / "sshd_config"), nodes.sshd_config(f"{inside}/node", f"{inside}/authorized_keys",
                                                                 node["ip"]), 0o600)
        host_pub = (ndir / "ssh_host_ed25519_key.pub").read_text().split()
        known.append(f"{node['ip']},{node['name']} {host_pub[0]} {host_pub[1]}")
    nodes.write(state["known_hosts"], "\n".join(known) + "\n", 0o600)
    for _node, pid in all_nodes:
        nodes.start_munge(pid)
    nodes.start_slurmctld(head_pid)
    for node, pid in all_nodes:
        nodes.start_sshd(pid, f"{inside}/node/sshd_config", f"{inside}/logs/sshd-{node['name']}.log")
    nodes.wait_slurmctld(head_pid)
    for node, pid in all_nodes[1:]:
        nodes.start_slurmd(pid, node["name"])


def start_nodes(state_dir: Path, state: dict, p: dict, keygens: list, save, started: float, timings: dict) -> int:
    """Everything of the nodes, up to every compute node idle in Slurm. Returns the head holder's pid."""
    write_keys(state_dir, state, keygens)
    pids = start_holders(state_dir, state, p, save)
    timings["namespaces"] = time.monotonic() - started
    start_daemons(state_dir, state, p, pids)
    timings["slurm_started"] = time.monotonic() - started
    nodes.wait_idle(pids[0], len(p["computes"]))
    timings["nodes_idle"] = time.monotonic() - started
    return pids[0]


def configure_slurm(state_dir: Path, state: dict, p: dict, head_pid: int, config: dict) -> None:
    """slurm.conf with the cluster config's Slurm settings, slurmctld restarted with them (nodes.apply_cluster_config)."""
    opt_slurm = rootfs.shared_path(state["holders"]["base"], str(state_dir / "shared"), "opt-slurm")
    nodes.apply_cluster_config(opt_slurm, head_pid, p, f"{rootfs.NODE_SANDBOX_DIR}/logs", config)
