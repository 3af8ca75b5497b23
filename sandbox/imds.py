"""The sandbox's instance metadata service: EC2's IMDS (v2) at 169.254.169.254 inside every node.

On EC2 an instance reads who it is and the temporary credentials of its instance role from
``http://169.254.169.254`` (boto3 and the AWS CLI do so when no other credentials are set). Here one
daemon per sandbox (``serve``: started by ``sandbox.py up``, stopped by ``down``) answers at that address
inside each node's network namespace, for every instance the hypervisor tells it about:

* **Interface.** The code that boots an instance as a node writes ``<state>/imds/<instance id>.json``
  (mode 0600) with ``{"instance_id", "netns" (the path of the node's network namespace, e.g.
  /proc/<pid>/ns/net), "private_ip", "hostname", "region", "availability_zone", "instance_type", "ami_id",
  "instance_profile_arn"}`` before anything in the node calls AWS, and removes it when the instance is
  terminated. ``register(state_dir, record)`` does that and waits until the daemon answers for it
  (``<instance id>.serving`` appears); ``deregister(state_dir, instance_id)`` removes it.
* **Addresses.** The daemon adds 169.254.169.254/32 to the node's loopback device and listens on port 80
  there with a socket made inside the node's network namespace (the node reaches nothing else of the
  machine through it).
* **IMDSv2.** ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` (1-21600) gives a
  token; every other request needs it in ``X-aws-ec2-metadata-token`` (401 without), as with
  ``Imds: ImdsSupport: v2.0``, the collection's default. Served: ``/latest/meta-data/`` ``ami-id``,
  ``hostname``, ``local-hostname``, ``instance-id``, ``instance-type``, ``local-ipv4``,
  ``placement/availability-zone``, ``placement/region``, ``services/domain``, ``services/partition``,
  ``iam/info``, ``iam/security-credentials/`` and ``iam/security-credentials/<role>``, and
  ``/latest/dynamic/instance-identity/document``.
* **Credentials**, as EC2 gets them for an instance: the daemon signs as the IAM user that plays the EC2
  service (iam_identities.py), reads the instance profile (``iam:GetInstanceProfile``) and assumes its role
  with ``sts:AssumeRole`` (session name: the instance id, so calls show as
  ``assumed-role/<role>/<instance id>``); it assumes it again ``--refresh-before`` seconds before the
  credentials expire (``--duration``), as EC2 makes new ones available before the old expire (moto itself
  does not expire them).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import http.server
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ADDRESS = "169.254.169.254"
PORT = 80
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
MAX_TOKEN_TTL = 21600
RECORD_KEYS = ("instance_id", "netns", "private_ip", "hostname", "region", "availability_zone", "instance_type",
               "ami_id", "instance_profile_arn")
# The records' directory is looked at every POLL_SECONDS and read again when it changed (a record is written to a
# temporary file and renamed, which changes the directory), and every FULL_SCAN_SECONDS whatever it says (a change in
# the same clock tick as the look before leaves the directory's time as it was).
POLL_SECONDS = 0.1
FULL_SCAN_SECONDS = 1.0
DEFAULT_ACCOUNT_ID = "123456789012"


class MetadataServer(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


def imds_dir(state_dir) -> Path:
    return Path(state_dir) / "imds"


def register(state_dir, record: dict, timeout: float = 30.0) -> None:
    """Tell the daemon about an instance (see the module's doc) and wait until it answers in the node."""
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise ValueError(f"instance metadata record lacks {', '.join(missing)}")
    directory = imds_dir(state_dir)
    directory.mkdir(mode=0o700, exist_ok=True)
    instance_id = record["instance_id"]
    serving = directory / f"{instance_id}.serving"
    serving.unlink(missing_ok=True)
    tmp = directory / f".{instance_id}.json"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    tmp.replace(directory / f"{instance_id}.json")
    deadline = time.monotonic() + timeout
    while not serving.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the instance metadata service did not answer for {instance_id} within {timeout:.0f} s"
                               f" (see {Path(state_dir) / 'logs' / 'imds.log'})")
        time.sleep(0.02)


def record(instance: dict, netns: str, hostname: str, region: str) -> dict:
    """The record of an instance (an EC2 DescribeInstances entry) whose node's network namespace is netns."""
    return {"instance_id": instance["InstanceId"], "netns": netns, "private_ip": instance["PrivateIpAddress"],
            "hostname": hostname, "region": region, "availability_zone": instance["Placement"]["AvailabilityZone"],
            "instance_type": instance["InstanceType"], "ami_id": instance["ImageId"],
            "instance_profile_arn": (instance.get("IamInstanceProfile") or {}).get("Arn", "")}


def deregister(state_dir, instance_id: str) -> None:
    """The instance is terminated: the daemon stops answering for it."""
    (imds_dir(state_dir) / f"{instance_id}.json").unlink(missing_ok=True)


def _in_netns(netns: str, make):
    """make() run with this thread in the network namespace netns: a socket made there stays there."""
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    try:
        os.setns(target, os.CLONE_NEWNET)
        try:
            return make()
        finally:
            os.setns(own, os.CLONE_NEWNET)
    finally:
        os.close(own)
        os.close(target)


def ask(netns: str, method: str, path: str, headers: dict | None = None, timeout: float = 20.0) -> tuple[int, str]:
    """(status, body) of one request to the instance metadata service as seen from inside the node netns."""
    sock = _in_netns(netns, lambda: socket.create_connection((ADDRESS, PORT), timeout=timeout))
    conn = http.client.HTTPConnection(ADDRESS, PORT, timeout=timeout)
    conn.sock = sock
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def node_identity(netns: str) -> dict:
    """What a node learns from its instance metadata service, as boto3 does (IMDSv2): {instance_id, region,
    role, credentials: {aws_access_key_id, aws_secret_access_key, aws_session_token}} (role and credentials None
    for an instance without an instance profile). Raises RuntimeError when the service does not answer."""
    status, token = ask(netns, "PUT", "/latest/api/token", {TTL_HEADER: "60"})
    if status != 200:
        raise RuntimeError(f"the instance metadata service refused a token ({status})")
    get = {TOKEN_HEADER: token}

    def value(path):
        code, body = ask(netns, "GET", "/latest/meta-data/" + path, get)
        return body if code == 200 else None

    identity = {"instance_id": value("instance-id"), "region": value("placement/region"), "role": None,
                "credentials": None}
    role = value("iam/security-credentials/")
    if role:
        document = json.loads(value("iam/security-credentials/" + role) or "{}")
        identity["role"] = role
        identity["credentials"] = {"aws_access_key_id": document["AccessKeyId"],
                                   "aws_secret_access_key": document["SecretAccessKey"],
                                   "aws_session_token": document["Token"]}
    return identity


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


class Credentials:
    """The temporary credentials of an instance's role, assumed as EC2 does and assumed again before they expire."""

    def __init__(self, service: "Ec2Service", record: dict):
        self.service, self.record = service, record
        self.role_name = self.current = None
        self.lock = threading.Lock()
        self.last_updated = None
        self.error = None

    def get(self) -> dict | None:
        with self.lock:
            if self.current is None or self._expiring():
                self._assume()
            return self.current

    def _expiring(self) -> bool:
        return self.current["Expiration"] - datetime.datetime.now(datetime.timezone.utc) < datetime.timedelta(
            seconds=self.service.refresh_before)

    def refresh_if_due(self) -> None:
        with self.lock:
            if self.current is not None and self._expiring():
                self._assume()

    def _assume(self) -> None:
        arn = self.record.get("instance_profile_arn")
        if not arn:
            return
        try:
            role = self.service.role_of(arn)
            self.role_name = role["RoleName"]
            answer = self.service.sts().assume_role(RoleArn=role["Arn"], RoleSessionName=self.record["instance_id"],
                                                    DurationSeconds=self.service.duration)["Credentials"]
        except Exception as exc:  # pylint: disable=broad-except  # said in the log and in iam/info, as EC2 does
            self.error = str(exc)
            log(f"{self.record['instance_id']}: cannot assume the role of {arn}: {exc}")
            return
        self.error = None
        self.current = answer
        self.last_updated = datetime.datetime.now(datetime.timezone.utc)
        log(f"{self.record['instance_id']}: credentials of role {self.role_name} until "
            f"{answer['Expiration'].strftime('%H:%M:%S')}")


def _iso(moment) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Ec2Service:
    """What the daemon does as EC2's control plane: read instance profiles, assume their roles."""

    def __init__(self, endpoint_url: str, region: str, keys: dict, duration: int, refresh_before: int):
        self.endpoint_url, self.region, self.keys = endpoint_url, region, keys
        self.duration, self.refresh_before = duration, refresh_before
        self._clients = {}
        self._lock = threading.Lock()

    def _client(self, name):
        with self._lock:
            if name not in self._clients:
                import boto3  # pylint: disable=import-outside-toplevel

                self._clients[name] = boto3.session.Session(region_name=self.region, **self.keys).client(
                    name, endpoint_url=self.endpoint_url)
            return self._clients[name]

    def sts(self):
        return self._client("sts")

    def role_of(self, instance_profile_arn: str) -> dict:
        name = instance_profile_arn.rsplit("/", 1)[-1]
        roles = self._client("iam").get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]
        if not roles:
            raise RuntimeError(f"instance profile {name} holds no role")
        return roles[0]


class Instance:
    """One instance's metadata and its listener inside the node."""

    def __init__(self, record: dict, credentials: Credentials):
        self.record, self.credentials = record, credentials
        self.tokens = {}
        self.server = None

    def document(self) -> dict:
        r = self.record
        account = (r.get("instance_profile_arn") or "").split(":")[4:5] or [DEFAULT_ACCOUNT_ID]
        return {"accountId": account[0] or DEFAULT_ACCOUNT_ID, "architecture": "x86_64",
                "availabilityZone": r["availability_zone"],
                "billingProducts": None, "devpayProductCodes": None, "marketplaceProductCodes": None,
                "imageId": r["ami_id"], "instanceId": r["instance_id"], "instanceType": r["instance_type"],
                "kernelId": None, "pendingTime": r.get("launch_time") or _iso(datetime.datetime.now()),
                "privateIp": r["private_ip"], "ramdiskId": None, "region": r["region"], "version": "2017-09-30"}

    def meta_data(self) -> dict:
        r = self.record
        return {"ami-id": r["ami_id"], "hostname": r["hostname"], "local-hostname": r["hostname"],
                "instance-id": r["instance_id"], "instance-type": r["instance_type"], "local-ipv4": r["private_ip"],
                "placement/availability-zone": r["availability_zone"], "placement/region": r["region"],
                "services/domain": "amazonaws.com", "services/partition": "aws"}

    def answer(self, path: str) -> tuple[int, str]:
        """(status, body) for a GET of path."""
        path = path.split("?", 1)[0]
        if path in ("/latest/dynamic/instance-identity/document", "/latest/dynamic/instance-identity/document/"):
            return 200, json.dumps(self.document(), indent=2)
        if not path.startswith("/latest/meta-data/"):
            return (200, "dynamic\nmeta-data") if path in ("/latest", "/latest/") else (404, "")
        key = path[len("/latest/meta-data/"):]
        iam = self._iam(key)
        if iam is not None:
            return iam
        values = self.meta_data()
        if key in values:
            return 200, values[key]
        children = sorted({k[len(key):].split("/")[0] + ("/" if "/" in k[len(key):] else "")
                           for k in list(values) + ["iam/"] if k.startswith(key) and k != key})
        return (200, "\n".join(children)) if children and (not key or key.endswith("/")) else (404, "")

    def _iam(self, key: str):
        if not key.startswith("iam/") or not self.record.get("instance_profile_arn"):
            return None
        current = self.credentials.get()
        role = self.credentials.role_name
        if key == "iam/":
            return 200, "info\nsecurity-credentials/"
        if key == "iam/info":
            if current is None:
                return 404, ""
            return 200, json.dumps({"Code": "Success", "LastUpdated": _iso(self.credentials.last_updated),
                                    "InstanceProfileArn": self.record["instance_profile_arn"],
                                    "InstanceProfileId": "AIPA" + self.record["instance_id"][2:].upper()}, indent=2)
        if key == "iam/security-credentials/":
            return (200, role) if current is not None else (404, "")
        if key == f"iam/security-credentials/{role}" and current is not None:
            return 200, json.dumps({"Code": "Success", "LastUpdated": _iso(self.credentials.last_updated),
                                    "Type": "AWS-HMAC", "AccessKeyId": current["AccessKeyId"],
                                    "SecretAccessKey": current["SecretAccessKey"], "Token": current["SessionToken"],
                                    "Expiration": _iso(current["Expiration"])}, indent=2)
        return 404, ""

    def new_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(42)
        now = time.monotonic()
        self.tokens = {t: until for t, until in self.tokens.items() if until > now}
        self.tokens[token] = now + ttl
        return token

    def token_valid(self, token: str | None) -> bool:
        return bool(token) and self.tokens.get(token, 0) > time.monotonic()


def handler_for(instance: Instance):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "EC2ws"
        sys_version = ""

        def _send(self, status: int, body: str = "", headers: dict | None = None):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):  # noqa: N802  (http.server's naming)
            if self.path.rstrip("/") != "/latest/api/token":
                return self._send(404)
            try:
                ttl = int(self.headers.get(TTL_HEADER, ""))
            except ValueError:
                return self._send(400, "missing or invalid " + TTL_HEADER)
            if not 1 <= ttl <= MAX_TOKEN_TTL:
                return self._send(400, f"{TTL_HEADER} must be between 1 and {MAX_TOKEN_TTL}")
            return self._send(200, instance.new_token(ttl), {TTL_HEADER: str(ttl)})

        def do_GET(self):  # noqa: N802
            if not instance.token_valid(self.headers.get(TOKEN_HEADER)):
                return self._send(401)
            status, body = instance.answer(self.path)
            return self._send(status, body)

        def log_message(self, format, *args):  # pylint: disable=redefined-builtin
            pass

    return Handler


def listen_in(netns: str, instance: Instance) -> MetadataServer:
    """A server for instance on ADDRESS:PORT inside the network namespace netns (a socket made there)."""
    subprocess.run(["nsenter", f"--net={netns}", "ip", "addr", "replace", f"{ADDRESS}/32", "dev", "lo"],
                   check=True, capture_output=True)
    server = _in_netns(netns, lambda: MetadataServer((ADDRESS, PORT), handler_for(instance)))
    threading.Thread(target=server.serve_forever, name=f"imds-{instance.record['instance_id']}", daemon=True).start()
    return server


class Daemon:
    """Serves every instance recorded in <state>/imds/ (see the module's doc)."""

    def __init__(self, state_dir: Path, service: Ec2Service):
        self.dir = imds_dir(state_dir)
        self.service = service
        self.instances: dict[str, Instance] = {}
        self.seen: dict[str, float] = {}

    def scan(self) -> None:
        present = {}
        for path in self.dir.glob("*.json"):
            try:
                present[path.stem] = path.stat().st_mtime
            except FileNotFoundError:
                continue
        for instance_id in [i for i in self.instances if i not in present or present[i] != self.seen.get(i)]:
            self.stop(instance_id)
        for instance_id, mtime in present.items():
            if instance_id not in self.instances:
                self.start(instance_id, mtime)

    def start(self, instance_id: str, mtime: float) -> None:
        self.seen[instance_id] = mtime
        try:
            record = json.loads((self.dir / f"{instance_id}.json").read_text())
            instance = Instance(record, Credentials(self.service, record))
            instance.credentials.get()  # ready before the node asks, as EC2's are at boot
            instance.server = listen_in(record["netns"], instance)
        except Exception as exc:  # pylint: disable=broad-except  # one bad record must not stop the others
            log(f"{instance_id}: not served: {exc}")
            return
        self.instances[instance_id] = instance
        (self.dir / f"{instance_id}.serving").write_text(str(mtime))
        log(f"{instance_id}: serving at {ADDRESS} in {record['netns']} ({record.get('hostname')}, "
            f"profile {record.get('instance_profile_arn') or 'none'})")

    def stop(self, instance_id: str) -> None:
        instance = self.instances.pop(instance_id)
        self.seen.pop(instance_id, None)
        instance.server.shutdown()
        instance.server.server_close()
        (self.dir / f"{instance_id}.serving").unlink(missing_ok=True)
        log(f"{instance_id}: no longer served")

    def refresh(self) -> None:
        for instance in list(self.instances.values()):
            instance.credentials.refresh_if_due()

    def run(self) -> int:
        self.dir.mkdir(mode=0o700, exist_ok=True)
        for stale in self.dir.glob("*.serving"):
            stale.unlink()
        log(f"serving instance metadata for the records in {self.dir}")
        threading.Thread(target=self._refresh_loop, daemon=True).start()
        looked, scanned = None, 0.0
        while True:
            try:
                changed = self.dir.stat().st_mtime_ns
            except FileNotFoundError:
                changed = None
            if changed != looked or time.monotonic() - scanned >= FULL_SCAN_SECONDS:
                looked, scanned = changed, time.monotonic()
                self.scan()
            time.sleep(POLL_SECONDS)

    def _refresh_loop(self) -> None:
        while True:
            time.sleep(1.0)
            try:
                self.refresh()
            except Exception as exc:  # pylint: disable=broad-except  # keep refreshing the others
                log(f"refresh failed: {exc}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="answer at 169.254.169.254 in every node recorded in <state>/imds/")
    serve.add_argument("--state-dir", required=True)
    serve.add_argument("--duration", type=int, default=3600, help="seconds the role credentials last (AssumeRole)")
    serve.add_argument("--refresh-before", type=int, default=900,
                       help="assume the role again this many seconds before the credentials expire")
    args = parser.parse_args(argv)
    state = json.loads((Path(args.state_dir) / "state.json").read_text())
    keys = state["iam"]["ec2_service"]
    service = Ec2Service(state["endpoint_url"], state["region"],
                         {"aws_access_key_id": keys["aws_access_key_id"],
                          "aws_secret_access_key": keys["aws_secret_access_key"]}, args.duration, args.refresh_before)
    return Daemon(Path(args.state_dir), service).run()


if __name__ == "__main__":
    sys.exit(main())
