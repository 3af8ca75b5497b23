"""hpc.pcluster.cluster_info against `pcluster describe-cluster` on the sandbox, in the same run.

Baseline: the guide's `pcluster describe-cluster -n NAME -r REGION` (a fresh CLI process).
Ours, timed three ways on the same cluster:
  * module process: the cluster_info module run as Ansible runs it on the target (a fresh Python
    process reading its arguments, importing pcluster.lib once, describing, printing JSON);
  * ad-hoc: `ansible localhost -m hpc.pcluster.cluster_info` (the whole controller on top);
  * list + instances + fleet: one module run returning what takes three CLI processes
    (describe-cluster, describe-cluster-instances, describe-compute-fleet), against those three.
Runs alternate between baseline and ours; medians of --runs; ratio = baseline / ours (>1: ours faster).
Both answers are compared field by field first (status, head node, version).

Uses the sandbox of --state-dir (default sandbox/.state), which must be up (make sandbox-up).

Usage: .venv/bin/python bench/cluster_info_vs_cli.py [--runs 5] [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sandbox"))

from env_file import controller_env, running_state  # noqa: E402  pylint: disable=import-error,wrong-import-position

PY = str(ROOT / ".venv" / "bin" / "python")
PCLUSTER = str(ROOT / ".venv" / "bin" / "pcluster")
ANSIBLE = str(ROOT / ".venv" / "bin" / "ansible")
MODULE = str(ROOT / "plugins" / "modules" / "cluster_info.py")


def sandbox_env(state_dir):
    env = controller_env(state_dir)
    env["PYTHONPATH"] = str(ROOT / "collections")
    return env


def timed(argv, env):
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit("%s failed (rc %d):\n%s%s" % (" ".join(argv), proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return elapsed, proc.stdout


def module_argv(args_file):
    return [PY, MODULE, str(args_file)]


def write_args(directory, name, args):
    path = pathlib.Path(directory) / name
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--state-dir", default=str(ROOT / "sandbox" / ".state"))
    args = parser.parse_args()
    state_dir = pathlib.Path(args.state_dir)
    state = running_state(state_dir)
    env = sandbox_env(state_dir)
    name, region = state["cluster_name"], state["region"]

    with tempfile.TemporaryDirectory() as work:
        describe_args = write_args(work, "describe.json", {"name": name, "region": region})
        full_args = write_args(work, "full.json", {"name": name, "region": region, "instances": True, "compute_fleet": True})
        cli_describe = [PCLUSTER, "describe-cluster", "-n", name, "-r", region]
        cli_three = [cli_describe,
                     [PCLUSTER, "describe-cluster-instances", "-n", name, "-r", region],
                     [PCLUSTER, "describe-compute-fleet", "-n", name, "-r", region]]
        adhoc = [ANSIBLE, "localhost", "-c", "local", "-i", "localhost,", "-e", "ansible_python_interpreter=%s" % PY,
                 "-m", "hpc.pcluster.cluster_info", "-a", json.dumps({"name": name, "region": region})]

        # Same answer first.
        _t, cli_out = timed(cli_describe, env)
        _t, mod_out = timed(module_argv(describe_args), env)
        cli_data, mod_data = json.loads(cli_out[cli_out.index("{"):]), json.loads(mod_out)
        for key in ("clusterStatus", "cloudFormationStackStatus", "version", "computeFleetStatus"):
            assert cli_data[key] == mod_data["cluster"][key], key
        assert cli_data["headNode"]["privateIpAddress"] == mod_data["head_node"]["private_ip_address"] == state["head_ip"]
        print("same answer: %s %s, head node %s, version %s"
              % (name, mod_data["status"], mod_data["head_node"]["private_ip_address"], mod_data["version"]))

        samples = {key: [] for key in ("cli", "module", "adhoc", "cli3", "module_full")}
        for _run in range(args.runs):
            samples["cli"].append(timed(cli_describe, env)[0])
            samples["module"].append(timed(module_argv(describe_args), env)[0])
            samples["adhoc"].append(timed(adhoc, env)[0])
            samples["cli3"].append(sum(timed(argv, env)[0] for argv in cli_three))
            samples["module_full"].append(timed(module_argv(full_args), env)[0])

    med = {key: statistics.median(values) for key, values in samples.items()}
    load = os.getloadavg()[0]
    print("medians of %d runs (load average %.1f on %d CPUs)" % (args.runs, load, os.cpu_count() or 1))
    print("%-58s %8s %8s %7s" % ("", "baseline", "ours", "ratio"))
    rows = [
        ("describe: pcluster CLI vs cluster_info module process", "cli", "module"),
        ("describe: pcluster CLI vs ansible ad-hoc cluster_info", "cli", "adhoc"),
        ("describe+instances+fleet: 3 CLI runs vs 1 module run", "cli3", "module_full"),
    ]
    for label, baseline, ours in rows:
        print("%-58s %7.2fs %7.2fs %6.2fx" % (label, med[baseline], med[ours], med[baseline] / med[ours]))


if __name__ == "__main__":
    main()
