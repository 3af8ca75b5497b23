"""The sandbox's nodes: network, munge, sshd, the shared Slurm directory, teardown (file systems: rootfs.py).

Networking: the head node's namespace holds the VPC's bridge with the head's address; every other node
(an instance booted by hypervisor.py) has a veth on that bridge with the private IP moto gave its instance.
One veth pair links the root namespace to the head node only (a /32 route each way): the head is reachable
from the host, the other nodes only from inside the cluster.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

QUEUE = "compute-gpu"
COMPUTE_RESOURCE = "distributed-ml"
SLURM_JOB_COMPLETIONS = "/home/slurm/slurm-job-completions.txt"
# Routing protocol number marking the sandbox's routes in the root namespace (ip route ... proto N).
ROUTE_PROTO = 177
# The Slurm commands of ParallelCluster's /opt/slurm/bin (its Slurm is installed there): Debian's, except scontrol,
# the sandbox's (bin/scontrol, the node field InstanceId on Slurm 22.05).
SLURM_COMMANDS = ("sinfo", "squeue", "sbatch", "srun", "salloc", "scancel", "sacct", "sacctmgr", "sattach", "sbcast",
                  "sdiag", "sprio", "sreport", "sshare", "sstat", "strigger")


def run(argv, check=True, **kwargs):
    """Run a command, raising with its stderr when it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    return result


def nsenter(pid: int, argv, net=True):
    """argv prefixed to run inside the node held by pid."""
    flags = ["-m", "-u"] + (["-n"] if net else [])
    return ["nsenter", "-t", str(pid), *flags, "--", *argv]


def ip_add(base: str, offset: int) -> str:
    return str(ipaddress.ip_address(base) + offset)


def plan(index: int, compute_nodes: int, gpus_per_node: int, cluster_name: str, dynamic_nodes: int = 0) -> dict:
    """Addresses and names of one sandbox instance (index chosen by the caller). The compute nodes' names are
    the Slurm names ParallelCluster gives the config's MinCount static and MaxCount - MinCount dynamic nodes;
    their addresses are their instances' (moto's, in the private subnet)."""
    net = f"10.{100 + index}"
    head_ip = f"{net}.0.10"
    return {
        "index": index,
        "cluster_name": cluster_name,
        "vpc_cidr": f"{net}.0.0/16",
        "public_cidr": f"{net}.0.0/24",
        "private_cidr": f"{net}.16.0/20",
        "prefix_len": 16,
        "host_ip": f"{net}.0.1",
        "host_veth": f"pcsbx{index}up",
        "head": {"name": f"ip-{head_ip.replace('.', '-')}", "ip": head_ip, "netns": f"pcsbx{index}-head"},
        "static": [f"{QUEUE}-st-{COMPUTE_RESOURCE}-{k}" for k in range(1, compute_nodes + 1)],
        "dynamic": [f"{QUEUE}-dy-{COMPUTE_RESOURCE}-{k}" for k in range(1, dynamic_nodes + 1)],
        "gpus_per_node": gpus_per_node,
        "netns_prefix": f"pcsbx{index}-",
    }


# --------------------------------------------------------------------------- holders

def _wait_holder(proc: subprocess.Popen, what: str, timeout=10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"setting up {what} failed: {err.strip()}")
        try:
            if Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep":
                return proc.pid
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"setting up {what} timed out")


def wait_holder(proc, what):
    return _wait_holder(proc, what)


# --------------------------------------------------------------------------- network

def setup_network(p: dict, head_pid: int) -> None:
    """The VPC's bridge in the head node's namespace, and the host's veth and routes to the head node."""
    head = p["head"]
    run(["ip", "link", "add", p["host_veth"], "type", "veth", "peer", "name", "up0", "netns", str(head_pid)])
    # The whole VPC range is unreachable from the host except the head node: no packet for a
    # compute node (or any other address of the range) leaves through the host's default route.
    run(["ip", "-b", "-"], input=(
        f"route add unreachable {p['vpc_cidr']} proto {ROUTE_PROTO}\n"
        f"addr add {p['host_ip']}/32 dev {p['host_veth']}\n"
        f"link set {p['host_veth']} up\n"
        f"route add {head['ip']}/32 dev {p['host_veth']} src {p['host_ip']} proto {ROUTE_PROTO}\n"))
    batch = ["link set lo up", "link add br0 type bridge", "link set br0 up",
             f"addr add {head['ip']}/{p['prefix_len']} dev br0", "link set up0 up",
             f"route add {p['host_ip']}/32 dev up0"]
    run(nsenter(head_pid, ["ip", "-b", "-"]), input="\n".join(batch) + "\n")
    run(["ip", "netns", "attach", head["netns"], str(head_pid)])


def connect_node(network_pid: int, pid: int, node: dict, prefix_len: int) -> None:
    """A node's eth0 on the VPC's bridge (in network_pid's namespace) with node["ip"]; its namespace named
    node["netns"]. node["veth"]: the name of its end on the bridge (at most 15 characters)."""
    run(["ip", "link", "add", "name", node["veth"], "netns", str(network_pid), "type", "veth",
         "peer", "name", "eth0", "netns", str(pid)])
    run(nsenter(network_pid, ["ip", "-b", "-"]),
        input=f"link set {node['veth']} master br0\nlink set {node['veth']} up\n")
    run(nsenter(pid, ["ip", "-b", "-"]),
        input=f"link set lo up\naddr add {node['ip']}/{prefix_len} dev eth0\nlink set eth0 up\n")
    run(["ip", "netns", "attach", node["netns"], str(pid)])


# --------------------------------------------------------------------------- files

def hosts_file(head_ip: str, head_name: str, extra=()) -> str:
    """A node's /etc/hosts: itself and the head node (a compute node adds its own name when it knows it), then
    extra lines (the sandbox's ECR names, container_chain.hosts_lines). No compute node names: ParallelCluster's
    nodes find each other through Slurm's NodeAddr."""
    return "\n".join(["127.0.0.1 localhost", f"{head_ip} {head_name}", *extra]) + "\n"


def sshd_config(node_dir: str, authorized_keys: str, ip: str) -> str:
    return "\n".join([
        f"ListenAddress {ip}",
        "Port 22",
        f"HostKey {node_dir}/ssh_host_ed25519_key",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        f"AuthorizedKeysFile {authorized_keys}",
        "StrictModes no",
        "UsePAM no",
        "PidFile /run/sshd.pid",
        "AllowTcpForwarding yes",
        "PrintMotd no",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "",
    ])


def write(path: str, text: str, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, mode)


def populate_shared(shared: dict) -> None:
    """What the shared file systems hold before the head node configures Slurm. shared: {name: host path}
    (rootfs.shared_path). /opt/slurm: ParallelCluster's layout (etc/, etc/plugstack.conf.d/, bin/ with the
    Slurm commands); /home/slurm."""
    etc = f"{shared['opt-slurm']}/etc"
    os.makedirs(f"{etc}/plugstack.conf.d", exist_ok=True)
    os.makedirs(f"{etc}/pcluster/.slurm_plugin", exist_ok=True)
    os.makedirs(f"{shared['opt-slurm']}/bin", exist_ok=True)
    for command in SLURM_COMMANDS:
        os.symlink(f"/usr/bin/{command}", f"{shared['opt-slurm']}/bin/{command}")
    os.symlink("/run/sandbox/bin/scontrol", f"{shared['opt-slurm']}/bin/scontrol")
    os.makedirs(f"{shared['home']}/slurm", exist_ok=True)


def populate_node(pid: int, hosts: str, munge_key: bytes, apt_proxy: str | None = None) -> None:
    """The node's own files: /etc/hosts, the munge key and, with a proxy, apt's way out of the private subnet."""
    root = f"/proc/{pid}/root"
    write(f"{root}/etc/hosts", hosts)
    key = f"{root}/etc/munge/munge.key"
    with open(key, "wb") as handle:
        handle.write(munge_key)
    os.chmod(key, 0o400)
    munge = _ids("munge")
    os.chown(key, *munge)
    if apt_proxy:
        write(f"{root}/etc/apt/apt.conf.d/80hpc-pcluster-sandbox-proxy",
              "// The sandbox's stand-in for the private subnet's NAT gateway (sandbox/proxy.py).\n"
              f'Acquire::http::Proxy "{apt_proxy}";\nAcquire::https::Proxy "{apt_proxy}";\n')


def _ids(user: str):
    import pwd
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


# --------------------------------------------------------------------------- daemons

def start_munge(pid: int) -> None:
    run(nsenter(pid, ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "munged"]))


def start_sshd(pid: int, config_path: str, log_path: str) -> None:
    run(nsenter(pid, ["/usr/sbin/sshd", "-f", config_path, "-E", log_path]))


def node_states(head_pid: int, names: list) -> dict:
    """{node: the flags of its state} of the named nodes, as the head node's scontrol shows them (IDLE, CLOUD, ...)."""
    r = run(nsenter(head_pid, ["scontrol", "show", "nodes", "--oneliner", ",".join(names)]), check=False)
    return {m.group(1): set(m.group(2).split("+"))
            for m in re.finditer(r"^NodeName=(\S+) .*?\bState=(\S+)", r.stdout, re.M)}


# A node with one of these is not up: down, drained, or powered down, powering up or down (a CLOUD node).
NOT_UP = {"DOWN", "DRAIN", "FAIL", "NOT_RESPONDING", "POWER_DOWN", "POWERING_DOWN", "POWERED_DOWN", "POWERING_UP"}


def node_up(flags: set) -> bool:
    """Idle and answering: sinfo's idle, or maint while the collection's node-setup loader holds the node out of
    scheduling until a playbook sets it up (ParallelCluster's is_fleet_ready.sh accepts maint too)."""
    return "IDLE" in flags and not flags & NOT_UP


def wait_idle(head_pid: int, names: list, timeout=120.0, alive=lambda: True) -> dict:
    """Wait until every named node is up in Slurm (node_up); alive() False stops the wait early. Returns their
    states."""
    deadline = time.monotonic() + timeout
    states = {}
    while time.monotonic() < deadline and alive():
        states = node_states(head_pid, names)
        if names and all(node_up(states.get(name, set())) for name in names):
            return states
        time.sleep(0.25)
    shown = {name: "+".join(sorted(flags)) for name, flags in states.items()}
    raise RuntimeError(f"the static compute nodes did not become idle within {timeout:.0f} s: {shown}")


# --------------------------------------------------------------------------- teardown

def _ns_inode(pid: int, kind: str):
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def processes_in(net_inodes: set, mnt_inodes: set) -> list:
    """Every process whose network or mount namespace is one of the given ones, and their descendants
    (a container started on a node, e.g. by dockerd, lives in namespaces of its own)."""
    found, parents = set(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == os.getpid():
            continue
        try:
            parents[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if _ns_inode(pid, "net") in net_inodes or _ns_inode(pid, "mnt") in mnt_inodes:
            found.add(pid)
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found and pid not in found}
        grew = bool(children)
        found |= children
    return sorted(found)


def namespace_inodes(pids: list):
    net, mnt = set(), set()
    host_net, host_mnt = _ns_inode(1, "net"), _ns_inode(1, "mnt")
    self_net, self_mnt = _ns_inode(os.getpid(), "net"), _ns_inode(os.getpid(), "mnt")
    for pid in pids:
        n, m = _ns_inode(pid, "net"), _ns_inode(pid, "mnt")
        if n and n not in (host_net, self_net):
            net.add(n)
        if m and m not in (host_mnt, self_mnt):
            mnt.add(m)
    return net, mnt


def kill_all(holder_pids: list, netns_names: list, timeout=5.0, keep_netns=False) -> list:
    """Kill every process living in the sandbox's namespaces, then the holders; delete the named network
    namespaces unless keep_netns (a node started again in the same one). Returns the pids that survived
    SIGKILL (should be none)."""
    net, mnt = namespace_inodes([p for p in holder_pids if p])
    for name in netns_names:
        try:
            net.add(os.stat(f"/run/netns/{name}").st_ino)
        except OSError:
            pass
    victims = set(processes_in(net, mnt)) | {p for p in holder_pids if p and Path(f"/proc/{p}").exists()}
    # The sandbox keeps nothing worth a clean shutdown: SIGKILL is quick and certain.
    for _round in range(3):
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            victims = {pid for pid in victims if _alive(pid)}
            if not victims:
                break
            time.sleep(0.01)
        # A process forked meanwhile (e.g. by sshd) is caught by the next round.
        victims |= set(processes_in(net, mnt))
        if not victims:
            break
    for name in netns_names if not keep_netns else []:
        if os.path.exists(f"/run/netns/{name}"):
            run(["ip", "netns", "delete", name], check=False)
    return sorted(victims)


def remove_cgroups(name: str, root: str = "/sys/fs/cgroup") -> list:
    """Remove the cgroup trees called name (what the nodes' dockerd made, e.g. for containers)
    from every hierarchy of this machine, deepest first. Returns the ones still there."""
    left = []
    for hierarchy in Path(root).iterdir() if Path(root).is_dir() else []:
        top = hierarchy / name
        if not top.is_dir():
            continue
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [top]:
            try:
                path.rmdir()
            except OSError as exc:
                left.append(f"cgroup {path} not removed: {exc.strerror}")
    return left


def remove_host_routes(vpc_cidr: str | None = None) -> None:
    """Delete the sandbox's routes in the root namespace: one instance's, or all (vpc_cidr None)."""
    if vpc_cidr:
        run(["ip", "route", "del", "unreachable", vpc_cidr, "proto", str(ROUTE_PROTO)], check=False)
    else:
        run(["ip", "route", "flush", "proto", str(ROUTE_PROTO)], check=False)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    if state == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True
