"""The sandbox's AWS endpoint inside its VPC: a TCP forwarder from the nodes' network to moto.

moto listens on this machine's 127.0.0.1, which the nodes' network namespaces cannot reach. ParallelCluster's
node daemons and a node's bootstrap call AWS from inside the nodes, so this forwarder listens on the head node's
address inside the head node's network namespace (where every node of the VPC reaches it, like proxy.py) and
passes each connection, unchanged, to moto. The nodes' AWS configuration names it as their endpoint
(``endpoint_url`` in ``/root/.aws/config``, hypervisor.py).

    forwarder.py --netns /proc/<head holder>/ns/net --listen 10.100.0.10:5000 --to 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time

import proxy


def serve(server: socket.socket, target: tuple) -> None:
    while True:
        conn, _addr = server.accept()
        threading.Thread(target=forward, args=(conn, target), daemon=True).start()


def forward(conn: socket.socket, target: tuple) -> None:
    with conn:
        try:
            upstream = socket.create_connection(target, timeout=30)
        except OSError as exc:
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {target[0]}:{target[1]}: {exc}", flush=True)
            return
        with upstream:
            upstream.settimeout(None)
            proxy.relay(conn, upstream)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--netns", required=True, help="network namespace to listen in (a /proc/PID/ns/net path)")
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT")
    parser.add_argument("--to", required=True, help="ADDRESS:PORT of moto on this machine")
    args = parser.parse_args(argv)
    address, port = args.listen.rpartition(":")[::2]
    to_address, to_port = args.to.rpartition(":")[::2]
    server = proxy.listen_in(args.netns, address, int(port))
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} forwarding {args.listen} in {args.netns} to {args.to}", flush=True)
    serve(server, (to_address, int(to_port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
