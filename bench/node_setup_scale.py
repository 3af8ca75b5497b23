"""Node setup on 1, 2, 4 and 8 compute nodes: the Slurm path and the SSH path side by side, and a no-op deploy.yml.

Each size gets a sandbox of its own (all up at once) and one deploy.yml run (it stages the node-setup bundle and
sets every compute node up). Then, over --runs interleaved rounds, so that the machine's load weighs on every size
alike, each size measures:

- slurm:       playbooks/containers.yml with the compute nodes on the Slurm path, every node applying the bundle
               (node_setup_fleet_force: the whole play on every node; nothing is left to change), the head node's
               SSH play left out (containers_hosts matches nothing);
- ssh:         the same roles on the compute nodes over SSH through the head node (node_setup_compute_path=ssh,
               containers_hosts=compute);
- slurm, up to date: the Slurm path as a repeated deploy runs it (a node that applied this bundle since it booted
               answers at once);
- deploy:      deploy.yml again (changes nothing).

Prints the medians with ratios against the smallest size, and what the nodes' own plays cost in CPU: every "node"
of the sandbox shares this machine's cores, so on a 2-core machine eight plays at once take about four times as
long as one however they are started - on a cluster each node runs its play on its own CPUs. Hence also the
fan-out row: the forced Slurm run's wall time less its slowest node's play, what the path itself costs (staging the
bundle, the job, collecting the results), which is what grows with the cluster on real nodes.

Usage: .venv/bin/python bench/node_setup_scale.py [--sizes 1,2,4,8] [--runs 2]
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sandbox"))

from env_file import controller_env  # noqa: E402  pylint: disable=import-error,wrong-import-position

PY = ROOT / ".venv" / "bin" / "python"
SANDBOX = ROOT / "sandbox" / "sandbox.py"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
MODES = {
    "slurm": ("playbooks/containers.yml", {"containers_hosts": "hpc_pcluster_bench_no_host",
                                           "node_setup_fleet_force": True}),
    "ssh": ("playbooks/containers.yml", {"containers_hosts": "compute", "node_setup_compute_path": "ssh"}),
    "slurm_up_to_date": ("playbooks/containers.yml", {"containers_hosts": "hpc_pcluster_bench_no_host"}),
    "deploy": ("playbooks/deploy.yml", {}),
}


def playbook(state_dir, work, path, extra):
    env = controller_env(state_dir)
    argv = ["ansible-playbook", "-i", str(state_dir / "inventory"), str(ROOT / path),
            "-e", "verify_report_dir=%s" % (work / "reports"), "-e", json.dumps(extra)]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=str(ROOT), env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    recap = RECAP.findall(proc.stdout)
    if proc.returncode != 0 or not recap or any(int(f) or int(u) for _h, _c, u, f in recap):
        sys.exit("%s failed on %s:\n%s" % (path, state_dir, proc.stdout[-5000:] + proc.stderr[-2000:]))
    return elapsed, proc.stdout, sum(int(c) for _h, c, _u, _f in recap)


def node_results(state_dir):
    """Each compute node's last result (run.py's record in the node's own /var)."""
    state = json.loads((state_dir / "state.json").read_text())
    found = []
    for name in state["compute_nodes"]:
        path = pathlib.Path("/proc/%s/root/var/lib/hpc-pcluster/node-setup/result.json" % state["holders"].get(name))
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def up(base, size):
    state_dir = base / ("sandbox-%d" % size)
    proc = subprocess.run([str(PY), str(SANDBOX), "up", "--state-dir", str(state_dir), "--compute-nodes", str(size),
                           "--gpus-per-node", "1"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit("sandbox with %d nodes did not come up:\n%s%s" % (size, proc.stdout[-2000:], proc.stderr[-2000:]))
    (base / ("work-%d" % size)).mkdir()
    return state_dir


def measure(sizes, runs, base):
    states = {size: up(base, size) for size in sizes}
    samples = {(size, mode): [] for size in sizes for mode in MODES}
    node_seconds, cpu = {}, {}
    for size in sizes:
        elapsed, _out, changed = playbook(states[size], base / ("work-%d" % size), "playbooks/deploy.yml", {})
        print("  %d node(s): first deploy.yml %.0f s (changed=%d)" % (size, elapsed, changed), flush=True)
    for index in range(runs):
        for mode, (path, extra) in MODES.items():
            for size in sizes:
                elapsed, _out, changed = playbook(states[size], base / ("work-%d" % size), path, extra)
                samples[(size, mode)].append(elapsed)
                if mode == "slurm":
                    results = node_results(states[size])
                    node_seconds.setdefault(size, []).append(max(r.get("seconds", 0) for r in results))
                    cpu.setdefault(size, []).extend(r["cpu_seconds"] for r in results if "cpu_seconds" in r)
                print("  run %d, %-16s %d node(s): %.1f s, changed=%d" % (index + 1, mode, size, elapsed, changed),
                      flush=True)
    return states, samples, node_seconds, cpu


def report(sizes, runs, samples, node_seconds, cpu):
    first, last = sizes[0], sizes[-1]

    def med(size, mode):
        return statistics.median(samples[(size, mode)])

    print()
    print("Node setup of the compute nodes, median of %d interleaved runs (wall seconds, ratio to %d node(s))"
          % (runs, first))
    columns = ("nodes", "slurm (forced)", "ssh", "slurm, up to date", "slowest node's play", "deploy.yml, no-op")
    print("%-6s %-22s %-22s %-22s %-24s %s" % columns)
    for size in sizes:
        cells = ["%.1f (%.2fx)" % (med(size, mode), med(size, mode) / med(first, mode))
                 for mode in ("slurm", "ssh", "slurm_up_to_date")]
        play = statistics.median(node_seconds[size])
        cells.append("%.1f (%.2fx)" % (play, play / statistics.median(node_seconds[first])))
        cells.append("%.1f (%.2fx)" % (med(size, "deploy"), med(size, "deploy") / med(first, "deploy")))
        print("%-6d %-22s %-22s %-22s %-24s %s" % tuple([size] + cells))
    print()
    cores = os.cpu_count() or 1
    per_node = statistics.median(cpu[first]) if cpu.get(first) else 0.0
    print("one node's play costs %.1f CPU s (median); %d nodes at once need %.0f CPU s from this machine's %d cores, "
          "at least %.1f s of wall time however the plays are started"
          % (per_node, last, per_node * last, cores, per_node * last / cores))
    for mode, label in (("slurm", "Slurm path, forced"), ("ssh", "SSH path"), ("slurm_up_to_date", "Slurm path, up to date")):
        print("%-24s %d/%d nodes: %.2fx" % (label, last, first, med(last, mode) / med(first, mode)))
    # What the Slurm path adds to the nodes' own plays (staging, the job, collecting the results): the forced run's
    # wall time less its slowest node's play. On a cluster the plays run on the nodes' own CPUs, side by side.
    fan_out = {size: med(size, "slurm") - statistics.median(node_seconds[size]) for size in sizes}
    print("%-24s %s" % ("Slurm path, fan-out", ", ".join(
        "%d node(s) %.1f s (%.2fx)" % (size, fan_out[size], fan_out[size] / fan_out[first]) for size in sizes)))
    goal = med(last, "slurm_up_to_date") / med(first, "slurm_up_to_date")
    forced = med(last, "slurm") / med(first, "slurm")
    fan_out_ratio = fan_out[last] / fan_out[first]
    print("goal: Slurm path %d nodes / %d node(s) at most 1.3x -> up to date %.2fx (%s); forced %.2fx (%s), its "
          "fan-out %.2fx (%s)" % (
              last, first, goal, "met" if goal <= 1.3 else "NOT met",
              forced, "met" if forced <= 1.3 else "NOT met: the plays share this machine's cores",
              fan_out_ratio, "met" if fan_out_ratio <= 1.3 else "NOT met"))
    if 2 in sizes:
        ratio = med(last, "deploy") / med(2, "deploy")
        print("goal: no-op deploy.yml on %d nodes at most 1.3x its time on 2 -> %.2fx (%s)"
              % (last, ratio, "met" if ratio <= 1.3 else "NOT met"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,4,8")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    base = pathlib.Path(tempfile.mkdtemp(prefix="hpc-pcluster-bench-"))
    states = {}
    try:
        states, samples, node_seconds, cpu = measure(sizes, args.runs, base)
    finally:
        for state_dir in (states or {size: base / ("sandbox-%d" % size) for size in sizes}).values():
            subprocess.run([str(PY), str(SANDBOX), "down", "--state-dir", str(state_dir)], capture_output=True,
                           check=False)
        shutil.rmtree(base, ignore_errors=True)
    report(sizes, args.runs, samples, node_seconds, cpu)


if __name__ == "__main__":
    main()
