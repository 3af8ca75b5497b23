"""Compute node instances that start after `up`: dynamic nodes powered up and down, static nodes replaced.

ParallelCluster launches an EC2 instance for a dynamic node when Slurm powers it up (slurm_resume),
and terminates it when Slurm powers it down (slurm_suspend, clustermgtd); clustermgtd replaces a
static node's instance by a new one. A new instance boots from the AMI: nothing of the old one's
root is left. Its bootstrap runs the queue's OnNodeConfigured sequence, then starts slurmd.

Here a node's instance is its holder process with a root of its own (rootfs.py) over the AMI layer:

- ``launch`` starts a node (holder, network, /etc/hosts and the munge key, munged and sshd),
  starts its EC2 instance in moto (moto_cluster.compute_instance_up: the stopped instance the cluster's
  node table names for it, else a new one like the cluster's compute instances, recorded in that table),
  and records its address in Slurm as slurm_resume does;
- ``boot`` runs the node's OnNodeConfigured sequence inside it (custom_actions.py), then starts
  slurmd (static nodes are resumed in Slurm, as ParallelCluster's finalize step does), in a time
  namespace whose clock starts at the launch, as a new instance's does;
- ``terminate`` kills every process of the node, removes its root and stops its instance.

A replaced static node keeps its network namespace (its address); a dynamic node gets a new one
each time it powers up. What runs where is recorded in ``<state>/fleet/nodes.json``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from pathlib import Path

import boot as sandbox_boot
import custom_actions
import iam_roles
import imds
import moto_cluster
import nodes
import rootfs

# Nodes are launched and booted in threads of their own; their records share one file.
_RECORDS = threading.Lock()


class Cluster:
    """What the node operations need of a running sandbox: its state, its plan and its moto."""

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.state = json.loads((self.state_dir / "state.json").read_text())
        s = self.state
        self.plan = nodes.plan(s["index"], len(s["compute_nodes"]), s["gpus_per_node"], s["cluster_name"],
                               s.get("dynamic_count", 0))
        self.plan["extra_hosts"] = s.get("extra_hosts", [])
        self.fleet_dir = self.state_dir / "fleet"
        self.records = self.fleet_dir / "nodes.json"

    @property
    def head_pid(self) -> int:
        return self.state["holders"]["head"]

    def node(self, name: str) -> dict:
        for node in self.plan["computes"] + self.plan["dynamic"]:
            if node["name"] == name:
                return node
        raise KeyError(f"no compute node {name} in this sandbox")

    def slurm(self, *argv, check=True) -> str:
        return nodes.run(nodes.nsenter(self.head_pid, list(argv)), check=check).stdout

    def hostnames(self, hostlist: str) -> list:
        return self.slurm("scontrol", "show", "hostnames", hostlist).split()

    def config(self) -> dict:
        return moto_cluster.registered_config(self.state["endpoint_url"], self.state["region"],
                                              self.state["cluster_name"])

    def record(self, name: str, **values) -> dict:
        """Update node name's record in nodes.json (values None remove keys); returns all records."""
        with _RECORDS:
            records = json.loads(self.records.read_text()) if self.records.exists() else {}
            entry = records.setdefault(name, {})
            for key, value in values.items():
                if value is None:
                    entry.pop(key, None)
                else:
                    entry[key] = value
            tmp = self.records.with_suffix(".tmp")
            tmp.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
            tmp.replace(self.records)
            return records

    def records_now(self) -> dict:
        return json.loads(self.records.read_text()) if self.records.exists() else {}

    def save_holder(self, name: str, pid: int) -> None:
        """A static node's new holder goes into state.json (status checks it); dynamic ones stay in nodes.json."""
        if name not in self.state["holders"]:
            return
        with _RECORDS:
            state = json.loads((self.state_dir / "state.json").read_text())
            state["holders"][name] = self.state["holders"][name] = pid
            tmp = self.state_dir / "state.json.fleet.tmp"
            tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
            os.chmod(tmp, 0o600)
            tmp.replace(self.state_dir / "state.json")


def launch(cluster: Cluster, name: str) -> int:
    """Start node name's instance: holder and root, network, files, munged, sshd, the EC2 instance. Returns
    the holder's pid."""
    node = cluster.node(name)
    s = cluster.state
    keep_network = os.path.exists(f"/run/netns/{node['netns']}")
    layout = sandbox_boot.node_layout(cluster.state_dir, s, name)
    # The named namespace as this process sees it: the holder is started inside the base mount namespace,
    # which does not see the machine's /run/netns mounts.
    netns = f"/proc/{os.getpid()}/root/run/netns/{node['netns']}" if keep_network else None
    proc = rootfs.start_node(s["holders"]["base"], name, True, s["gpus_per_node"], layout, netns=netns)
    pid = nodes.wait_holder(proc, f"node {name}")
    if not keep_network:
        nodes.connect_compute(cluster.plan, cluster.head_pid, node, pid)
    munge_key = Path(f"/proc/{cluster.head_pid}/root/etc/munge/munge.key").read_bytes()
    proxy = s["containers"]["proxy"]
    nodes.populate_node(pid, cluster.plan, munge_key, None if proxy["note"] else proxy["url"])
    inside = rootfs.NODE_SANDBOX_DIR
    nodes.write(str(cluster.state_dir / "nodes" / name / "sshd_config"),
                nodes.sshd_config(f"{inside}/node", f"{inside}/authorized_keys", node["ip"]), 0o600)
    nodes.start_munge(pid)
    nodes.start_sshd(pid, f"{inside}/node/sshd_config", f"{inside}/logs/sshd-{name}.log")
    instance = moto_cluster.compute_instance_up(s["endpoint_url"], s["region"], s["cluster_name"], node["ip"], name,
                                                s["head_ip"])
    # As the queue's launch template would: its instance profile; then the node's instance metadata service.
    iam_roles.associate(s["endpoint_url"], s["region"], s["cluster_name"], s["iam"]["node_roles"], [instance])
    register_instance_metadata(cluster.state_dir, s, instance, pid, f"ip-{node['ip'].replace('.', '-')}")
    cluster.record(name, pid=pid, instance_id=instance, launched=time.time(), boot=None)
    cluster.save_holder(name, pid)
    # As slurm_resume does: the node's address and host name, before slurmd registers.
    cluster.slurm("scontrol", "update", f"NodeName={name}", f"NodeAddr={node['ip']}", f"NodeHostname={name}")
    return pid


def boot(cluster: Cluster, name: str, pid: int) -> dict:
    """The node's bootstrap: its queue's OnNodeConfigured sequence, then slurmd. Returns what ran; raises
    custom_actions.ActionFailed when a script failed (slurmd is then not started)."""
    node = cluster.node(name)
    s = cluster.state
    context = {"config": cluster.config(), "endpoint_url": s["endpoint_url"], "region": s["region"],
               "cluster_name": s["cluster_name"], "head_ip": s["head_ip"]}
    steps = custom_actions.run_sequence(pid, {"name": name, "queue": nodes.QUEUE}, context,
                                        cluster.state_dir / "logs" / f"boot-{name}.log")
    start_slurmd(pid, name, cluster.records_now().get(name, {}).get("launched", time.time()))
    if not node.get("dynamic"):
        # ParallelCluster's finalize step resumes a static node on start-up (and ignores that it fails when
        # slurmd's registration has already made it idle).
        cluster.slurm("scontrol", "update", f"NodeName={name}", "State=RESUME", "Reason=Node start up", check=False)
    result = {"steps": steps, "booted": time.time()}
    cluster.record(name, boot=result)
    return result


def start_slurmd(pid: int, name: str, launched: float) -> None:
    """slurmd in a time namespace whose clock starts at the instance's launch: Slurm takes a node that is
    powering up as booted only when the boot time slurmd reports (now - uptime) comes after the request."""
    with open("/proc/uptime", encoding="utf-8") as handle:
        machine_uptime = float(handle.read().split()[0])
    # Rounded down, and 2 s later still: slurmd and slurmctld count whole seconds, and a boot time that comes out
    # a second before the request leaves the node powering up until ResumeTimeout.
    offset = math.floor(min(0.0, (time.time() - launched) - machine_uptime)) - 2
    # The node's boot clock may not go below 0 (the kernel refuses the offset: ERANGE) when it boots within 2 s.
    offset = max(offset, 1 - math.floor(machine_uptime))
    nodes.run(nodes.nsenter(pid, ["unshare", "--time", "--fork", f"--boottime={offset}", "slurmd", "-N", name]))


def terminate(cluster: Cluster, name: str, keep_network: bool) -> None:
    """Kill every process of node name, remove its root (the instance's disk) and terminate its instance."""
    node = cluster.node(name)
    record = cluster.records_now().get(name, {})
    pid = record.get("pid") or cluster.state["holders"].get(name)
    kill_node(pid, node["netns"], keep_network)
    shutil.rmtree(cluster.state_dir / "roots" / name, ignore_errors=True)
    instance = record.get("instance_id") or _static_instance(cluster, name)
    if instance:
        imds.deregister(cluster.state_dir, instance)
        moto_cluster.compute_instance_down(cluster.state["endpoint_url"], cluster.state["region"], instance)
    cluster.record(name, pid=None, terminated=time.time())


def _static_instance(cluster: Cluster, name: str):
    registered = cluster.state.get("registration", {}).get("compute_instance_ids") or []
    names = cluster.state["compute_nodes"]
    return registered[names.index(name)] if name in names and names.index(name) < len(registered) else None


def kill_node(pid, netns: str, keep_network: bool) -> None:
    """SIGKILL every process in the node's mount or network namespace (and their children); the network
    namespace goes too unless keep_network."""
    survivors = nodes.kill_all([pid] if pid else [], [netns], keep_netns=keep_network)
    if survivors:
        raise RuntimeError(f"processes of the node survived SIGKILL: {survivors}")


def register_instance_metadata(state_dir: Path, state: dict, instance_id: str, pid: int, hostname: str) -> None:
    """The instance metadata service answers for the instance inside its node (imds.py): before it calls AWS."""
    ec2 = moto_cluster.client("ec2", state["endpoint_url"], state["region"])
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    imds.register(state_dir, imds.record(instance, f"/proc/{pid}/ns/net", hostname, state["region"]))


def instance_metadata_of_static_nodes(state_dir: Path, state: dict) -> None:
    """The head node's and the static compute nodes' instance metadata, once their instances are registered."""
    reg = state["registration"]
    nodes_ = [("head", reg["head_instance_id"], state["head_ip"])] + list(
        zip(state["compute_nodes"], reg["compute_instance_ids"], state["compute_ips"]))
    for name, instance_id, ip in nodes_:
        register_instance_metadata(state_dir, state, instance_id, state["holders"][name], f"ip-{ip.replace('.', '-')}")


def first_boot(state_dir: Path) -> dict:
    """What a create does on its static compute nodes: each runs its queue's OnNodeConfigured sequence (at
    once). Here slurmd already runs: the sandbox starts it with the other daemons. Raises on a failure, as the
    create would fail."""
    cluster = Cluster(state_dir)
    context = {"config": cluster.config(), "endpoint_url": cluster.state["endpoint_url"],
               "region": cluster.state["region"], "cluster_name": cluster.state["cluster_name"],
               "head_ip": cluster.state["head_ip"]}
    results, threads = {}, []

    def run(name):
        try:
            steps = custom_actions.run_sequence(cluster.state["holders"][name], {"name": name, "queue": nodes.QUEUE},
                                                context, cluster.state_dir / "logs" / f"boot-{name}.log")
            results[name] = {"ok": True, "steps": steps}
        except custom_actions.ActionFailed as failure:
            results[name] = {"ok": False, "error": str(failure)}

    for name in cluster.state["compute_nodes"]:
        threads.append(threading.Thread(target=run, args=(name,)))
        threads[-1].start()
    for thread in threads:
        thread.join()
    failed = {name: r["error"] for name, r in results.items() if not r["ok"]}
    if failed:
        raise RuntimeError(f"static compute nodes failed their bootstrap: {failed}")
    return results


def known_hosts_of_dynamic_nodes(state_dir: Path, state: dict) -> None:
    """Add the dynamic nodes' host keys (made at up) to the sandbox's known_hosts."""
    lines = []
    for node in state["nodes"]:
        if node["role"] == "dynamic":
            key = (state_dir / "nodes" / node["name"] / "ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"{node['ip']},{node['name']} {key[0]} {key[1]}\n")
    if lines:
        with open(state["known_hosts"], "a", encoding="utf-8") as handle:
            handle.writelines(lines)


def request(state_dir: Path, action: str, target: str, timeout: float) -> dict:
    """Leave a request for the fleet stand-in and wait for its outcome."""
    requests = Path(state_dir) / "fleet" / "requests"
    name = f"{time.time_ns()}-{action}-{os.getpid()}"
    tmp = requests / f".{name}"
    tmp.write_text(f"{action} {target}\n")
    tmp.rename(requests / f"{name}.req")
    done = Path(state_dir) / "fleet" / "done" / f"{name}.json"
    deadline = time.monotonic() + timeout
    while not done.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fleet stand-in did not {action} {target} within {timeout:.0f} s "
                               f"(see {Path(state_dir) / 'logs' / 'fleet.log'})")
        time.sleep(0.2)
    return json.loads(done.read_text())
