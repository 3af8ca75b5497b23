"""The sandbox's cluster nodes: network, munge, Slurm and sshd (file systems: rootfs.py).

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

from rootfs import NODE_SANDBOX_DIR

QUEUE = "compute-gpu"
COMPUTE_RESOURCE = "distributed-ml"
SLURM_JOB_COMPLETIONS = "/home/slurm/slurm-job-completions.txt"

# Routing protocol number marking the sandbox's routes in the root namespace (ip route ... proto N).
ROUTE_PROTO = 177
# Power saving of the dynamic nodes (seconds): a boot applies the node-setup bundle, which takes a while on a
# busy machine. SUSPEND_TIME is ParallelCluster's default ScaledownIdletime (10 minutes) and holds until the
# cluster config is applied: its ScaledownIdletime x 60 then replaces it, as on ParallelCluster (the guide's -1
# gives -60, which Slurm 22.05 keeps as an unsigned 4294967236 s: power saving stays on, so dynamic nodes are still
# powered up for jobs, and idle ones are never powered down).
RESUME_TIMEOUT = 900
SUSPEND_TIME = 600
RESUME_PROGRAM = f"{NODE_SANDBOX_DIR}/bin/slurm-resume"
SUSPEND_PROGRAM = f"{NODE_SANDBOX_DIR}/bin/slurm-suspend"


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
    """Addresses and names of one sandbox instance (index chosen by the caller): static compute nodes
    (computes, started by up) and dynamic ones (dynamic, powered up by the fleet stand-in)."""
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
    dynamic = [{"name": f"{QUEUE}-dy-{COMPUTE_RESOURCE}-{k}", "ip": ip_add(f"{net}.17.0", 10 + k),
                "netns": f"pcsbx{index}-d{k}", "veth": f"d{k}", "dynamic": True}
               for k in range(1, dynamic_nodes + 1)]
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
        "dynamic": dynamic,
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
        _add_veth(node, head_pid, pid)
    batch = ["link set lo up", "link add br0 type bridge", "link set br0 up",
             f"addr add {head['ip']}/{p['prefix_len']} dev br0", "link set up0 up",
             f"route add {p['host_ip']}/32 dev up0"]
    for node in p["computes"]:
        batch += _bridge_commands(node)
    run(nsenter(head_pid, ["ip", "-b", "-"]), input="\n".join(batch) + "\n")
    for node, pid in zip(p["computes"], compute_pids):
        run(nsenter(pid, ["ip", "-b", "-"]), input=_node_commands(p, node))
    for node, pid in [(head, head_pid)] + list(zip(p["computes"], compute_pids)):
        run(["ip", "netns", "attach", node["netns"], str(pid)])


def connect_compute(p: dict, head_pid: int, node: dict, pid: int) -> None:
    """The network of one compute node started after the others (a dynamic node powered up)."""
    _add_veth(node, head_pid, pid)
    run(nsenter(head_pid, ["ip", "-b", "-"]), input="\n".join(_bridge_commands(node)) + "\n")
    run(nsenter(pid, ["ip", "-b", "-"]), input=_node_commands(p, node))
    run(["ip", "netns", "attach", node["netns"], str(pid)])


def _add_veth(node: dict, head_pid: int, pid: int) -> None:
    run(["ip", "link", "add", "name", node["veth"], "netns", str(head_pid), "type", "veth",
         "peer", "name", "eth0", "netns", str(pid)])


def _bridge_commands(node: dict) -> list:
    return [f"link set {node['veth']} master br0", f"link set {node['veth']} up"]


def _node_commands(p: dict, node: dict) -> str:
    return f"link set lo up\naddr add {node['ip']}/{p['prefix_len']} dev eth0\nlink set eth0 up\n"


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


def slurm_conf(p: dict, log_dir: str, config: dict | None = None) -> str:
    """slurm.conf of the sandbox; with the cluster config, its Slurm settings applied as ParallelCluster applies them
    (a CustomSlurmSettings key replaces the sandbox's own line, JobExclusiveAllocation makes the partition exclusive).
    log_dir: where the nodes see the sandbox's log directory."""
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
        f"SlurmctldLogFile={log_dir}/slurmctld.log",
        f"SlurmdLogFile={log_dir}/slurmd-%n.log",
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
    lines += power_saving(p)
    lines = [line for line in lines if line.split("=", 1)[0].lower() not in overridden]
    lines = ["# Slurm configuration of the sandbox cluster, laid out like AWS ParallelCluster's",
             "# /opt/slurm/etc/slurm.conf (also visible as /etc/slurm/slurm.conf on every node)."] + lines
    if settings:
        lines.append("# What the cluster config asks for: ScaledownIdletime, CustomSlurmSettings.")
        lines += [f"{key}={value}" for key, value in settings]
    names = []
    for node in p["computes"] + p.get("dynamic", []):
        # Dynamic nodes are CLOUD nodes, powered down until Slurm's ResumeProgram brings them up; jobs go to
        # the static ones first (ParallelCluster's StaticNodePriority 1, DynamicNodePriority 1000).
        state = "CLOUD Weight=1000" if node.get("dynamic") else "UNKNOWN" + (" Weight=1" if p.get("dynamic") else "")
        lines.append(f"NodeName={node['name']} NodeHostname={node['name']} NodeAddr={node['ip']} "
                     f"CPUs={cpus}{gres} State={state}")
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


def apply_cluster_config(opt_slurm: str, head_pid: int, p: dict, log_dir: str, config: dict) -> None:
    """Write slurm.conf with the cluster config's Slurm settings and restart slurmctld, as ParallelCluster starts
    it on a head node configured from the config: slurmctld loads plugins such as JobCompType only when it starts
    (``scontrol reconfigure`` shows the new value without loading it). The slurmd daemons re-read it.
    opt_slurm: where the host reaches the shared /opt/slurm (rootfs.shared_path)."""
    write(f"{opt_slurm}/etc/slurm.conf", slurm_conf(p, log_dir, config))
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


def power_saving(p: dict) -> list:
    """Slurm's power saving for the dynamic nodes, as ParallelCluster sets it up: its ResumeProgram and
    SuspendProgram (slurm_resume, slurm_suspend) are the sandbox's fleet stand-in here."""
    if not p.get("dynamic"):
        return []
    return [
        "# Dynamic nodes: Slurm hands the nodes to power up or down to the fleet stand-in (sandbox/fleet.py).",
        f"ResumeProgram={RESUME_PROGRAM}",
        f"SuspendProgram={SUSPEND_PROGRAM}",
        f"ResumeTimeout={RESUME_TIMEOUT}",
        f"SuspendTime={SUSPEND_TIME}",
        "SuspendTimeout=30",
        f"SuspendExcNodes={','.join(n['name'] for n in p['computes'])}",
        "SlurmctldParameters=idle_on_node_suspend",
        # Powered-down nodes are listed (idle~), as on ParallelCluster.
        "PrivateData=cloud",
        # No node relays another's messages: a powered-down node cannot.
        "TreeWidth=65533",
    ]


def gres_conf(p: dict) -> str:
    lines = ["AutoDetect=off"]
    g = p["gpus_per_node"]
    if g:
        files = "/dev/nvidia0" if g == 1 else f"/dev/nvidia[0-{g - 1}]"
        for node in p["computes"] + p.get("dynamic", []):
            lines.append(f"NodeName={node['name']} Name=gpu File={files}")
    return "\n".join(lines) + "\n"


def hosts_file(p: dict) -> str:
    lines = ["127.0.0.1 localhost", f"{p['head']['ip']} {p['head']['name']}"]
    lines += [f"{n['ip']} {n['name']}" for n in p["computes"] + p.get("dynamic", [])]
    lines += p.get("extra_hosts", [])
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


def populate_shared(shared: dict, p: dict, log_dir: str) -> None:
    """/opt/slurm/etc and /home/slurm, shared by every node. shared: {name: host path} (rootfs.shared_path);
    log_dir: where the nodes see the sandbox's log directory."""
    etc = f"{shared['opt-slurm']}/etc"
    write(f"{etc}/slurm.conf", slurm_conf(p, log_dir))
    write(f"{etc}/gres.conf", gres_conf(p))
    os.makedirs(f"{etc}/plugstack.conf.d", exist_ok=True)
    os.makedirs(f"{shared['home']}/slurm", exist_ok=True)


def populate_node(pid: int, p: dict, munge_key: bytes, apt_proxy: str | None = None) -> None:
    """The node's own files: /etc/hosts, the munge key and, with a proxy, apt's way out of the private subnet."""
    root = f"/proc/{pid}/root"
    write(f"{root}/etc/hosts", hosts_file(p))
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
        # Powered-down dynamic nodes (idle~) are not started by up.
        states = [line.split()[1] for line in out.splitlines() if len(line.split()) == 2
                  and not line.split()[1].endswith("~")]
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
