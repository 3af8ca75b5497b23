"""ansible-inventory --list: hpc.pcluster.nodes against amazon.aws.aws_ec2 on a 1000-node cluster.

Starts its own moto server, registers a 1000-node cluster and two small ones (in two regions) with
sandbox/moto_cluster.py, then times ``ansible-inventory --list`` with both plugins, alternating runs,
uncached and cached, and prints medians and ratios.

The aws_ec2 configuration asks for the same instances (server-side filters on the ParallelCluster tag
and the instance state), the same groups (keyed_groups on the tags) and the connection variables it can
express (ansible_host, ansible_user from the attributes tag); it cannot express the jump through each
cluster's head node, which hpc.pcluster.nodes adds on top. hpc.pcluster.nodes runs with its default host
names, so it also reads each cluster's node table in DynamoDB (one Scan per cluster) to name the compute
nodes by their Slurm node names; aws_ec2 names hosts by instance id.

    .venv/bin/python bench/inventory_scale.py [--repeat 3] [--compute-nodes 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
sys.path.insert(0, str(ROOT / "sandbox"))

import moto_cluster  # noqa: E402

REGIONS = ["us-east-1", "us-west-2"]

OURS = {
    "plugin": "hpc.pcluster.nodes",
    "regions": REGIONS,
    "ssh_common_args": "-o UserKnownHostsFile=/dev/null/known_hosts -o StrictHostKeyChecking=yes",
}

USER_BY_OS = "{'alinux2023': 'ec2-user', 'ubuntu2204': 'ubuntu', 'ubuntu2404': 'ubuntu', 'rhel8': 'ec2-user', " \
             "'rhel9': 'ec2-user', 'rocky8': 'rocky', 'rocky9': 'rocky'}"
CLUSTER = "tags['parallelcluster:cluster-name']"
NODE_TYPE = "{'HeadNode': 'head_node', 'LoginNode': 'login_node', 'Compute': 'compute'}[tags['parallelcluster:node-type']]"
QUEUE = "tags['parallelcluster:queue-name']"
COMPUTE_RESOURCE = "tags['parallelcluster:compute-resource-name']"
AWS_EC2 = {
    "plugin": "amazon.aws.aws_ec2",
    "regions": REGIONS,
    "hostnames": ["instance-id"],
    "filters": {"tag-key": "parallelcluster:cluster-name", "instance-state-name": ["pending", "running"]},
    "leading_separator": False,
    "groups": {"pcluster": "true"},
    "keyed_groups": [
        {"key": CLUSTER, "separator": ""},
        {"key": NODE_TYPE, "separator": ""},
        {"key": CLUSTER + " ~ '_' ~ " + NODE_TYPE, "separator": ""},
        {"key": CLUSTER + " ~ '_queue_' ~ " + QUEUE, "separator": ""},
        {"key": CLUSTER + " ~ '_queue_' ~ " + QUEUE + " ~ '_' ~ " + COMPUTE_RESOURCE, "separator": ""},
    ],
    "compose": {
        "ansible_host": "public_ip_address | default(private_ip_address)",
        "ansible_user": USER_BY_OS + "[tags['parallelcluster:attributes'].split(',')[0]]",
    },
}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto():
    port = free_port()
    process = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return process, endpoint
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit("moto_server did not start")
            time.sleep(0.2)


def register(endpoint, compute_nodes):
    config = {"Region": REGIONS[0]}
    east = moto_cluster.seed_environment(endpoint, REGIONS[0], "10.0.0.0/16", "10.0.0.0/24", "10.0.16.0/20")
    west = moto_cluster.seed_environment(endpoint, REGIONS[1], "10.1.0.0/16", "10.1.0.0/24", "10.1.16.0/20")
    moto_cluster.register_cluster(endpoint, REGIONS[0], "big", "10.0.0.10", compute_count=compute_nodes, config=config,
                                  public_subnet_id=east["public_subnet_id"], private_subnet_id=east["private_subnet_id"])
    moto_cluster.register_cluster(endpoint, REGIONS[0], "small-a", "10.0.0.20", ["10.0.31.21", "10.0.31.22"],
                                  config=config, queue="cpu", compute_resource="c5",
                                  public_subnet_id=east["public_subnet_id"], private_subnet_id=east["private_subnet_id"])
    moto_cluster.register_cluster(endpoint, REGIONS[1], "small-b", "10.1.0.20", ["10.1.16.21"], config=config,
                                  os_name="rocky9", public_subnet_id=west["public_subnet_id"],
                                  private_subnet_id=west["private_subnet_id"])
    return compute_nodes + 1 + 3 + 2


def write_config(path, config):
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return path


def run_inventory(source, env):
    start = time.perf_counter()
    result = subprocess.run([str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list"], env=env,
                            capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"ansible-inventory -i {source} failed:\n{result.stderr[-3000:]}")
    data = json.loads(result.stdout)
    return elapsed, len(data.get("_meta", {}).get("hostvars", {})), data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compute-nodes", type=int, default=1000)
    args = parser.parse_args()

    work = pathlib.Path(tempfile.mkdtemp(prefix="inventory-bench-"))
    process, endpoint = start_moto()
    try:
        started = time.perf_counter()
        expected_hosts = register(endpoint, args.compute_nodes)
        print(f"moto {endpoint}: {expected_hosts} cluster instances in 3 clusters, 2 regions "
              f"(registered in {time.perf_counter() - started:.1f} s)")

        env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}",
                   ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_INVENTORY_ENABLED="hpc.pcluster.nodes,amazon.aws.aws_ec2",
                   AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_DEFAULT_REGION=REGIONS[0], AWS_EC2_METADATA_DISABLED="true",
                   ANSIBLE_DEPRECATION_WARNINGS="false", ANSIBLE_INVENTORY_UNPARSED_FAILED="true")
        cache = {"cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_timeout": 3600}
        sources = {
            "hpc.pcluster.nodes uncached": write_config(work / "uncached.pcluster_nodes.yml", dict(OURS, endpoint_url=endpoint)),
            "amazon.aws.aws_ec2 uncached": write_config(work / "uncached.aws_ec2.yml", dict(AWS_EC2, endpoint_url=endpoint)),
            "hpc.pcluster.nodes cached": write_config(work / "cached.pcluster_nodes.yml", dict(
                OURS, endpoint_url=endpoint, cache_connection=str(work / "cache-ours"), **cache)),
            "amazon.aws.aws_ec2 cached": write_config(work / "cached.aws_ec2.yml", dict(
                AWS_EC2, endpoint_url=endpoint, cache_connection=str(work / "cache-aws"), **cache)),
        }

        # One run each first: fills the caches and checks that both list the same hosts and groups.
        listed = {}
        for name, source in sources.items():
            elapsed, hosts, data = run_inventory(source, env)
            print(f"  first run {name:30s} {elapsed:7.2f} s", flush=True)
            if hosts != expected_hosts:
                raise SystemExit(f"{name} listed {hosts} hosts, expected {expected_hosts}")
            listed[name] = data
        # Every compute node by its Slurm node name from the node tables (small-b's one node has the name of
        # big's first node, so it is qualified by its cluster).
        hosts = set(listed["hpc.pcluster.nodes uncached"]["_meta"]["hostvars"])
        expected = {f"compute-gpu-st-distributed-ml-{n}" for n in range(1, args.compute_nodes + 1)}
        expected |= {"cpu-st-c5-1", "cpu-st-c5-2", "small-b-compute-gpu-st-distributed-ml-1"}
        if not expected <= hosts:
            raise SystemExit(f"hpc.pcluster.nodes did not name {len(expected - hosts)} compute nodes by their "
                             f"Slurm node names, e.g. {sorted(expected - hosts)[:3]}")
        ours_groups = {g for g in listed["hpc.pcluster.nodes uncached"] if g != "_meta"}
        aws_groups = {g for g in listed["amazon.aws.aws_ec2 uncached"] if g != "_meta"}
        print(f"hosts listed by each: {expected_hosts}; groups: hpc.pcluster.nodes {len(ours_groups)}, "
              f"aws_ec2 {len(aws_groups)}; only hpc.pcluster.nodes: {sorted(ours_groups - aws_groups) or 'none'}, "
              f"only aws_ec2: {sorted(aws_groups - ours_groups) or 'none'}")

        times = {name: [] for name in sources}
        for repetition in range(args.repeat):
            for name, source in sources.items():  # alternating, so both see the same machine load
                times[name].append(run_inventory(source, env)[0])
            print(f"  run {repetition + 1}: " + ", ".join(f"{times[n][-1]:.2f}" for n in sources), flush=True)

        print(f"\nansible-inventory --list, {args.repeat} runs each, seconds (median / min / max):")
        for name, values in times.items():
            print(f"  {name:30s} {statistics.median(values):7.2f} {min(values):7.2f} {max(values):7.2f}")
        med = {name: statistics.median(values) for name, values in times.items()}
        uncached_ratio = med["hpc.pcluster.nodes uncached"] / med["amazon.aws.aws_ec2 uncached"]
        cached_ratio = med["hpc.pcluster.nodes cached"] / med["amazon.aws.aws_ec2 uncached"]
        print(f"\nratio uncached, hpc.pcluster.nodes / aws_ec2:          {uncached_ratio:.2f} "
              f"(aws_ec2 takes {1 / uncached_ratio:.2f}x as long; goal <= 0.6, node tables read)")
        print(f"ratio cached hpc.pcluster.nodes / uncached aws_ec2:    {cached_ratio:.2f} (goal < 0.33)")
        print(f"ratio cached, hpc.pcluster.nodes / aws_ec2 cached:     "
              f"{med['hpc.pcluster.nodes cached'] / med['amazon.aws.aws_ec2 cached']:.2f}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
