"""A real registry for the unit tests of the registry client and of the staging module: Debian's docker-registry
(Distribution 2.8) on 127.0.0.1 with TLS and ECR's kind of authentication (Basic, user AWS), images pushed with
skopeo."""

import hashlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
PASSWORD = "123456789012-auth-token"


@dataclass
class LocalRegistry:
    host: str
    ca: str
    work: pathlib.Path
    password: str = PASSWORD

    def push(self, name, build=0):
        """Build a busybox image (each build its own digest) and push it as name ("team/train:v1"): its digest."""
        image = self.work / ("image-%s-%d" % (name.replace("/", "_").replace(":", "_"), build))
        subprocess.run(["/bin/sh", str(ROOT / "sandbox" / "ami_build.sh"), "registry-image", str(image)],
                       check=True, capture_output=True)
        subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-cert-dir", str(self.work / "certs"),
                        "--dest-creds", "AWS:" + self.password, "dir:%s" % image, "docker://%s/%s" % (self.host, name)],
                       check=True, capture_output=True)
        return "sha256:" + hashlib.sha256((image / "manifest.json").read_bytes()).hexdigest()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(name="local_registry", scope="session")
def fixture_local_registry(tmp_path_factory):
    """docker-registry on 127.0.0.1 with TLS and htpasswd (user AWS); skipped where make setup's tools are missing."""
    missing = [t for t in ("docker-registry", "skopeo", "umoci", "htpasswd", "openssl") if not shutil.which(t)]
    if missing or not os.path.exists("/bin/busybox"):
        pytest.skip("needs %s (make setup)" % ", ".join(missing or ["busybox-static"]))
    work = tmp_path_factory.mktemp("registry")
    host = "127.0.0.1:%d" % _free_port()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"), "-days", "2", "-subj", "/CN=test",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    htpasswd = subprocess.run(["htpasswd", "-niB", "AWS"], input=PASSWORD, capture_output=True, text=True, check=True)
    (work / "htpasswd").write_text(htpasswd.stdout)
    (work / "config.yml").write_text(json.dumps({
        "version": 0.1, "log": {"level": "error"}, "storage": {"filesystem": {"rootdirectory": str(work / "data")}},
        "http": {"addr": host, "tls": {"certificate": str(work / "cert.pem"), "key": str(work / "key.pem")},
                 "http2": {"disabled": True}},
        "auth": {"htpasswd": {"realm": "test", "path": str(work / "htpasswd")}}}))
    (work / "certs").mkdir()
    shutil.copy(work / "cert.pem", work / "certs" / "ca.crt")
    proc = subprocess.Popen(["docker-registry", "serve", str(work / "config.yml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _attempt in range(200):
            try:
                socket.create_connection(("127.0.0.1", int(host.rsplit(":", 1)[1])), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield LocalRegistry(host, str(work / "cert.pem"), work)
    finally:
        proc.kill()
        proc.wait()
