"""What an idle sandbox costs this machine's CPUs, with clustermgtd looping every 10 s and every 60 s.

A sandbox that nothing uses still runs ParallelCluster's node daemons: clustermgtd's loop on the head node
(its fleet status script, its EC2 and DynamoDB calls to moto, scontrol), computemgtd on each compute node,
the hypervisor's look at the VPC's instances and moto answering them all. Each sandbox the tests keep up
while they work elsewhere takes that from the cores they share. For each loop time, a sandbox of the bench's
own comes up (`up --clustermgtd-loop-time`), settles, and the machine's busy CPU time (/proc/stat, every
process) is measured over a window; the machine's own, measured first with no sandbox of the bench's up, is
taken off. Baseline: the loop time of 10 s, which every sandbox used before `up --clustermgtd-loop-time`
(ParallelCluster's default, 60 s, is now the sandbox's). Prints each as a share of one core and the ratio
60 s / 10 s. Run it on an otherwise idle machine: other work in the window counts as the sandbox's.

Usage: .venv/bin/python bench/sandbox_idle_cpu.py [--seconds 120] [--settle 30] [--compute-nodes 2]
"""

import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import container_staging as staging  # noqa: E402  pylint: disable=import-error,wrong-import-position  # bench/

HZ = os.sysconf("SC_CLK_TCK")
BASELINE_LOOP = 10
LOOPS = (BASELINE_LOOP, 60)


def busy_seconds() -> float:
    """The machine's busy CPU seconds so far (user, nice, system, irq, softirq), all cores."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = handle.readline().split()[1:]
    return (int(fields[0]) + int(fields[1]) + int(fields[2]) + int(fields[5]) + int(fields[6])) / HZ


def share_of_a_core(seconds: float) -> float:
    """The machine's busy time over the next `seconds`, as a share of one core."""
    before = busy_seconds()
    time.sleep(seconds)
    return (busy_seconds() - before) / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="the measuring window (default 120)")
    parser.add_argument("--settle", type=float, default=30.0, help="wait after up before measuring (default 30)")
    parser.add_argument("--compute-nodes", type=int, default=2)
    args = parser.parse_args()
    machine = share_of_a_core(args.seconds)
    print("the machine without a sandbox of the bench's: %.1f%% of one core" % (100 * machine))
    shares = {}
    for loop in LOOPS:
        up_args = ["--compute-nodes", str(args.compute_nodes), "--clustermgtd-loop-time", str(loop)]
        with staging.bench_sandbox("hpc-pcluster-bench-idle-", None, up_args):
            time.sleep(args.settle)
            shares[loop] = max(0.0, share_of_a_core(args.seconds) - machine)
        print("idle sandbox, %d compute nodes, clustermgtd loop_time %2d s: %.1f%% of one core (%.1f CPU s a minute)"
              % (args.compute_nodes, loop, 100 * shares[loop], 60 * shares[loop]))
    if shares[BASELINE_LOOP] > 0:
        ratio = shares[LOOPS[1]] / shares[BASELINE_LOOP]
        print("ratio loop_time %d s / %d s (baseline): %.2f" % (LOOPS[1], BASELINE_LOOP, ratio))


if __name__ == "__main__":
    main()
