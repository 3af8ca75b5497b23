"""The sandbox's stand-in for the private subnet's NAT gateway: an HTTP proxy to the package mirrors.

The nodes' network namespaces have no route out of the cluster (only the head node is reachable
from the machine). A ParallelCluster compute node in a private subnet reaches its package
mirrors through a NAT gateway; here apt on every node is pointed (``/etc/apt/apt.conf.d``) at
this proxy instead. It listens on the head node's address inside the head node's network
namespace, where every node reaches it, and connects out from the machine's own namespace.

Only the hosts of this machine's apt sources are reachable through it (plain HTTP requests in
absolute form and HTTPS ``CONNECT``, ports 80 and 443); anything else is answered ``403`` with the
list. One log line per request: client, method, host.

    proxy.py --netns /proc/<head holder>/ns/net --listen 10.100.0.10:3128 [--allow host ...]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import select
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

CLONE_NEWNET = 0x40000000
PORTS = (80, 443)
APT_SOURCES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d")


def apt_source_hosts() -> list:
    """Host names of this machine's enabled apt sources (.list and deb822 .sources files)."""
    files = []
    for entry in APT_SOURCES:
        path = Path(entry)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".list", ".sources"))
    hosts = set()
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            line = line.split("#", 1)[0]
            for url in re.findall(r"https?://[^\s\]]+", line):
                host = urlsplit(url).hostname
                if host:
                    hosts.add(host)
    return sorted(hosts)


def _socket_in(netns: str, make):
    """make() run inside another network namespace (this thread returns to its own); its socket."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({netns})")
        try:
            return make()
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the machine's namespace")
    finally:
        os.close(own)
        os.close(target)


def listen_in(netns: str, address: str, port: int) -> socket.socket:
    """A listening socket created inside another network namespace."""
    def make():
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, port))
        server.listen(64)
        return server
    return _socket_in(netns, make)


def connect_in(netns: str, address: str, port: int, timeout: float = 2.0) -> socket.socket:
    """A connection made from inside another network namespace."""
    return _socket_in(netns, lambda: socket.create_connection((address, port), timeout=timeout))


def read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > 65536:
            break
    return data


def relay(a: socket.socket, b: socket.socket) -> None:
    sockets = [a, b]
    while True:
        readable = select.select(sockets, [], [], 300)[0]
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)


class Proxy:
    def __init__(self, allowed: list):
        self.allowed = set(allowed)

    def log(self, msg: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}", flush=True)

    def refuse(self, conn, client, status, reason):
        self.log(f"{client} refused: {reason}")
        body = (f"{reason}\nThe sandbox's NAT gateway stand-in (sandbox/proxy.py) reaches only the package "
                f"mirrors of this machine's apt sources: {', '.join(sorted(self.allowed))}\n").encode()
        conn.sendall(b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                     % (status.encode(), len(body)) + body)

    def handle(self, conn: socket.socket, client: str) -> None:
        with conn:
            head = read_head(conn)
            request = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request.split()
            if len(parts) != 3:
                return
            method, target = parts[0], parts[1]
            if method == "CONNECT":
                host, port = target.rpartition(":")[::2]
            else:
                url = urlsplit(target)
                host, port = url.hostname or "", str(url.port or 80)
                if url.scheme != "http":
                    self.refuse(conn, client, "400 Bad Request", f"{method} {target}: only absolute http:// URLs")
                    return
            if host not in self.allowed or not port.isdigit() or int(port) not in PORTS:
                self.refuse(conn, client, "403 Forbidden", f"{method} {host}:{port} is not a package mirror")
                return
            self.log(f"{client} {method} {host}:{port}")
            try:
                upstream = socket.create_connection((host, int(port)), timeout=30)
            except OSError as exc:
                self.refuse(conn, client, "502 Bad Gateway", f"{host}:{port}: {exc}")
                return
            with upstream:
                if method == "CONNECT":
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                else:
                    upstream.sendall(head)
                relay(conn, upstream)

    def serve(self, server: socket.socket) -> None:
        while True:
            conn, addr = server.accept()
            threading.Thread(target=self.handle, args=(conn, f"{addr[0]}"), daemon=True).start()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--netns", required=True, help="network namespace to listen in (a /proc/PID/ns/net path)")
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT")
    parser.add_argument("--allow", nargs="*", default=None, help="host names (default: this machine's apt sources)")
    args = parser.parse_args(argv)
    address, port = args.listen.rpartition(":")[::2]
    allowed = args.allow if args.allow is not None else apt_source_hosts()
    server = listen_in(args.netns, address, int(port))
    proxy = Proxy(allowed)
    proxy.log(f"listening on {args.listen} in {args.netns}; mirrors: {', '.join(allowed) or 'none'}")
    proxy.serve(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
