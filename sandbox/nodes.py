"""The sandbox's cluster nodes: namespaces, mounts, munge, Slurm and sshd.

Every node is a long-lived holder process (``sleep infinity``) that owns the
node's network, mount and UTS namespaces; daemons are started in them with
``nsenter --target <holder>``. All nodes' mount namespaces are copies of one
"base" namespace whose tmpfs/overlay mounts (``/opt``, ``/home``, ``/fsx``,
``/lustre``) are therefore shared by every node, like ParallelCluster's NFS
exports and shared storage. Each node then mounts its own ``/run`` (tmpfs) and
overlays on ``/etc``, ``/var``, ``/usr/local`` and ``/root`` (writes stay in the node,
the host's files are untouched), binds ``/opt/slurm/etc`` on ``/etc/slurm``,
and compute nodes get ``/scratch`` and, with GPUs, ``/dev/nvidiaN`` character
devices in an overlay of ``/dev``.

Networking: the head node's namespace holds a bridge with the head's address;
each compute node has a veth on that bridge. One veth pair links the root
namespace to the head node only (a /32 route each way): the head is reachable
from the host, the compute nodes only from inside the cluster.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

QUEUE = "compute-gpu"
COMPUTE_RESOURCE = "distributed-ml"
SLURM_JOB_COMPLETIONS = "/home/slurm/slurm-job-completions.txt"

# Host directories used as mountpoints in the nodes; created when missing and
# removed again by the last sandbox that goes down.
HOST_MOUNTPOINTS = ["/fsx", "/lustre", "/scratch"]
# Routing protocol number marking the sandbox's routes in the root namespace (ip route ... proto N).
ROUTE_PROTO = 177

EXAMPLE_ENROOT_CONF = """\
# Example Enroot configuration shipped with AWS ParallelCluster AMIs.
# To enable Enroot, copy this file to /etc/enroot/enroot.conf.
ENROOT_RUNTIME_PATH        /run/enroot/user-$(id -u)
ENROOT_CACHE_PATH          ${ENROOT_TEMP_PATH}/enroot-cache/group-$(id -g)
ENROOT_DATA_PATH           ${ENROOT_TEMP_PATH}/enroot-data/user-$(id -u)
ENROOT_TEMP_PATH           /tmp
ENROOT_SQUASH_OPTIONS      -noI -noD -noF -noX -no-duplicates
ENROOT_MOUNT_HOME          y
ENROOT_RESTRICT_DEV        y
ENROOT_ROOTFS_WRITABLE     y
"""
EXAMPLE_PLUGSTACK_CONF = "include /opt/slurm/etc/plugstack.conf.d/*\n"
EXAMPLE_PYXIS_CONF = "required /usr/local/lib/slurm/spank_pyxis.so runtime_path=/run/pyxis\n"


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


def plan(index: int, compute_nodes: int, gpus_per_node: int, cluster_name: str) -> dict:
    """Addresses and names of one sandbox instance (index chosen by the caller)."""
    net = f"10.{100 + index}"
    head_ip = f"{net}.0.10"
    computes = []
    for k in range(1, compute_nodes + 1):
        computes.append({
            "name": f"{QUEUE}-st-{COMPUTE_RESOURCE}-{k}",
            "ip": ip_add(f"{net}.16.0", 10 + k),
            "netns": f"pcsbx{index}-c{k}",
            "veth": f"c{k}",
        })
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
        "computes": computes,
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


def _holder(argv, script: str) -> subprocess.Popen:
    return subprocess.Popen([*argv, "/bin/sh", "-e", "-c", script + "\nexec sleep infinity\n"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


BASE_SCRIPT = """
mount -t tmpfs -o mode=755 sandbox-base /run
mkdir -p /run/sandbox-base/opt/upper /run/sandbox-base/opt/work
mount -t overlay sandbox-opt -o lowerdir=/opt,upperdir=/run/sandbox-base/opt/upper,workdir=/run/sandbox-base/opt/work /opt
mount -t tmpfs -o mode=755 sandbox-home /home
mount -t tmpfs -o mode=755 sandbox-fsx /fsx
mount -t tmpfs -o mode=755 sandbox-lustre /lustre
"""

NODE_SCRIPT = """
mount -t tmpfs -o mode=755 sandbox-run /run
for d in etc var usrlocal root; do mkdir -p /run/sandbox-node/$d/upper /run/sandbox-node/$d/work; done
mount -t overlay sandbox-etc -o lowerdir=/etc,upperdir=/run/sandbox-node/etc/upper,workdir=/run/sandbox-node/etc/work /etc
mount -t overlay sandbox-var -o lowerdir=/var,upperdir=/run/sandbox-node/var/upper,workdir=/run/sandbox-node/var/work /var
mount -t overlay sandbox-usrlocal -o lowerdir=/usr/local,upperdir=/run/sandbox-node/usrlocal/upper,workdir=/run/sandbox-node/usrlocal/work /usr/local
mount -t overlay sandbox-root -o lowerdir=/root,upperdir=/run/sandbox-node/root/upper,workdir=/run/sandbox-node/root/work /root
mount --bind /opt/slurm/etc /etc/slurm
mkdir -p /run/sshd /run/munge /run/lock /etc/enroot /usr/local/lib/slurm /var/spool/slurmd /var/spool/slurmctld
chmod 755 /run/sshd /run/munge
chmod 1777 /run/lock
chown munge:munge /run/munge
hostname "$NODE_NAME"
echo "$NODE_NAME" > /etc/hostname
"""

COMPUTE_SCRIPT = """
mount -t tmpfs -o mode=1777 sandbox-scratch /scratch
if [ "$GPUS" -gt 0 ]; then
  mkdir -p /run/sandbox-node/dev/upper /run/sandbox-node/dev/work /run/sandbox-node/hostdev
  mount --rbind /dev /run/sandbox-node/hostdev
  mount -t overlay sandbox-dev -o lowerdir=/dev,upperdir=/run/sandbox-node/dev/upper,workdir=/run/sandbox-node/dev/work /dev
  mount --rbind /run/sandbox-node/hostdev/pts /dev/pts
  mount --rbind /run/sandbox-node/hostdev/shm /dev/shm
  umount -R -l /run/sandbox-node/hostdev
  i=0
  while [ $i -lt "$GPUS" ]; do mknod -m 666 /dev/nvidia$i c 195 $i; i=$((i + 1)); done
fi
"""


def start_base() -> subprocess.Popen:
    for d in HOST_MOUNTPOINTS:
        os.makedirs(d, exist_ok=True)
    return _holder(["unshare", "--mount", "--propagation", "private", "--"], BASE_SCRIPT)


def start_node(base_pid: int, name: str, compute: bool, gpus: int) -> subprocess.Popen:
    env = dict(os.environ, NODE_NAME=name, GPUS=str(gpus if compute else 0))
    script = NODE_SCRIPT + (COMPUTE_SCRIPT if compute else "")
    argv = ["nsenter", "-t", str(base_pid), "-m", "--",
            "unshare", "--mount", "--uts", "--net", "--propagation", "private", "--"]
    return subprocess.Popen([*argv, "/bin/sh", "-e", "-c", script + "\nexec sleep infinity\n"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env=env)


def wait_holder(proc, what):
    return _wait_holder(proc, what)


# --------------------------------------------------------------------------- network

def setup_network(p: dict, head_pid: int, compute_pids: list) -> None:
    head = p["head"]
    run(["ip", "link", "add", p["host_veth"], "type", "veth", "peer", "name", "up0", "netns", str(head_pid)])
    # The whole VPC range is unreachable from the host except the head node: no packet for a
    # compute node (or any other address of the range) leaves through the host's default route.
    run(["ip", "-b", "-"], input=(
        f"route add unreachable {p['vpc_cidr']} proto {ROUTE_PROTO}\n"
        f"addr add {p['host_ip']}/32 dev {p['host_veth']}\n"
        f"link set {p['host_veth']} up\n"
        f"route add {head['ip']}/32 dev {p['host_veth']} src {p['host_ip']} proto {ROUTE_PROTO}\n"))
    for node, pid in zip(p["computes"], compute_pids):
        run(["ip", "link", "add", "name", node["veth"], "netns", str(head_pid), "type", "veth",
             "peer", "name", "eth0", "netns", str(pid)])
    batch = ["link set lo up", "link add br0 type bridge", "link set br0 up",
             f"addr add {head['ip']}/{p['prefix_len']} dev br0", "link set up0 up",
             f"route add {p['host_ip']}/32 dev up0"]
    for node in p["computes"]:
        batch += [f"link set {node['veth']} master br0", f"link set {node['veth']} up"]
    run(nsenter(head_pid, ["ip", "-b", "-"]), input="\n".join(batch) + "\n")
    for node, pid in zip(p["computes"], compute_pids):
        run(nsenter(pid, ["ip", "-b", "-"]), input=(
            f"link set lo up\naddr add {node['ip']}/{p['prefix_len']} dev eth0\nlink set eth0 up\n"))
    for node, pid in [(head, head_pid)] + list(zip(p["computes"], compute_pids)):
        run(["ip", "netns", "attach", node["netns"], str(pid)])


# --------------------------------------------------------------------------- files

def config_slurm_settings(config: dict | None) -> list:
    """(key, value) lines ParallelCluster adds to slurm.conf from a cluster config: SuspendTime (ScaledownIdletime
    minutes, 10 by default, times 60) and the global CustomSlurmSettings."""
    if not config:
        return []
    slurm = (config.get("Scheduling") or {}).get("SlurmSettings") or {}
    idle = slurm.get("ScaledownIdletime")
    settings = [("SuspendTime", str(int(10 if idle is None else idle) * 60))]
    for entry in slurm.get("CustomSlurmSettings") or []:
        settings += [(str(key), str(value)) for key, value in (entry.items() if isinstance(entry, dict) else ())]
    return settings


def config_queue(config: dict | None) -> dict:
    """The config's queue that the sandbox's partition plays (named like it, else the first)."""
    queues = ((config or {}).get("Scheduling") or {}).get("SlurmQueues") or []
    return next((q for q in queues if q.get("Name") == QUEUE), queues[0] if queues else {})


def slurm_conf(p: dict, state_dir: str, config: dict | None = None) -> str:
    """slurm.conf of the sandbox; with the cluster config, its Slurm settings applied as ParallelCluster applies them
    (a CustomSlurmSettings key replaces the sandbox's own line, JobExclusiveAllocation makes the partition exclusive)."""
    head = p["head"]
    cpus = os.cpu_count() or 1
    gres = f" Gres=gpu:{p['gpus_per_node']}" if p["gpus_per_node"] else ""
    settings = config_slurm_settings(config)
    overridden = {key.lower() for key, _value in settings}
    lines = [
        f"ClusterName={p['cluster_name']}",
        f"SlurmctldHost={head['name']}({head['ip']})",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        "SlurmctldPort=6817",
        "SlurmdPort=6818",
        "StateSaveLocation=/var/spool/slurmctld",
        "SlurmdSpoolDir=/var/spool/slurmd",
        "SlurmctldPidFile=/run/slurmctld.pid",
        "SlurmdPidFile=/run/slurmd.pid",
        f"SlurmctldLogFile={state_dir}/logs/slurmctld.log",
        f"SlurmdLogFile={state_dir}/logs/slurmd-%n.log",
        "PlugStackConfig=/opt/slurm/etc/plugstack.conf",
        # No cgroups in the sandbox (jobacct_gather/linux reads /proc and needs none).
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "MpiDefault=none",
        "ReturnToService=2",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "SlurmdParameters=config_overrides",
        "GresTypes=gpu",
        "MessageTimeout=30",
    ]
    lines = [line for line in lines if line.split("=", 1)[0].lower() not in overridden]
    lines = ["# Slurm configuration of the sandbox cluster, laid out like AWS ParallelCluster's",
             "# /opt/slurm/etc/slurm.conf (also visible as /etc/slurm/slurm.conf on every node)."] + lines
    if settings:
        lines.append("# What the cluster config asks for: ScaledownIdletime, CustomSlurmSettings.")
        lines += [f"{key}={value}" for key, value in settings]
    names = []
    for node in p["computes"]:
        lines.append(f"NodeName={node['name']} NodeHostname={node['name']} NodeAddr={node['ip']} "
                     f"CPUs={cpus}{gres} State=UNKNOWN")
        names.append(node["name"])
    exclusive = " OverSubscribe=EXCLUSIVE" if config_queue(config).get("JobExclusiveAllocation") else ""
    lines.append(f"PartitionName={QUEUE} Nodes={','.join(names)} Default=YES MaxTime=INFINITE State=UP{exclusive}")
    return "\n".join(lines) + "\n"


def _running(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def apply_cluster_config(base_pid: int, head_pid: int, p: dict, state_dir: str, config: dict) -> None:
    """Write slurm.conf with the cluster config's Slurm settings and restart slurmctld, as ParallelCluster starts
    it on a head node configured from the config: slurmctld loads plugins such as JobCompType only when it starts
    (``scontrol reconfigure`` shows the new value without loading it). The slurmd daemons re-read it."""
    write(f"/proc/{base_pid}/root/opt/slurm/etc/slurm.conf", slurm_conf(p, state_dir, config))
    pid_file = f"/proc/{head_pid}/root/run/slurmctld.pid"
    with open(pid_file, encoding="utf-8") as handle:
        old_pid = int(handle.read().strip() or 0)
    run(nsenter(head_pid, ["scontrol", "shutdown", "slurmctld"]))
    deadline = time.monotonic() + 20
    while old_pid and _running(old_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    start_slurmctld(head_pid)
    wait_slurmctld(head_pid)
    run(nsenter(head_pid, ["scontrol", "reconfigure"]))
    wait_idle(head_pid, len(p["computes"]))


def gres_conf(p: dict) -> str:
    lines = ["AutoDetect=off"]
    g = p["gpus_per_node"]
    if g:
        files = "/dev/nvidia0" if g == 1 else f"/dev/nvidia[0-{g - 1}]"
        for node in p["computes"]:
            lines.append(f"NodeName={node['name']} Name=gpu File={files}")
    return "\n".join(lines) + "\n"


def hosts_file(p: dict) -> str:
    lines = ["127.0.0.1 localhost", f"{p['head']['ip']} {p['head']['name']}"]
    lines += [f"{n['ip']} {n['name']}" for n in p["computes"]]
    return "\n".join(lines) + "\n"


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


def populate_shared(base_pid: int, p: dict, state_dir: str) -> None:
    """/opt/slurm/etc, /opt/parallelcluster/examples and /home/slurm, shared by every node."""
    root = f"/proc/{base_pid}/root"
    etc = f"{root}/opt/slurm/etc"
    write(f"{etc}/slurm.conf", slurm_conf(p, state_dir))
    write(f"{etc}/gres.conf", gres_conf(p))
    os.makedirs(f"{etc}/plugstack.conf.d", exist_ok=True)
    ex = f"{root}/opt/parallelcluster/examples"
    write(f"{ex}/enroot/enroot.conf", EXAMPLE_ENROOT_CONF)
    write(f"{ex}/spank/plugstack.conf", EXAMPLE_PLUGSTACK_CONF)
    write(f"{ex}/pyxis/pyxis.conf", EXAMPLE_PYXIS_CONF)
    os.makedirs(f"{root}/home/slurm", exist_ok=True)


def populate_node(pid: int, p: dict, munge_key: bytes, spank_so: str | None) -> None:
    root = f"/proc/{pid}/root"
    write(f"{root}/etc/hosts", hosts_file(p))
    key = f"{root}/etc/munge/munge.key"
    with open(key, "wb") as handle:
        handle.write(munge_key)
    os.chmod(key, 0o400)
    munge = _ids("munge")
    os.chown(key, *munge)
    if spank_so:
        with open(spank_so, "rb") as src, open(f"{root}/usr/local/lib/slurm/spank_pyxis.so", "wb") as dst:
            dst.write(src.read())
        os.chmod(f"{root}/usr/local/lib/slurm/spank_pyxis.so", 0o755)


def _ids(user: str):
    import pwd
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


# --------------------------------------------------------------------------- daemons

def start_munge(pid: int) -> None:
    run(nsenter(pid, ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "munged"]))


def start_slurmctld(pid: int) -> None:
    run(nsenter(pid, ["slurmctld"]))


def wait_slurmctld(pid: int, timeout=20.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        r = run(nsenter(pid, ["scontrol", "ping"]), check=False)
        last = r.stdout + r.stderr
        if r.returncode == 0 and "UP" in r.stdout:
            return
        time.sleep(0.1)
    raise RuntimeError(f"slurmctld did not answer scontrol ping within {timeout:.0f} s: {last.strip()}")


def start_slurmd(pid: int, name: str) -> None:
    run(nsenter(pid, ["slurmd", "-N", name]))


def start_sshd(pid: int, config_path: str, log_path: str) -> None:
    run(nsenter(pid, ["/usr/sbin/sshd", "-f", config_path, "-E", log_path]))


def wait_idle(head_pid: int, count: int, timeout=30.0) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        r = run(nsenter(head_pid, ["sinfo", "--noheader", "-p", QUEUE, "-N", "-o", "%N %t"]), check=False)
        out = r.stdout.strip()
        states = [line.split()[1] for line in out.splitlines() if len(line.split()) == 2]
        if len(states) == count and all(s == "idle" for s in states):
            return out
        time.sleep(0.1)
    raise RuntimeError(f"the compute nodes did not become idle within {timeout:.0f} s: {out}")


# --------------------------------------------------------------------------- teardown

def _ns_inode(pid: int, kind: str):
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def processes_in(net_inodes: set, mnt_inodes: set) -> list:
    """Every process whose network or mount namespace is one of the given ones."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == os.getpid():
            continue
        if _ns_inode(pid, "net") in net_inodes or _ns_inode(pid, "mnt") in mnt_inodes:
            found.append(pid)
    return found


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


def kill_all(holder_pids: list, netns_names: list, timeout=5.0) -> list:
    """Kill every process living in the sandbox's namespaces, then the holders.
    Returns the pids that survived SIGKILL (should be none)."""
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
    for name in netns_names:
        if os.path.exists(f"/run/netns/{name}"):
            run(["ip", "netns", "delete", name], check=False)
    return sorted(victims)


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
