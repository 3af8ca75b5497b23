"""Offline config validation vs `pcluster create-cluster --dryrun true`, on the same config.

Baseline: what the guide's users can run to check a config in ParallelCluster 3 (the guide's
`pcluster validate-config` does not exist): the pcluster CLI's create-cluster dryrun, here against the
sandbox's moto (so no network latency to AWS is counted: the real one is slower).
Ours: hpc.pcluster's offline check (ParallelCluster's ClusterSchema + the collection's rules), timed
(a) as a fresh process, like the CLI (interpreter start, imports, check), and (b) warm, in-process,
as a module run that has already imported pcluster.

The config is the role's default config with the sandbox's subnets and security group, FSx off
(moto has no FSx), so the dryrun succeeds. Medians of --runs runs; the ratio is baseline / ours.

Uses the sandbox of --state-dir (default sandbox/.state) when it is up, else brings one up on a state
dir of its own and takes it down at the end.

Usage: .venv/bin/python bench/config_validate_speed.py [--runs 5] [--state-dir DIR]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
PCLUSTER = str(ROOT / ".venv" / "bin" / "pcluster")
SANDBOX = str(ROOT / "sandbox" / "sandbox.py")
sys.path.insert(0, str(ROOT / "collections"))
sys.path.insert(0, str(ROOT / "sandbox"))

from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import render_yaml  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.module_utils.config.rules import validate_config  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.plugin_utils.config_builder import build_cluster_config  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.plugin_utils.role_variables import role_options  # noqa: E402
from env_file import read_env_sh  # noqa: E402  pylint: disable=import-error,wrong-import-position

FRESH_PROCESS_CHECK = (
    "import sys; sys.path.insert(0, %r)\n"
    "from ansible_collections.hpc.pcluster.plugins.module_utils.config.rules import validate_config\n"
    "from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import load_config_file\n"
    "config, problems = load_config_file(sys.argv[1])\n"
    "found, schema, _note = validate_config(config, sys.argv[2])\n"
    "assert schema and not problems + found, problems + found\n"
) % str(ROOT / "collections")


def sandbox_up(state_dir):
    """(state dir, started by us): the given or default sandbox when it is up, else a new one."""
    state_dir = state_dir or ROOT / "sandbox" / ".state"
    status = subprocess.run([PY, SANDBOX, "status", "--state-dir", str(state_dir)], capture_output=True, text=True,
                            check=False)
    if status.returncode == 0:
        return state_dir, False
    state_dir = pathlib.Path(tempfile.mkdtemp(prefix="bench-cfgval-"))
    state_dir.rmdir()
    proc = subprocess.run([PY, SANDBOX, "up", "--state-dir", str(state_dir), "--compute-nodes", "1"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit("sandbox up failed:\n%s%s" % (proc.stdout, proc.stderr))
    return state_dir, True


def bench_config(state):
    aws = state["aws"]
    variables = {
        "pcluster_cluster_name": "bench-cfgval",
        "cluster_config_region": state["region"],
        "cluster_config_public_subnet_id": aws["public_subnet_id"],
        "cluster_config_private_subnet_id": aws["private_subnet_id"],
        "cluster_config_security_group_id": aws["security_group_id"],
        "cluster_config_ssh_allowed_ips": state.get("vpc_cidr") or "10.0.0.0/16",
        "cluster_config_ssh_key_name": "hpc-pcluster-sandbox",  # the key pair sandbox.py up imports
        "cluster_config_head_node_bootstrap_script": aws["head_node_bootstrap_script"],
        "cluster_config_compute_node_bootstrap_script": aws["compute_node_bootstrap_script"],
        "cluster_config_fsx_lustre_enabled": False,
        "cluster_config_fsx_openzfs_enabled": False,
    }
    spec = yaml.safe_load((ROOT / "roles" / "cluster_config" / "meta" / "argument_specs.yml").read_text())
    built = build_cluster_config(variables, role_options(spec))
    assert not built["problems"], built["problems"]
    return built["config"]


def timed(func, runs):
    samples = []
    for dummy in range(runs):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--state-dir", type=pathlib.Path)
    args = parser.parse_args()

    state_dir, started = sandbox_up(args.state_dir)
    try:
        state = json.loads((state_dir / "state.json").read_text())
        env = dict(os.environ, **read_env_sh(state_dir / "env.sh"))
        config = bench_config(state)
        work = pathlib.Path(tempfile.mkdtemp(prefix="bench-cfgval-"))
        config_file = work / "cluster-config.yaml"
        config_file.write_text(render_yaml(config))
        name = "bench-cfgval"

        def dryrun():
            argv = [PCLUSTER, "create-cluster", "--dryrun", "true", "--cluster-name", name,
                    "--cluster-configuration", str(config_file), "--region", state["region"],
                    "--suppress-validators", *state["suppress_validators"]]
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            # A successful dryrun exits 1 with this message (ParallelCluster 3).
            if "Request would have succeeded" not in proc.stdout:
                sys.exit("pcluster dryrun did not succeed:\n%s%s" % (proc.stdout, proc.stderr))

        def fresh():
            proc = subprocess.run([PY, "-c", FRESH_PROCESS_CHECK, str(config_file), name], capture_output=True,
                                  text=True, check=False)
            if proc.returncode != 0:
                sys.exit("offline check failed:\n%s" % proc.stderr)

        validate_config(config, name)  # warm the imports once

        def warm():
            problems, schema, _note = validate_config(config, name)
            assert schema and not problems, problems

        baseline, baseline_samples = timed(dryrun, args.runs)
        cold, cold_samples = timed(fresh, args.runs)
        hot, hot_samples = timed(warm, args.runs)
    finally:
        if started:
            subprocess.run([PY, SANDBOX, "down", "--state-dir", str(state_dir)], capture_output=True, check=False)

    print("config: role defaults + sandbox ids, FSx off; %d runs each, medians" % args.runs)
    print("%-58s %9s %9s" % ("", "median s", "ratio"))
    print("%-58s %9.3f %9s" % ("baseline: pcluster create-cluster --dryrun true (moto)", baseline, "1.0x"))
    print("%-58s %9.3f %8.1fx" % ("ours: offline check, fresh process", cold, baseline / cold))
    print("%-58s %9.3f %8.1fx" % ("ours: offline check, warm (in a running module)", hot, baseline / hot))
    print("samples: baseline %s | fresh %s | warm %s" % tuple(
        " ".join("%.2f" % s for s in samples) for samples in (baseline_samples, cold_samples, hot_samples)))


if __name__ == "__main__":
    main()
