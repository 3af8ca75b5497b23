"""The sandbox's network figure: TCP throughput between two compute nodes over their veth pair.

The verify role judges the MPI all-reduce across the compute nodes against what the sandbox's network
gives (``verify_distributed_expected``). ``sandbox.py up`` measures it once, when everything else is up,
and writes it with how it was measured into the inventory (``group_vars/all/sandbox_only.yml``):
one Python TCP stream from compute node 1 to compute node 2 (each in its own network namespace,
through the head node's bridge), 64 MiB per round, the best of 3 rounds, timed from the first byte
received to the last. ``bench/allreduce_sandbox.py`` prints it next to the MPI all-reduce's bus bandwidth.
"""

from __future__ import annotations

import subprocess
import sys

RECEIVER = r"""
import socket, sys, time
server = socket.socket()
server.bind((sys.argv[1], 0))
server.listen(1)
print(server.getsockname()[1], flush=True)
conn, _ = server.accept()
buf, total, first = bytearray(1 << 20), 0, None
while True:
    n = conn.recv_into(buf)
    if not n:
        break
    if first is None:
        first = time.perf_counter()
    total += n
print(total, time.perf_counter() - first, flush=True)
"""

SENDER = r"""
import socket, sys
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])))
block = bytes(1 << 20)
for _ in range(int(sys.argv[3])):
    conn.sendall(block)
conn.close()
"""

ROUNDS = 3
MIB_PER_ROUND = 64


def _in_netns(pid: int, argv: list) -> list:
    # Only the network namespace: the interpreter is this machine's, whatever the node's mounts are.
    return ["nsenter", "-t", str(pid), "-n", "--", *argv]


def tcp_stream(sender_pid: int, receiver_pid: int, receiver_ip: str, mib: int = MIB_PER_ROUND) -> float:
    """Bytes per second of one TCP stream from the sender's namespace to receiver_ip."""
    receiver = subprocess.Popen(_in_netns(receiver_pid, [sys.executable, "-c", RECEIVER, receiver_ip]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(receiver.stdout.readline())
        sent = subprocess.run(_in_netns(sender_pid, [sys.executable, "-c", SENDER, receiver_ip, str(port), str(mib)]),
                              check=False, capture_output=True, text=True, timeout=120)
        if sent.returncode != 0:
            raise RuntimeError(f"the TCP stream to {receiver_ip}:{port} failed: {sent.stderr.strip()[-500:]}")
        total, seconds = receiver.stdout.readline().split()
        receiver.wait(timeout=30)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    return int(total) / float(seconds)


def measure(compute_names: list, compute_pids: list, compute_ips: list, rounds: int = ROUNDS) -> dict:
    """The figure and how it was measured (the best of `rounds` streams from compute node 1 to node 2)."""
    samples = [tcp_stream(compute_pids[0], compute_pids[1], compute_ips[1]) for _round in range(rounds)]
    best = max(samples)
    how = (f"one TCP stream {compute_names[0]} -> {compute_names[1]} over the sandbox's veth network, "
           f"best of {rounds} x {MIB_PER_ROUND} MiB, measured by sandbox up (sandbox/netbench.py)")
    return {"tcp_gbs": round(best / 1e9, 3), "samples_gbs": [round(s / 1e9, 3) for s in samples], "how": how}


def verify_vars(network: dict, mpi_min_fraction: float) -> dict:
    """The verify role's variables for the sandbox: the MPI all-reduce judged against the measured figure."""
    return {
        "verify_distributed_expected": {"mpi": {
            "busbw": network["tcp_gbs"],
            "source": f"{network['tcp_gbs']} GB/s: {network['how']}",
        }},
        "verify_distributed_mpi_min_fraction": mpi_min_fraction,
    }


def _wait_own_netns(pid: int, timeout: float = 10.0) -> None:
    """Until pid runs in a network namespace of its own (unshare has made it and exec'd)."""
    import os
    import time

    ours = os.stat("/proc/self/ns/net").st_ino
    deadline = time.monotonic() + timeout
    while os.stat(f"/proc/{pid}/ns/net").st_ino == ours:
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} did not get a network namespace of its own")
        time.sleep(0.01)


def measure_bridge(state: dict, p: dict, rounds: int = ROUNDS) -> dict:
    """The same figure before any compute node runs (sandbox.py up --no-cluster): between two network namespaces of
    its own on the VPC's bridge, each with a veth like a compute node's, near the end of the private subnet (where
    moto gives no instance an address) below the sandbox's ECR addresses, removed afterwards."""
    import ipaddress
    import nodes
    import registry

    subnet = ipaddress.ip_network(p["private_cidr"])
    # Below the addresses of the sandbox's ECR, which the bridge holds.
    below = min(registry.API_OFFSET, registry.REGISTRY_OFFSET)
    ips = [str(subnet[below - 2]), str(subnet[below - 1])]
    names = [f"{state['netns_prefix']}bench{k}" for k in (1, 2)]
    holders = []
    try:
        for k, (ip, name) in enumerate(zip(ips, names), 1):
            holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "infinity"])  # pylint: disable=consider-using-with
            holders.append(holder)
            _wait_own_netns(holder.pid)
            nodes.connect_node(state["holders"]["head"], holder.pid, {"ip": ip, "veth": f"bench{k}", "netns": name},
                               state["prefix_len"])
        samples = [tcp_stream(holders[0].pid, holders[1].pid, ips[1]) for _round in range(rounds)]
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
        for name in names:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    how = (f"one TCP stream between two namespaces on the sandbox's VPC bridge, each with a veth as a compute node "
           f"has, best of {rounds} x {MIB_PER_ROUND} MiB, measured by sandbox up --no-cluster (sandbox/netbench.py)")
    return {"tcp_gbs": round(max(samples) / 1e9, 3), "samples_gbs": [round(s / 1e9, 3) for s in samples], "how": how}
