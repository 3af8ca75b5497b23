"""verify.yml wall time with 1, 4 and 8 compute nodes, and the SSH connections it opens.

For each size a separate sandbox instance is brought up (its own state dir), then:
- ours:     `ansible-playbook playbooks/verify.yml` (one module call on the head node, one srun across
            every node), timed over several runs (median);
- baseline: what a person does by hand after the guide (SEED.md 2.3-2.4): one SSH command per check,
            and per node `scontrol show node` + `srun -w <node> nvidia-smi`-style probe, each over its
            own SSH connection.
SSH is counted through a wrapper (`ansible_ssh_executable`) that logs every ssh client run and, via
`ssh -E <log> -v`, every TCP connection actually opened (ControlPersist sessions reuse one).

Usage: .venv/bin/python bench/verify_scale.py [--sizes 1,4,8] [--runs 3]
"""

import argparse
import json
import pathlib
import re
import shlex
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

WRAPPER = """#!/bin/sh
echo "ssh $*" | head -c 300 >> "{log}.calls"; echo >> "{log}.calls"
exec /usr/bin/ssh -E "{log}.debug" -v "$@"
"""


def count_ssh(log):
    calls = pathlib.Path(str(log) + ".calls")
    debug = pathlib.Path(str(log) + ".debug")
    invocations = len([l for l in calls.read_text().splitlines() if l.startswith("ssh ")]) if calls.exists() else 0
    text = debug.read_text(errors="replace") if debug.exists() else ""
    connections = len(re.findall(r"debug1: Connecting to \S+ \[?[0-9.]+\]? port 22", text))
    return invocations, connections


def run_ours_once(state_dir, work, index):
    """One verify.yml run: (wall seconds, (ssh client runs, TCP connections), seconds of the on-cluster probe)."""
    env = controller_env(state_dir)
    log = work / ("ours-%d" % index)
    wrapper = work / ("ssh-wrapper-%d" % index)
    wrapper.write_text(WRAPPER.format(log=log))
    wrapper.chmod(0o755)
    # A fresh ControlPath dir per run: each run pays for its own connection, as a user's would.
    control = work / ("cp-%d" % index)
    control.mkdir()
    env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(control)
    argv = ["ansible-playbook", "-i", str(state_dir / "inventory"), str(ROOT / "playbooks" / "verify.yml"),
            "-e", "ansible_ssh_executable=%s" % wrapper, "-e", "verify_report_dir=%s" % (work / "reports")]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=str(ROOT), env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    # Failed checks (rc 2) still make a full run with a report; anything else is a broken run.
    if proc.returncode not in (0, 2) or "Report: " not in proc.stdout:
        sys.exit("verify.yml did not complete on %s:\n%s" % (state_dir, proc.stdout[-4000:]))
    report = json.loads((work / "reports" / "ml-training-cluster" / "latest" / "report.json").read_text())
    for master in control.iterdir():
        subprocess.run(["ssh", "-O", "exit", "-o", "ControlPath=%s" % master, "x"], capture_output=True, check=False)
    return elapsed, count_ssh(log), float(report["probe_seconds"])


def run_baseline(state, log):
    """The guide's hand checks: one ssh per command, one srun per node (no multiplexing)."""
    ssh = ["ssh", "-E", str(log) + ".debug", "-v", "-i", state["ssh_key"], "-o",
           "UserKnownHostsFile=%s" % state["known_hosts"], "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
           "-o", "ControlMaster=no", "root@%s" % state["head_ip"]]
    commands = [
        "cat /etc/os-release", "df -h", "docker --version", "enroot version", "ls -la /usr/local/lib/slurm/",
        "scontrol ping", "sinfo", "scontrol show partition compute-gpu", "squeue",
    ]
    for node in state["compute_nodes"]:
        commands.append("scontrol show node %s" % node)
        commands.append("srun --partition=compute-gpu --nodes=1 --ntasks=1 --nodelist=%s --quiet "
                        "sh -c 'hostname; nvidia-smi -L || echo no nvidia-smi; echo $CUDA_VISIBLE_DEVICES'" % node)
    start = time.monotonic()
    for command in commands:
        subprocess.run(ssh + [command], capture_output=True, text=True, check=False)
        with open(str(log) + ".calls", "a") as handle:
            handle.write("ssh %s\n" % shlex.quote(command))
    return time.monotonic() - start, count_ssh(log)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,8")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = pathlib.Path(tempfile.mkdtemp(prefix="hpc-pcluster-bench-"))
    states = {}
    samples = dict((size, {"ours": [], "probe": [], "baseline": []}) for size in sizes)
    ssh_counts = {}
    try:
        # Every size runs at the same time, and the runs are interleaved, so that the machine's load
        # weighs on all sizes alike.
        for size in sizes:
            state_dir = base / ("sandbox-%d" % size)
            (base / ("work-%d" % size)).mkdir()
            up = subprocess.run([str(PY), str(SANDBOX), "up", "--state-dir", str(state_dir), "--compute-nodes", str(size),
                                 "--gpus-per-node", "1"], capture_output=True, text=True, check=False)
            states[size] = state_dir
            if up.returncode != 0:
                sys.exit("sandbox with %d nodes did not come up:\n%s%s" % (size, up.stdout[-2000:], up.stderr[-2000:]))
        for index in range(args.runs):
            for size in sizes:
                work = base / ("work-%d" % size)
                elapsed, counts, probe = run_ours_once(states[size], work, index)
                samples[size]["ours"].append(elapsed)
                samples[size]["probe"].append(probe)
                ssh_counts[size] = counts
                state = json.loads((states[size] / "state.json").read_text())
                baseline, baseline_ssh = run_baseline(state, work / ("baseline-%d" % index))
                samples[size]["baseline"].append(baseline)
                ssh_counts[(size, "baseline")] = baseline_ssh
                print("  run %d, %d node(s): verify.yml %.1f s (on the cluster %.2f s), by hand %.1f s"
                      % (index + 1, size, elapsed, probe, baseline), flush=True)
    finally:
        for state_dir in states.values():
            subprocess.run([str(PY), str(SANDBOX), "down", "--state-dir", str(state_dir)], capture_output=True,
                           check=False)
        shutil.rmtree(base, ignore_errors=True)

    def stat(size, key, how):
        return how(samples[size][key])

    first = sizes[0]
    print()
    print("verify.yml vs the guide's checks by hand (one ssh per check, one srun per node); %d interleaved runs"
          % args.runs)
    header = "%-6s %-30s %-30s %-30s" % ("nodes", "verify.yml s: median/min (x1)", "on-cluster s: median (x1)",
                                         "by hand s: median/min (x1)")
    print(header + " ssh: verify.yml / by hand")
    for size in sizes:
        ours_med, ours_min = stat(size, "ours", statistics.median), stat(size, "ours", min)
        probe_med = stat(size, "probe", statistics.median)
        base_med, base_min = stat(size, "baseline", statistics.median), stat(size, "baseline", min)
        ours_cell = "%.1f / %.1f (%.2fx / %.2fx)" % (
            ours_med, ours_min, ours_med / stat(first, "ours", statistics.median), ours_min / stat(first, "ours", min))
        probe_cell = "%.2f (%.2fx)" % (probe_med, probe_med / stat(first, "probe", statistics.median))
        base_cell = "%.1f / %.1f (%.2fx / %.2fx)" % (
            base_med, base_min, base_med / stat(first, "baseline", statistics.median),
            base_min / stat(first, "baseline", min))
        print("%-6d %-30s %-30s %-30s %d client run(s), %d TCP conn / %d TCP conns" % (
            size, ours_cell, probe_cell, base_cell,
            ssh_counts[size][0], ssh_counts[size][1], ssh_counts[(size, "baseline")][1]))
    last = sizes[-1]
    ratio = stat(last, "ours", statistics.median) / stat(first, "ours", statistics.median)
    print()
    print("(on-cluster: the one hpc.pcluster.slurm_verify call on the head node, test job included; the rest of"
          " verify.yml is controller work that does not depend on the node count)")
    print("goal: %d nodes under 1.3x one node -> verify.yml median %.2fx, best %.2fx (%s)" % (
        last, ratio, stat(last, "ours", min) / stat(first, "ours", min), "met" if ratio < 1.3 else "NOT met"))
    print("ours vs by hand at %d nodes: %.2fx the time, %d SSH connection(s) instead of %d" % (
        last, stat(last, "ours", statistics.median) / stat(last, "baseline", statistics.median), ssh_counts[last][1],
        ssh_counts[(last, "baseline")][1]))


if __name__ == "__main__":
    main()
