"""The MPI all-reduce of the verify role's distributed checks against the sandbox's raw network.

Baseline: one TCP stream between compute nodes 1 and 2 over the sandbox's veth network, measured as
`sandbox.py up` measures it (sandbox/netbench.py: best of 3 x 64 MiB) - what the network gives.
Ours: the bus bandwidth at 16 MiB of the MPI all-reduce the verify role runs (mpi4py, one rank per
compute node, mpirun inside salloc from the head node with the sandbox's verify_distributed_mpirun_args,
the program of plugins/module_utils/allreduce/program.py), read with the role's parser.
Runs alternate; medians of --runs; ratio = all-reduce bus bandwidth / TCP stream. The sandbox judges
the all-reduce against the measured TCP figure with verify_distributed_mpi_min_fraction (sandbox.py),
which must stay well below the ratio printed here.

Uses the sandbox of --state-dir (default sandbox/.state), which must be up with 2 or more compute nodes.

Usage: .venv/bin/python bench/allreduce_sandbox.py [--runs 5] [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import pathlib
import shlex
import statistics
import subprocess
import sys
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sandbox"))
sys.path.insert(0, str(ROOT / "collections"))

import netbench  # noqa: E402  pylint: disable=import-error,wrong-import-position
from env_file import running_state  # noqa: E402  pylint: disable=import-error,wrong-import-position
from ansible_collections.hpc.pcluster.plugins.module_utils.allreduce.output import (  # noqa: E402
    parse_allreduce,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.allreduce.program import (  # noqa: E402
    program_argv,
)


def head_ssh(state, command):
    argv = ["ssh", "-i", state["ssh_key"], "-o", "UserKnownHostsFile=%s" % state["known_hosts"],
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "root@%s" % state["head_ip"], command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


def mpirun_args(state):
    """The verify_distributed_mpirun_args the sandbox gives the verify role."""
    group_vars = pathlib.Path(state["inventory_dir"]) / "group_vars" / "all" / "sandbox_only.yml"
    return yaml.safe_load(group_vars.read_text()).get("verify_distributed_mpirun_args", [])


def allreduce(state, extra_args):
    """(bus bandwidth at the largest message in GB/s, seconds) of one MPI all-reduce across every compute node."""
    nodes = state["compute_nodes"]
    argv = ["salloc", "--nodes=%d" % len(nodes), "--ntasks-per-node=1", "--nodelist=%s" % ",".join(nodes),
            "--quiet", "--immediate=60", "mpirun", "--allow-run-as-root"] + list(extra_args)
    argv += program_argv("/usr/bin/python3", 1024, 16 << 20, 4, 5, 1)
    start = time.perf_counter()
    proc = head_ssh(state, shlex.join(argv))
    elapsed = time.perf_counter() - start
    parsed = parse_allreduce(proc.stdout)
    if proc.returncode != 0 or not parsed["concluded"]:
        raise SystemExit("the all-reduce failed (rc %d):\n%s%s" % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    last = parsed["rows"][-1]
    return max(last["out_of_place"]["busbw"], last["in_place"]["busbw"]), elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--state-dir", default=str(ROOT / "sandbox" / ".state"))
    args = parser.parse_args()
    state = running_state(args.state_dir)
    names = state["compute_nodes"]
    if len(names) < 2:
        raise SystemExit("the sandbox has %d compute node(s); the all-reduce needs 2 or more" % len(names))
    pids = [state["holders"][n] for n in names]
    extra = mpirun_args(state)

    tcp, busbw, seconds = [], [], []
    for _run in range(args.runs):
        tcp.append(netbench.measure(names, pids, state["compute_ips"])["tcp_gbs"])
        value, elapsed = allreduce(state, extra)
        busbw.append(value)
        seconds.append(elapsed)
    base, ours = statistics.median(tcp), statistics.median(busbw)
    print("compute nodes: %d, runs: %d (alternating), mpirun %s" % (len(names), args.runs, " ".join(extra)))
    print("%-52s %s" % ("baseline: TCP stream node 1 -> node 2 (GB/s)", " ".join("%.3f" % v for v in tcp)))
    print("%-52s %s" % ("ours: MPI all-reduce busbw at 16 MiB (GB/s)", " ".join("%.3f" % v for v in busbw)))
    print("%-52s %s" % ("ours: whole all-reduce run from the head node (s)", " ".join("%.1f" % v for v in seconds)))
    print("median: TCP %.3f GB/s, all-reduce %.3f GB/s; ratio all-reduce / TCP = %.2f (lowest run %.2f)" % (
        base, ours, ours / base, min(b / t for b, t in zip(busbw, tcp))))


if __name__ == "__main__":
    main()
