"""The sandbox's Amazon ECR: a real OCI registry behind ECR's names, TLS and authentication.

A cluster in a private subnet reaches ECR through the VPC's interface endpoints for ECR
(``com.amazonaws.<region>.ecr.api`` and ``.ecr.dkr``) whose private DNS names are ECR's own.
The sandbox plays the same:

- **Names and addresses**: ``api.ecr.<region>.amazonaws.com`` (the API) and
  ``<account>.dkr.ecr.<region>.amazonaws.com`` (the registry) resolve in every node (its
  ``/etc/hosts``) to two addresses at the end of the private subnet, held by the head node's bridge,
  where every node reaches them (``endpoints``, ``hosts_lines``).
- **TLS**: a CA made once per machine in the sandbox's cache (``ensure_ca``), which the AMI layer
  carries into every node's trust store (``trust_files``: ``/usr/local/share/ca-certificates`` and
  ``/etc/ssl/certs/ca-certificates.crt``, as ``update-ca-certificates`` lays them out); each sandbox
  signs a server certificate for its names with it.
- **The registry**: Debian's ``docker-registry`` (Distribution 2.8), run in the head node's network
  namespace with its data under ``<state>/registry``; it authenticates as ECR does: HTTP Basic,
  user ``AWS``, the password the sandbox's moto answers to ``ecr:GetAuthorizationToken`` (htpasswd).
- **The API**: ``serve-api``, a TLS front on the API address that relays ECR's API calls to moto
  (only requests for ``api.ecr.<region>.amazonaws.com``). A node's AWS CLI or ECR credential helper
  calls ECR as on AWS, with the node's credentials, and moto answers.
- **An image**: busybox, laid out with ``umoci`` once per machine (cached) as a Docker v2 schema 2
  image (what ``docker push`` sends), pushed with ``skopeo`` at ``up`` to ``hpc-pcluster/busybox:latest``; the repository and the image are recorded in moto's
  ECR too (CreateRepository, PutImage with the pushed manifest and digest), so ECR's API and the
  registry agree.

    registry.py serve-api --netns /proc/<head>/ns/net --listen IP:443 --cert C --key K \
                          --upstream 127.0.0.1:PORT --host api.ecr.<region>.amazonaws.com
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ami
import moto_cluster
import nodes
import proxy

HERE = Path(__file__).resolve().parent
NOT_AVAILABLE = "not available in the sandbox"
# Debian package of each tool the registry needs on this machine.
TOOLS = {"docker-registry": "docker-registry", "skopeo": "skopeo", "umoci": "umoci", "htpasswd": "apache2-utils",
         "openssl": "openssl"}
CA_SUBJECT = "/O=hpc.pcluster sandbox/CN=hpc.pcluster sandbox CA"
CA_FILE = "hpc-pcluster-sandbox-ca.crt"
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
REPOSITORY = "hpc-pcluster/busybox"
TAG = "latest"
USER = "AWS"
PORT = 443
# The endpoints' addresses, counted back from the private subnet's last address (the FSx stand-ins
# take the 6th and 7th from the end).
API_OFFSET, REGISTRY_OFFSET = -9, -10


# --------------------------------------------------------------------------- names and trust

def endpoints(p: dict, region: str, account: str = moto_cluster.MOTO_ACCOUNT_ID) -> dict:
    """ECR's names for this sandbox and the addresses they resolve to in the nodes."""
    import ipaddress
    subnet = ipaddress.ip_network(p["private_cidr"])
    return {"api_host": f"api.ecr.{region}.amazonaws.com", "api_ip": str(subnet[API_OFFSET]),
            "registry_host": f"{account}.dkr.ecr.{region}.amazonaws.com", "registry_ip": str(subnet[REGISTRY_OFFSET]),
            "prefix_len": p["prefix_len"], "account": account, "region": region}


def hosts_lines(ends: dict) -> list:
    """The nodes' /etc/hosts lines: ECR's private DNS names."""
    return [f"{ends['api_ip']} {ends['api_host']}", f"{ends['registry_ip']} {ends['registry_host']}"]


def missing_tools() -> str:
    """Why the registry cannot run on this machine ("" when it can)."""
    missing = [f"{tool} ({package})" for tool, package in TOOLS.items() if not shutil.which(tool)]
    return f"the registry needs {', '.join(missing)}: run `make setup`" if missing else ""


def _openssl(*args) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def ensure_ca(cache: Path) -> Path:
    """The machine's sandbox CA (made once, kept in the cache; its key is 0600). Returns the directory."""
    directory = cache / "ca"
    with ami.Cache(cache):
        if not (directory / "ca.crt").exists():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.crt.new"), "-days", "3650",
                     "-subj", CA_SUBJECT, "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign")
            os.chmod(directory / "ca.key", 0o600)
            (directory / "ca.crt.new").replace(directory / "ca.crt")
    return directory


def trust_files(ca_dir: Path) -> dict:
    """The AMI layer's files that make every node trust the sandbox's CA: {path in the layer: bytes},
    as Debian's update-ca-certificates lays out a local CA (so a node that runs it keeps the CA)."""
    ca = (ca_dir / "ca.crt").read_bytes()
    bundle = SYSTEM_BUNDLE.read_bytes() if SYSTEM_BUNDLE.exists() else b""
    return {f"usr/local/share/ca-certificates/{CA_FILE}": ca,
            f"etc/ssl/certs/{CA_FILE[:-4]}.pem": ca,
            "etc/ssl/certs/ca-certificates.crt": bundle + (b"" if bundle.endswith(b"\n") or not bundle else b"\n") + ca}


def server_certificate(ca_dir: Path, out: Path, ends: dict) -> None:
    """A key and a certificate for ECR's two names (and their addresses), signed by the CA."""
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(out / "server.key"),
             "-out", str(out / "server.csr"), "-subj", f"/CN={ends['registry_host']}")
    (out / "server.ext").write_text(
        f"subjectAltName=DNS:{ends['registry_host']},DNS:{ends['api_host']},IP:{ends['registry_ip']},IP:{ends['api_ip']}\n"
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(out / "server.csr"), "-CA", str(ca_dir / "ca.crt"), "-CAkey",
             str(ca_dir / "ca.key"), "-CAcreateserial", "-CAserial", str(out / "ca.srl"), "-days", "825",
             "-out", str(out / "server.crt"), "-extfile", str(out / "server.ext"))
    os.chmod(out / "server.key", 0o600)
    # skopeo's --dest-cert-dir (a directory with nothing else: a *.key there is taken for a client key).
    (out.parent / "ca").mkdir(exist_ok=True)
    shutil.copyfile(ca_dir / "ca.crt", out.parent / "ca" / "ca.crt")


# --------------------------------------------------------------------------- the image

def ensure_image(cache: Path, log_file: Path, log=print) -> Path:
    """The busybox image for the registry (built once per machine): a directory in skopeo's dir: format."""
    key = ami.inputs_key([ami.LAYER_FORMAT, ami.BUILD_SCRIPT.read_bytes(), ami.sha256_of(Path("/bin/busybox")), "v2s2"])
    with ami.Cache(cache):
        image = cache / "images" / f"registry-busybox-{key}"
        if not (image / "manifest.json").exists():
            image.parent.mkdir(parents=True, exist_ok=True)
            log(f"building the registry's image once for this machine: {image.name}")
            ami.run_build(["registry-image", image], log_file)
            ami.prune(image.parent, "registry-busybox-", {image.name})
    return image


# --------------------------------------------------------------------------- running it

def _head_device(head_pid: int, head_ip: str) -> str:
    out = nodes.run(nodes.nsenter(head_pid, ["ip", "-o", "-4", "addr", "show", "to", head_ip])).stdout.split()
    if len(out) < 2:
        raise RuntimeError(f"no interface of the head node holds {head_ip}")
    return out[1]


def _token(state: dict) -> str:
    """The password moto's ecr:GetAuthorizationToken gives (the part of the token after "AWS:")."""
    ecr = moto_cluster.client("ecr", state["endpoint_url"], state["region"])
    data = ecr.get_authorization_token()["authorizationData"][0]
    user, _sep, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    if user != USER or not password:
        raise RuntimeError(f"moto's GetAuthorizationToken gave a token for user {user!r}, not {USER}")
    return password


def _htpasswd(password: str, path: Path) -> None:
    proc = subprocess.run(["htpasswd", "-niB", USER], input=password, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"htpasswd failed: {proc.stderr.strip()}")
    path.write_text(proc.stdout)
    os.chmod(path, 0o600)


def _registry_config(directory: Path, ends: dict) -> Path:
    tls = directory / "tls"
    config = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {"filesystem": {"rootdirectory": str(directory / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"{ends['registry_ip']}:{PORT}", "secret": base64.b64encode(os.urandom(24)).decode(),
                 "tls": {"certificate": str(tls / "server.crt"), "key": str(tls / "server.key")},
                 "headers": {"X-Content-Type-Options": ["nosniff"]},
                 # HTTP/1.1 only, as ECR's registry answers: Enroot's Basic authentication finds the
                 # Authorization header in curl's verbose output, which curl writes in lower case over HTTP/2.
                 "http2": {"disabled": True}},
        "auth": {"htpasswd": {"realm": f"https://{ends['registry_host']}/", "path": str(directory / "htpasswd")}},
    }
    path = directory / "config.yml"
    path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
    os.chmod(path, 0o600)
    return path


def _spawn(argv: list, log_path: Path) -> int:
    with open(log_path, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True).pid


def _wait_listening(netns: str, address: str, port: int, pid: int, what: str, timeout=15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            raise RuntimeError(f"{what} exited while starting; see its log")
        try:
            proxy.connect_in(netns, address, port).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {address}:{port} within {timeout:.0f} s")


def start(state_dir: Path, state: dict, head_pid: int, ends: dict, ca_dir: Path, started) -> str:
    """The registry and the API front in the head node's network namespace; started(pid) is told each
    process as it starts (down stops them). Returns the registry's password."""
    directory = state_dir / "registry"
    (directory / "data").mkdir(mode=0o700, parents=True, exist_ok=True)
    device = _head_device(head_pid, state["head_ip"])
    nodes.run(nodes.nsenter(head_pid, ["ip", "-b", "-"]), input="".join(
        f"addr add {ends[k]}/{ends['prefix_len']} dev {device}\n" for k in ("api_ip", "registry_ip")))
    server_certificate(ca_dir, directory / "tls", ends)
    password = _token(state)
    _htpasswd(password, directory / "htpasswd")
    netns = f"/proc/{head_pid}/ns/net"
    logs = state_dir / "logs"
    registry = _spawn(["nsenter", f"--net={netns}", "docker-registry", "serve", str(_registry_config(directory, ends))],
                      logs / "registry.log")
    started(registry)
    api = _spawn([sys.executable, str(Path(__file__).resolve()), "serve-api", "--netns", netns,
                  "--listen", f"{ends['api_ip']}:{PORT}", "--host", ends["api_host"],
                  "--cert", str(directory / "tls" / "server.crt"), "--key", str(directory / "tls" / "server.key"),
                  "--upstream", state["endpoint_url"].split("//", 1)[1]], logs / "ecr-api.log")
    started(api)
    _wait_listening(netns, ends["registry_ip"], PORT, registry, "docker-registry")
    _wait_listening(netns, ends["api_ip"], PORT, api, "the ECR API front")
    return password


def push(state_dir: Path, head_pid: int, ends: dict, password: str, source: str, name: str) -> str:
    """Push a skopeo source (e.g. dir:PATH, oci:PATH:TAG) as <registry>/name ("repository:tag") with skopeo, from the
    head node's network namespace, as a Docker v2 schema 2 image. Returns the pushed manifest's digest."""
    directory = state_dir / "registry"
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        auth = Path(tmp) / "auth.json"
        auth.write_text(json.dumps({"auths": {ends["registry_ip"]: {
            "auth": base64.b64encode(f"{USER}:{password}".encode()).decode()}}}))
        os.chmod(auth, 0o600)
        digest_file = Path(tmp) / "digest"
        keep = ["--preserve-digests"] if source.startswith("dir:") else ["--format", "v2s2"]
        nodes.run(["nsenter", f"--net=/proc/{head_pid}/ns/net", "skopeo", "copy", "--quiet", *keep,
                   "--dest-authfile", str(auth), "--dest-cert-dir", str(directory / "ca"), "--digestfile",
                   str(digest_file), source, f"docker://{ends['registry_ip']}/{name}"])
        return digest_file.read_text().strip()


def push_image(state_dir: Path, state: dict, head_pid: int, ends: dict, image: Path, password: str) -> dict:
    """Push the sandbox's image and record it in moto's ECR (CreateRepository, PutImage with its manifest)."""
    digest = push(state_dir, head_pid, ends, password, f"dir:{image}", f"{REPOSITORY}:{TAG}")
    manifest = (image / "manifest.json").read_text()
    if digest != "sha256:" + hashlib.sha256(manifest.encode()).hexdigest():
        raise RuntimeError(f"the registry stored {digest} for {image}, not its manifest")
    ecr = moto_cluster.client("ecr", state["endpoint_url"], state["region"])
    ecr.create_repository(repositoryName=REPOSITORY)
    ecr.put_image(repositoryName=REPOSITORY, imageManifest=manifest, imageTag=TAG, imageDigest=digest,
                  imageManifestMediaType=json.loads(manifest)["mediaType"])
    return {"image": f"{ends['registry_host']}/{REPOSITORY}:{TAG}", "digest": digest}


def password_of(state: dict) -> str:
    """The registry's password for user AWS, as a node gets it (moto's GetAuthorizationToken)."""
    return _token(state)


# --------------------------------------------------------------------------- the API front

class ApiFront:
    """TLS on the ECR API address; each connection whose first request is for the API's name is
    relayed to moto, anything else is refused. One log line per connection."""

    def __init__(self, context: ssl.SSLContext, host: str, upstream: tuple):
        self.context, self.host, self.upstream = context, host, upstream

    @staticmethod
    def log(msg: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}", flush=True)

    def handle(self, conn: socket.socket, client: str) -> None:
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.log(f"{client} TLS handshake failed: {exc}")
            conn.close()
            return
        with tls:
            head = proxy.read_head(tls)
            host = _header(head, b"host").split(":", 1)[0]
            if host != self.host:
                body = f"this endpoint serves {self.host} only, not {host or 'a request without Host'}\n".encode()
                tls.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                            b"Connection: close\r\n\r\n%s" % (len(body), body))
                self.log(f"{client} refused: Host {host!r}")
                return
            self.log(f"{client} {_header(head, b'x-amz-target') or head.split(b' ', 1)[0].decode('latin-1')}")
            with socket.create_connection(self.upstream, timeout=60) as upstream:
                upstream.sendall(head)
                proxy.relay(tls, upstream)

    def serve(self, server: socket.socket) -> None:
        while True:
            conn, addr = server.accept()
            threading.Thread(target=self.handle, args=(conn, addr[0]), daemon=True).start()


def _header(head: bytes, name: bytes) -> str:
    for line in head.split(b"\r\n")[1:]:
        key, _sep, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="registry.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    api = sub.add_parser("serve-api", help="the TLS front of ECR's API, relaying to moto")
    api.add_argument("--netns", required=True)
    api.add_argument("--listen", required=True, help="ADDRESS:PORT")
    api.add_argument("--host", required=True, help="the API's name, e.g. api.ecr.us-east-1.amazonaws.com")
    api.add_argument("--cert", required=True)
    api.add_argument("--key", required=True)
    api.add_argument("--upstream", required=True, help="moto's HOST:PORT")
    args = parser.parse_args(argv)
    address, port = args.listen.rpartition(":")[::2]
    host, upstream_port = args.upstream.rpartition(":")[::2]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = proxy.listen_in(args.netns, address, int(port))
    ApiFront.log(f"listening on {args.listen} in {args.netns} for {args.host}; relaying to {args.upstream}")
    ApiFront(context, args.host, (host, int(upstream_port))).serve(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
