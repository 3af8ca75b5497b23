"""Helpers of the moto_cfn tests: ParallelCluster's captured templates (fixtures/, written by
sandbox/capture_templates.py) created, updated and watched in a moto server of the tests' own."""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass

import moto_cluster  # sandbox/moto_cluster.py (pytest.ini: pythonpath)

REGION = "us-east-1"
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
TERMINAL = ("CREATE_COMPLETE", "CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "DELETE_COMPLETE", "DELETE_FAILED")


@dataclass
class Moto:
    endpoint_url: str
    seed: dict
    work_dir: pathlib.Path

    def client(self, service):
        return moto_cluster.client(service, self.endpoint_url, REGION)


def fixture(variant: str, operation: str = "create") -> dict:
    """A captured CreateStack / UpdateStack: template, nested templates by S3 key, parameters, tags."""
    return json.loads((FIXTURES / variant / f"{operation}.json").read_text())


def upload_artifacts(moto: Moto, captured: dict) -> None:
    """What pcluster uploads before it calls CloudFormation: the nested templates, the custom resources' code."""
    s3 = moto.client("s3")
    bucket = moto.seed["pcluster_bucket"]
    for key, template in captured["nested"].items():
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(template).encode())
    for resource in captured["template"]["Resources"].values():
        code = (resource.get("Properties") or {}).get("Code") or {}
        if resource["Type"] == "AWS::Lambda::Function" and code.get("S3Key"):
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w") as handle:
                handle.writestr("cleanup_resources.py", "def handler(event, context):\n    pass\n")
            s3.put_object(Bucket=code["S3Bucket"], Key=code["S3Key"], Body=archive.getvalue())


def create_stack(moto: Moto, captured: dict, **kwargs) -> str:
    upload_artifacts(moto, captured)
    name = next(t["Value"] for t in captured["tags"] if t["Key"] == "parallelcluster:cluster-name")
    moto.client("cloudformation").create_stack(
        StackName=name, TemplateBody=json.dumps(captured["template"]), Parameters=captured["parameters"],
        Tags=captured["tags"], Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"], **kwargs)
    return name


def update_stack(moto: Moto, name: str, captured: dict) -> None:
    upload_artifacts(moto, captured)
    moto.client("cloudformation").update_stack(
        StackName=name, TemplateBody=json.dumps(captured["template"]), Parameters=captured["parameters"],
        Tags=captured["tags"], Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])


def stack(moto: Moto, name: str) -> dict:
    return moto.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]


def wait_for(moto: Moto, name: str, timeout: float = 60.0) -> dict:
    """The stack once it is in no *_IN_PROGRESS status (by name, then by id once deleted)."""
    stack_id = stack(moto, name)["StackId"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = stack(moto, stack_id)
        if current["StackStatus"] in TERMINAL:
            return current
        time.sleep(0.1)
    raise AssertionError(f"{name} still {current['StackStatus']} after {timeout:.0f} s")


def resources(moto: Moto, name: str) -> dict:
    """logical id -> (type, status, physical id)"""
    listed = moto.client("cloudformation").list_stack_resources(StackName=name)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: (r["ResourceType"], r["ResourceStatus"], r.get("PhysicalResourceId"))
            for r in listed}


def events(moto: Moto, name: str) -> list:
    """(logical id, status, reason) oldest first."""
    listed = moto.client("cloudformation").describe_stack_events(StackName=name)["StackEvents"]
    return [(e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason")) for e in reversed(listed)]


def signal(moto: Moto, name: str, success: bool = True, reason: str = "") -> str:
    """The head node's signal, sent to the handle its launch template's metadata names; returns the URL."""
    url = moto_cluster.pending_wait_condition_url(moto.endpoint_url, REGION, name)
    moto_cluster.signal_wait_condition(url, success, reason, unique_id="i-0123456789abcdef0")
    return url


# Runs one pcluster.lib function in a process of its own (pcluster keeps its AWS clients per process), with
# the keyword arguments read as JSON from stdin; prints {"returned": ...} or the exception's class and content.
PCLUSTER_CALL = """
import json, sys
import pcluster.lib as pc
request = json.loads(sys.stdin.read())
try:
    out = {"returned": getattr(pc, request["function"])(**request["kwargs"])}
except Exception as exc:
    content = getattr(exc, "content", None)
    out = {"exception": type(exc).__name__,
           "content": content.to_dict() if hasattr(content, "to_dict") else str(exc)}
print("PCLUSTER-RESULT " + json.dumps(out, default=str))
"""


def pcluster(moto: Moto, function: str, **kwargs) -> dict:
    """pcluster.lib.<function>(region=us-east-1, **kwargs) against the tests' moto server."""
    env = dict(os.environ, AWS_ENDPOINT_URL=moto.endpoint_url, AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION,
               **{key.upper(): value for key, value in moto_cluster.DUMMY_CREDENTIALS.items()})
    proc = subprocess.run([sys.executable, "-c", PCLUSTER_CALL], input=json.dumps(
        {"function": function, "kwargs": dict(kwargs, region=REGION)}), capture_output=True, text=True, env=env,
        timeout=300, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PCLUSTER-RESULT ")]
    assert lines, f"pcluster.lib.{function} printed no result (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1].split(" ", 1)[1])


def initialize_fleet_status(moto: Moto, cluster: str) -> None:
    """What the head node's config recipe does before it signals (aws-parallelcluster-computefleet
    fleet_status.rb): the compute fleet's item in the cluster's table, RUNNING."""
    data = {"status": {"S": "RUNNING"}, "lastStatusUpdatedTime": {"S": "2026-12-04 12:00:00+00:00"}}
    moto.client("dynamodb").put_item(TableName=f"parallelcluster-{cluster}",
                                     Item={"Id": {"S": "COMPUTE_FLEET"}, "Data": {"M": data}})
