"""Starting the sandbox's head node and network (sandbox.py up); every other node is an instance the
hypervisor boots (hypervisor.py).

``start_head``: the shared file systems, the head node's holder with its root, the VPC's network (the bridge in
the head node's namespace, the host's route to it), the package-mirror proxy and the AWS endpoint forwarder in
it, the munge key, munged and sshd: the head node as its AMI starts it. ``boot_head``: once moto holds the
cluster's head node instance and its artifacts, what the instance's bootstrap does (cookbook/bootstrap.py,
run by the hypervisor's run_bootstrap): Slurm's configuration from the cluster config, slurmctld and the node
daemons.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import container_chain
import hypervisor
import nodes
import rootfs

HERE = Path(__file__).resolve().parent
# Where the nodes reach the sandbox's AWS (forwarder.py, on the head node's address).
ENDPOINT_PORT = 5000


class BootError(Exception):
    """A step that failed, with a message meant for the user."""


def write_keys(state_dir: Path, state: dict, keygens: list) -> None:
    """The login key's authorized_keys (bound into every node), once ssh-keygen has made the keys."""
    for keygen in keygens:
        if keygen.wait() != 0:
            raise BootError(f"ssh-keygen failed: {keygen.stderr.read().decode()}")
    nodes.write(str(state_dir / "ssh" / "authorized_keys"), Path(state["ssh_key"] + ".pub").read_text(), 0o600)
    os.chmod(state["ssh_key"], 0o600)


def start_forwarder(state_dir: Path, state: dict, head_pid: int) -> subprocess.Popen:
    """The nodes' way to moto (forwarder.py), in a process group of its own; down kills it."""
    with open(state_dir / "logs" / "forwarder.log", "ab") as out:
        return subprocess.Popen(
            [sys.executable, str(HERE / "forwarder.py"), "--netns", f"/proc/{head_pid}/ns/net",
             "--listen", f"{state['head_ip']}:{ENDPOINT_PORT}", "--to", state["endpoint_url"].rsplit("/", 1)[-1]],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start_holders(state_dir: Path, state: dict, p: dict, save) -> int:
    """The base holder with the shared file systems, the head node's holder, the VPC's network, the proxy and the
    forwarder. Returns the head holder's pid; save(state) records progress."""
    base = rootfs.start_base(state_dir / "shared")
    state["holders"]["base"] = base.pid
    save(state)
    nodes.wait_holder(base, "the shared file systems")
    shared = {name: rootfs.shared_path(base.pid, str(state_dir / "shared"), name) for name in rootfs.SHARED}
    nodes.populate_shared(shared)
    container_chain.install_image(state["containers"], shared["fsx"])
    head = rootfs.start_node(base.pid, p["head"]["name"], False, 0, hypervisor.node_layout(state_dir, state, p["head"]["name"]))
    state["holders"]["head"] = head.pid
    save(state)
    head_pid = nodes.wait_holder(head, "the head node")
    nodes.setup_network(p, head_pid)
    if not state["containers"]["proxy"]["note"]:
        state["proxy_pid"] = container_chain.start_proxy(state_dir, state["containers"], head_pid).pid
    state["forwarder_pid"] = start_forwarder(state_dir, state, head_pid).pid
    save(state)
    return head_pid


def start_head(state_dir: Path, state: dict, p: dict, keygens: list, save) -> int:
    """The head node up to its AMI's services (munged, sshd). Returns its holder's pid."""
    write_keys(state_dir, state, keygens)
    head_pid = start_holders(state_dir, state, p, save)
    head = p["head"]
    ndir = state_dir / "nodes" / head["name"]
    nodes.populate_node(head_pid, nodes.hosts_file(head["ip"], head["name"], p.get("extra_hosts", [])), os.urandom(1024),
                        None if state["containers"]["proxy"]["note"] else state["containers"]["proxy"]["url"])
    inside = rootfs.NODE_SANDBOX_DIR
    nodes.write(str(ndir / "sshd_config"), nodes.sshd_config(f"{inside}/node", f"{inside}/authorized_keys", head["ip"]), 0o600)
    host_pub = (ndir / "ssh_host_ed25519_key.pub").read_text().split()
    nodes.write(state["known_hosts"], f"{head['ip']},{head['name']} {host_pub[0]} {host_pub[1]}\n", 0o600)
    nodes.start_munge(head_pid)
    nodes.start_sshd(head_pid, f"{inside}/node/sshd_config", f"{inside}/logs/sshd-{head['name']}.log")
    return head_pid


def boot_head(state_dir: Path, instance: dict, dna: dict) -> None:
    """The head node instance's bootstrap on the running head node (its custom actions ran when the cluster was
    created: a registered cluster is created already). Raises BootError when it fails. Writes no state.json (up,
    which records the instance there, may be writing it meanwhile)."""
    sandbox = hypervisor.Sandbox(state_dir)
    pid = sandbox.network_pid
    name = sandbox.state["head_name"]
    hypervisor.instance_files(sandbox, instance, pid, dna, state_dir / "nodes" / name)
    sandbox.record(instance["InstanceId"], pid=pid, ip=instance["PrivateIpAddress"], netns=sandbox.state["netns"][0],
                   node_type="HeadNode", name=name, launched=time.time(), root=name)
    rc = hypervisor.run_bootstrap(sandbox, pid, instance["InstanceId"], 600, ["--skip-custom-actions"])
    if rc != 0:
        log = state_dir / "logs" / f"boot-{instance['InstanceId']}.log"
        raise BootError(f"the head node's bootstrap failed (exit status {rc}); see {log}:\n{log.read_text()[-3000:]}")
