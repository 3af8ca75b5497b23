"""Ten sandbox up/down cycles in a row, on a state dir of their own.

Each cycle: `sandbox.py up` (timed), a check that it answers (`status`, `sinfo` over SSH with the
pinned host key showing every compute node idle or maint), `sandbox.py down` (timed), and a check that
nothing is left (no process in its namespaces, no moto, hypervisor, forwarder or proxy process, no netns,
veth, route, port or state dir). `up` returns once ParallelCluster's clustermgtd has launched the static
nodes and they are idle (a create's wait): most of it is clustermgtd's first loop and the nodes' boots.
Baseline: the budget of the project's issue (up in under 15 s); the ratio is measured / budget.
A cycle that fails stops the run with exit 1.

Usage: .venv/bin/python bench/sandbox_cycles.py [--cycles 10] [--compute-nodes 2] [--gpus-per-node 1]
"""

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
SANDBOX = str(ROOT / "sandbox" / "sandbox.py")
UP_BUDGET_S = 15.0


def sandbox(*args):
    start = time.monotonic()
    proc = subprocess.run([PY, SANDBOX, *args], capture_output=True, text=True, timeout=300, check=False)
    return proc, time.monotonic() - start


def leftovers(state, state_dir, net_inodes):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat("/proc/%s/ns/net" % entry).st_ino in net_inodes:
                stat = pathlib.Path("/proc/%s/stat" % entry).read_text().rsplit(")", 1)[1].split()[0]
                if stat != "Z":
                    found.append("process %s" % entry)
        except OSError:
            pass
    for key in ("moto_pid", "hypervisor_pid", "forwarder_pid", "proxy_pid"):
        try:
            stat = pathlib.Path("/proc/%s/stat" % state[key]).read_text().rsplit(")", 1)[1].split()[0]
            if stat != "Z":
                found.append("%s %s" % (key, state[key]))
        except (OSError, KeyError):
            pass
    netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    found += ["netns %s" % n for n in netns if n.startswith(state["netns_prefix"])]
    if os.path.exists("/sys/class/net/%s" % state["host_veth"]):
        found.append("veth %s" % state["host_veth"])
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=False).stdout
    if state["vpc_cidr"] in routes or state["head_ip"] + " " in routes:
        found.append("route to %s" % state["vpc_cidr"])
    port = int(state["endpoint_url"].rsplit(":", 1)[1])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        found.append("port %d open" % port)
    except OSError:
        pass
    if state_dir.exists():
        found.append("state dir %s" % state_dir)
    cgroup_root = state.get("containers", {}).get("docker_cgroup_root")
    if cgroup_root:
        found += ["cgroup %s" % p for p in pathlib.Path("/sys/fs/cgroup").glob("*/%s" % cgroup_root)]
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--compute-nodes", type=int, default=2)
    parser.add_argument("--gpus-per-node", type=int, default=1)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the sandbox needs root; run this benchmark as root")
        return 1
    base = pathlib.Path(tempfile.mkdtemp(prefix="hpc-pcluster-cycles-"))
    state_dir = base / "state"
    ups, downs = [], []
    print("cycle   up (s)   down (s)   check")
    try:
        for cycle in range(1, args.cycles + 1):
            up, up_s = sandbox("up", "--state-dir", str(state_dir), "--compute-nodes", str(args.compute_nodes),
                               "--gpus-per-node", str(args.gpus_per_node))
            if up.returncode != 0:
                print("cycle %d: up failed:\n%s%s" % (cycle, up.stdout, up.stderr))
                return 1
            state = json.loads((state_dir / "state.json").read_text())
            net_inodes = {os.stat("/run/netns/%s" % n).st_ino for n in os.listdir("/run/netns")
                          if n.startswith(state["netns_prefix"])}
            ssh = ["ssh", "-i", state["ssh_key"], "-o", "UserKnownHostsFile=%s" % state["known_hosts"],
                   "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "root@%s" % state["head_ip"],
                   "sinfo --noheader --Node --format=%t"]
            sinfo = subprocess.run(ssh, capture_output=True, text=True, timeout=60, check=False).stdout.split()
            status, _status_s = sandbox("status", "--state-dir", str(state_dir))
            # idle, or maint: held out of scheduling by the node-setup loader until a playbook sets the node up.
            ok = status.returncode == 0 and len(sinfo) == args.compute_nodes and set(sinfo) <= {"idle", "maint"}
            down, down_s = sandbox("down", "--state-dir", str(state_dir))
            left = leftovers(state, state_dir, net_inodes)
            ups.append(up_s)
            downs.append(down_s)
            verdict = "ok" if ok and down.returncode == 0 and not left else "FAILED"
            print("%5d   %6.2f   %8.2f   %s %s" % (cycle, up_s, down_s, verdict, ", ".join(left)))
            if verdict != "ok":
                print(status.stdout, down.stdout, down.stderr, sinfo)
                return 1
    finally:
        if state_dir.exists():
            sandbox("down", "--state-dir", str(state_dir))
        try:
            base.rmdir()
        except OSError:
            pass
    median_up = statistics.median(ups)
    print()
    print("%-28s %10s %10s %8s" % ("", "baseline", "ours", "ratio"))
    print("%-28s %9.1fs %9.2fs %8.2f" % ("up, median (budget 15 s)", UP_BUDGET_S, median_up, median_up / UP_BUDGET_S))
    print("%-28s %10s %9.2fs" % ("up, max", "", max(ups)))
    print("%-28s %10s %9.2fs" % ("down, median", "", statistics.median(downs)))
    steps = {key: round(value, 1) for key, value in (state.get("timings") or {}).items()}
    print("last up's steps (s from start): %s" % ", ".join("%s %s" % item for item in sorted(steps.items(), key=lambda i: i[1])))
    print("%d/%d cycles passed" % (len(ups), args.cycles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
