"""A private moto server and ParallelCluster-tagged EC2 instances for the inventory plugin tests.

Also used by bench/inventory_scale.py. Everything here talks to a real moto server over HTTP.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config

DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
MOTO_SERVER = os.path.join(os.path.dirname(sys.executable), "moto_server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """moto_server on a free 127.0.0.1 port, stopped on exit; ``env``: variables added to its environment."""

    def __init__(self, env: dict | None = None):
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process = None
        self.env = dict(os.environ, **(env or {}))

    def __enter__(self):
        self.process = subprocess.Popen(
            [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"moto_server did not start on port {self.port}")
                time.sleep(0.1)

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


DENIED_PRINCIPAL = "arn:aws:iam::123456789012:user/pcluster-user"


def access_denied(target: str) -> bytes:
    """The body of AWS's AccessDeniedException for a JSON-protocol action (X-Amz-Target, e.g. DynamoDB_20120810.Scan)."""
    action = "dynamodb:" + target.rsplit(".", 1)[-1]
    return json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException", "message": (
        "User: %s is not authorized to perform: %s because no identity-based policy allows the %s action"
        % (DENIED_PRINCIPAL, action, action))}).encode()


class CountingProxy:
    """An HTTP forwarder in front of an AWS endpoint that records the API action of every request, and answers the
    JSON-protocol actions in ``deny`` (X-Amz-Target values) as AWS answers an action the caller's policies do not
    allow, as if the credentials lacked them."""

    def __init__(self, upstream: str):
        parsed = urllib.parse.urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.actions: list[str] = []
        self.deny: set[str] = set()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                params = urllib.parse.parse_qs(body.decode(errors="replace")) if body else {}
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                action = (params.get("Action") or query.get("Action") or [self.headers.get("X-Amz-Target", "?")])[0]
                proxy.actions.append(action)
                if action in proxy.deny:
                    data = access_denied(action)
                    self.send_response(400)
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                # The Host header as the client sent it: it is part of the request's signature, which a moto
                # enforcing IAM checks.
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def ec2_client(endpoint_url: str, region: str):
    return boto3.session.Session(region_name=region, **DUMMY_CREDENTIALS).client(
        "ec2", endpoint_url=endpoint_url, config=Config(retries={"max_attempts": 2, "mode": "standard"})
    )


class Network:
    """A VPC with a public subnet (public IPs on launch) and a private one, in one region."""

    def __init__(self, endpoint_url: str, region: str, second_octet: int):
        self.region = region
        self.ec2 = ec2_client(endpoint_url, region)
        vpc = self.ec2.create_vpc(CidrBlock=f"10.{second_octet}.0.0/16")["Vpc"]["VpcId"]
        az = f"{region}a"
        self.public_subnet = self.ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.{second_octet}.0.0/24", AvailabilityZone=az
        )["Subnet"]["SubnetId"]
        self.ec2.modify_subnet_attribute(SubnetId=self.public_subnet, MapPublicIpOnLaunch={"Value": True})
        self.private_subnet = self.ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.{second_octet}.16.0/20", AvailabilityZone=az
        )["Subnet"]["SubnetId"]
        self.image_id = self.ec2.describe_images()["Images"][0]["ImageId"]

    def launch(self, tags: dict, *, count: int = 1, public: bool = False, ip: str | None = None,
               image_id: str | None = None, instance_type: str = "c5.xlarge") -> list[str]:
        kwargs = {
            "ImageId": image_id or self.image_id,
            "MinCount": count,
            "MaxCount": count,
            "InstanceType": instance_type,
            "SubnetId": self.public_subnet if public else self.private_subnet,
        }
        if tags:
            kwargs["TagSpecifications"] = [
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        if ip:
            kwargs["PrivateIpAddress"] = ip
        return [i["InstanceId"] for i in self.ec2.run_instances(**kwargs)["Instances"]]

    def pcluster_image(self, name: str) -> str:
        """An AMI named like an official ParallelCluster one (made from a throwaway instance)."""
        source = self.launch({})[0]
        image = self.ec2.create_image(InstanceId=source, Name=name)["ImageId"]
        self.ec2.terminate_instances(InstanceIds=[source])
        return image


def node_tags(cluster: str, node_type: str, *, os_name: str | None = "ubuntu2204", version: str = "3.16.1",
              queue: str | None = None, compute_resource: str | None = None, pool: str | None = None,
              launched_by_stack: bool = True) -> dict:
    """The tags ParallelCluster puts on a cluster instance (cdk_builder_utils.get_default_instance_tags), and
    on a head node those CloudFormation adds (unless launched_by_stack is false: a forged head node)."""
    tags = {
        "Name": node_type,
        "parallelcluster:cluster-name": cluster,
        "parallelcluster:node-type": node_type,
        "parallelcluster:version": version,
    }
    if os_name:
        tags["parallelcluster:attributes"] = f"{os_name}, slurm, {version}, x86_64"
    if queue:
        tags["parallelcluster:queue-name"] = queue
    if compute_resource:
        tags["parallelcluster:compute-resource-name"] = compute_resource
    if pool:
        tags["parallelcluster:login-nodes-pool-name"] = pool
    if node_type == "HeadNode" and launched_by_stack:
        # CloudFormation's own tags: the head node is the HeadNode resource of the stack named after the cluster.
        tags["aws:cloudformation:stack-name"] = cluster
        tags["aws:cloudformation:logical-id"] = "HeadNode"
    return tags
