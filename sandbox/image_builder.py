"""The sandbox's EC2 Image Builder: it builds the images `pcluster build-image` asks for.

The sandbox's CloudFormation hands each ``AWS::ImageBuilder::Image`` of ParallelCluster's image template to this
builder through a directory (moto_cfn/imagebuilder.py: ``<build>.request.json``, ``.claimed``, ``.result.json``).
For each build it does what Image Builder does with ParallelCluster's recipe:

1. runs the recipe's components in order on a build host (``host_factory``: in the sandbox, a node over the AMI
   layer; see ``ScriptHost`` for the interface), writing what they print to the build's CloudWatch log stream
   (``/aws/imagebuilder/<recipe name>``, ``<version>/1``) as Image Builder's log does (``Stdout:`` lines). A script
   component (``Build.Components`` of type script) runs as ParallelCluster's wrapper runs it: the script fetched
   from its URL, made executable and run as root; its exit status decides. ParallelCluster's own components -
   installing ParallelCluster on the parent image, updating the OS, testing the image - are not run: the sandbox's
   AMI layer stands for ParallelCluster's AMI already, and the log says each was skipped;
2. when every component succeeded: keeps what the build host changed as the image's layer (``host.capture()``),
   registers the AMI in moto as Image Builder distributes it (moto_image.register_ami), answers AVAILABLE with the
   AMI, and once the stack is complete does what ParallelCluster's cleanup function does (moto_image.mark_available:
   the AMI tagged available, the stack deleted);
3. when a component failed: answers FAILED with Image Builder's reason ("... failure message = 'Document <component
   ARN> failed!'"), which fails the stack's image resource, and the stack, as on AWS.

``images`` (the callback ``on_image``) learns each AMI and its layer, for the hypervisor to boot instances of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import moto_image

POLL = 0.5
STACK_COMPLETE_SECONDS = 60


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} image-builder {msg}", flush=True)


class BuildLog:
    """The build's log stream in moto's CloudWatch Logs, as Image Builder writes it."""

    def __init__(self, endpoint_url: str, region: str, group: str, stream: str):
        self.logs = moto_image.client("logs", endpoint_url, region)
        self.group, self.stream = group, stream
        try:
            self.logs.create_log_group(logGroupName=group)
        except self.logs.exceptions.ResourceAlreadyExistsException:
            pass
        try:
            self.logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except self.logs.exceptions.ResourceAlreadyExistsException:
            pass

    def write(self, *lines: str) -> None:
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in lines if line is not None]
        if events:
            self.logs.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=events)


def fetch(endpoint_url: str, region: str, url: str) -> bytes:
    """A component script from its s3:// URL (the sandbox's moto) or https:// URL."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "s3":
        body = moto_image.client("s3", endpoint_url, region).get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
        return body["Body"].read()
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - https only, from the image config
        return response.read()


class ScriptHost:
    """A build host that runs the components' scripts in a directory of this machine, as the user running it.

    What every build host offers: ``run(script, name)`` -> (exit status, output lines), ``capture()`` -> the layer
    of what the build changed (None here: nothing of the machine is an image), ``close()``. The sandbox's own
    host runs the scripts as root in a node over the AMI layer and captures that node's changes.
    """

    def __init__(self, request: dict):
        self.request = request
        self.work = Path(tempfile.mkdtemp(prefix="hpc-pcluster-image-build-"))

    def run(self, script: bytes, name: str, timeout: float = 7200.0):
        path = self.work / name
        path.write_bytes(script)
        path.chmod(0o700)
        proc = subprocess.run(["/bin/bash", str(path)], cwd=self.work, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, check=False, env=dict(os.environ, HOME=str(self.work)))
        return proc.returncode, proc.stdout.splitlines() + ["Stderr: " + line for line in proc.stderr.splitlines()]

    def capture(self):
        return None

    def close(self):
        shutil.rmtree(self.work, ignore_errors=True)


class ImageBuilder:
    """Takes the build requests in ``builds_dir`` and builds them on hosts from ``host_factory(request)``."""

    def __init__(self, endpoint_url: str, region: str, builds_dir: Path, host_factory=ScriptHost, on_image=None):
        self.endpoint_url, self.region = endpoint_url, region
        self.builds_dir = Path(builds_dir)
        self.host_factory = host_factory
        self.on_image = on_image or (lambda ami, layer, request: None)
        self.threads = {}

    def step(self) -> None:
        """Claim the requests no one claimed yet and start their builds."""
        for request_file in sorted(self.builds_dir.glob("*.request.json")):
            base = str(request_file)[: -len(".request.json")]
            if os.path.exists(base + ".claimed") or os.path.exists(base + ".result.json") or base in self.threads:
                continue
            Path(base + ".claimed").write_text(str(os.getpid()))
            request = json.loads(request_file.read_text())
            self.threads[base] = thread = threading.Thread(target=self.build, args=(base, request), daemon=True)
            thread.start()

    def answer(self, base: str, result: dict) -> None:
        tmp = base + ".result.json.tmp"
        Path(tmp).write_text(json.dumps(result))
        os.replace(tmp, base + ".result.json")

    def build(self, base: str, request: dict) -> None:
        try:
            log(f"{request['stack_name']}: building {request['image_arn']} from {request['parent_image']}")
            ami = self.run_build(base, request)
            if ami:
                self.clean_up(request, ami)
        except Exception:  # pylint: disable=broad-except  # a build's failure is its answer
            log(f"{request.get('stack_name')}: build failed: {traceback.format_exc()}")
            if not os.path.exists(base + ".result.json"):
                self.answer(base, {"status": "FAILED", "reason": "Image Builder's build infrastructure failed"})
        finally:
            self.threads.pop(base, None)

    def run_build(self, base: str, request: dict):
        """Build, answer; the AMI, or None when the build failed."""
        build_log = BuildLog(self.endpoint_url, self.region, request["log_group"], request["log_stream"])
        build_log.write(f"Image transitioned to BUILDING state for Image ARN: {request['image_arn']}")
        host = self.host_factory(request)
        try:
            for component in request["components"]:
                if not component.get("script_url"):
                    build_log.write(f"Skipped {component['arn']}: ParallelCluster's own component; the sandbox's AMI "
                                    "layer stands for ParallelCluster's AMI")
                    continue
                build_log.write(f"Started document {component['arn']} ({component['script_url']})")
                status, lines = host.run(fetch(self.endpoint_url, self.region, component["script_url"]),
                                         component["logical_id"] + ".sh")
                build_log.write(*["Stdout: " + line if not line.startswith("Stderr: ") else line for line in lines])
                if status != 0:
                    build_log.write("ERROR - Script execution failure. Exit code != 0", f"ExitCode {status}",
                                    f"Document {component['arn']} failed!")
                    reason = (f"SSM execution '{uuid.uuid4()}' failed for image arn: '{request['image_arn']}' with "
                              f"status = 'Failed' in state = 'BUILDING' and failure message = 'Document "
                              f"{component['arn']} failed!'")
                    self.answer(base, {"status": "FAILED", "reason": reason})
                    log(f"{request['stack_name']}: {component['logical_id']} exited {status}; FAILED")
                    return None
                build_log.write(f"Document {component['arn']} completed")
            layer = host.capture()
        finally:
            host.close()
        ami = moto_image.register_ami(self.endpoint_url, self.region, request)
        self.on_image(ami, layer, request)
        build_log.write(f"Image transitioned to AVAILABLE state: {ami}")
        self.answer(base, {"status": "AVAILABLE", "ami_id": ami})
        log(f"{request['stack_name']}: AVAILABLE as {ami}" + (f" (layer {layer})" if layer else ""))
        return ami

    def clean_up(self, request: dict, ami: str) -> None:
        """ParallelCluster's cleanup function, told that the image is AVAILABLE: once the stack is complete."""
        cfn = moto_image.client("cloudformation", self.endpoint_url, self.region)
        deadline = time.monotonic() + STACK_COMPLETE_SECONDS
        while time.monotonic() < deadline:
            status = cfn.describe_stacks(StackName=request["stack_id"])["Stacks"][0]["StackStatus"]
            if status == "CREATE_COMPLETE":
                moto_image.mark_available(self.endpoint_url, self.region, ami, request["parent_image"], request["stack_id"])
                log(f"{request['stack_name']}: {ami} tagged available, build stack deleted")
                return
            if not status.endswith("IN_PROGRESS"):
                break
            time.sleep(POLL)
        log(f"{request['stack_name']}: the build stack did not complete ({status}); {ami} left as it is")

    def run(self, alive=lambda: True) -> None:
        while alive():
            try:
                self.step()
            except Exception:  # pylint: disable=broad-except  # moto busy: again on the next poll
                log(f"poll failed: {traceback.format_exc(limit=3)}")
            time.sleep(POLL)
