"""cfn-init and cfn-signal as a ParallelCluster head node runs them, inside the sandbox's node.

cfn-init reads a resource's ``AWS::CloudFormation::Init`` metadata from CloudFormation
(DescribeStackResource, with the instance's own credentials) and applies the config sets it is asked
for, each config in order: its ``files`` (an object as JSON, a string as it is, ``encoding: base64``
decoded; ``mode`` as octal, ``owner`` and ``group``), then its ``commands`` in the alphabetical order
of their names (a string through the shell, a list as argv; ``cwd``, ``env``, ``test``,
``ignoreErrors``); a command that fails fails cfn-init. It logs to ``/var/log/cfn-init.log`` and the
commands' output to ``/var/log/cfn-init-cmd.log``, as AWS's cfn-init does. The commands run as they
are: where ParallelCluster's call the cookbook (``cinc-client``, ``fetch_and_run``), the sandbox's
stand-ins of those programs answer (cinc_client.py, fetch_and_run.py).

cfn-signal sends a wait condition handle its signal: a PUT of ``{"Status", "Reason", "UniqueId",
"Data"}`` to the handle's URL (``--exit-code`` 0: SUCCESS, else FAILURE; the UniqueId is the
instance id).
"""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import subprocess
import sys
import time
import urllib.request

CFN_INIT_LOG = "/var/log/cfn-init.log"
CFN_INIT_COMMAND_LOG = "/var/log/cfn-init-cmd.log"


class CfnInitFailed(Exception):
    """A config set that could not be applied; the message is cfn-init's."""


def log(text: str, path: str | None = None) -> None:
    path = path or CFN_INIT_LOG
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S,000')} [INFO] {text}\n")


def metadata(cloudformation, stack: str, resource: str) -> dict:
    """The resource's AWS::CloudFormation::Init, as cfn-init fetches it."""
    detail = cloudformation.describe_stack_resource(StackName=stack, LogicalResourceId=resource)["StackResourceDetail"]
    init = json.loads(detail.get("Metadata") or "{}").get("AWS::CloudFormation::Init")
    if not init:
        raise CfnInitFailed(f"Could not find AWS::CloudFormation::Init metadata for {resource} in stack {stack}")
    return init


def configs_of(init: dict, config_sets: list) -> list:
    """The config names the config sets apply, in order (a config set may name another: {"ConfigSet": name})."""
    sets = init.get("configSets") or {"default": ["config"]}
    out = []
    for name in config_sets:
        if name not in sets:
            raise CfnInitFailed(f"Error: configSet {name} is not defined")
        for item in sets[name]:
            out += configs_of(init, [item["ConfigSet"]]) if isinstance(item, dict) else [item]
    return out


def write_file(path: str, spec: dict, root: str = "/") -> None:
    content = spec.get("content", "")
    if isinstance(content, (dict, list)):
        data = json.dumps(content).encode()
    elif spec.get("encoding") == "base64":
        data = base64.b64decode(content)
    else:
        data = str(content).encode()
    target = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as handle:
        handle.write(data)
    os.chmod(target, int(str(spec.get("mode", "000644"))[-4:], 8))
    try:
        os.chown(target, pwd.getpwnam(spec.get("owner", "root")).pw_uid, grp.getgrnam(spec.get("group", "root")).gr_gid)
    except (KeyError, PermissionError):
        pass  # an owner the node does not know: cfn-init fails the same way only for real users, not root


def run_command(name: str, spec: dict) -> None:
    command = spec.get("command")
    env = dict(os.environ, **{k: str(v) for k, v in (spec.get("env") or {}).items()})
    shell = isinstance(command, str)
    if spec.get("test"):
        tested = subprocess.run(spec["test"], shell=isinstance(spec["test"], str), env=env, cwd=spec.get("cwd"),  # noqa: S602
                                capture_output=True, check=False)
        if tested.returncode != 0:
            log(f"Test failed with code {tested.returncode}; not running command {name}")
            return
    log(f"Running command {name}")
    proc = subprocess.run(command, shell=shell, env=env, cwd=spec.get("cwd"), capture_output=True, text=True,  # noqa: S602
                          check=False)
    output = f"{proc.stdout}{proc.stderr}"
    log(f"Command {name}\n{output}", CFN_INIT_COMMAND_LOG)
    if output.strip():
        log(f"Command {name} output: {output.strip()}")
    if proc.returncode != 0 and str(spec.get("ignoreErrors", "false")).lower() != "true":
        log(f"Command {name} (\"{command}\") failed")
        raise CfnInitFailed(f"Command {name} failed")
    log(f"Command {name} succeeded")


def apply(init: dict, config_sets: list, root: str = "/") -> None:
    """Apply config sets of init (files, then commands in name order, config after config)."""
    for name in configs_of(init, config_sets):
        config = init.get(name)
        if config is None:
            raise CfnInitFailed(f"Error: config {name} is not defined")
        log(f"Running config {name}")
        for path, spec in (config.get("files") or {}).items():
            write_file(path, spec, root)
            log(f"Changing ownership and permissions of {path}")
        for command_name in sorted(config.get("commands") or {}):
            run_command(command_name, config["commands"][command_name])
    log(f"ConfigSets completed: {', '.join(config_sets)}")


def signal(url: str, success: bool, reason: str, unique_id: str, data: str = "") -> None:
    """cfn-signal to a wait condition handle."""
    body = json.dumps({"Status": "SUCCESS" if success else "FAILURE", "Reason": reason, "UniqueId": unique_id,
                       "Data": data}).encode()
    request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})
    for attempt in range(5):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
            return
        except OSError:
            if attempt == 4:
                raise
            time.sleep(2 ** attempt)


IMDS = "http://169.254.169.254"
IDENTITY_COPY = "/run/sandbox/node/identity.json"


def instance_id() -> str:
    """This instance's id, from the instance metadata service (IMDSv2), else the copy of its identity document
    the sandbox's hypervisor leaves in the node."""
    try:
        token_request = urllib.request.Request(f"{IMDS}/latest/api/token", method="PUT",
                                               headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"})
        with urllib.request.urlopen(token_request, timeout=2) as response:
            token = response.read().decode()
        request = urllib.request.Request(f"{IMDS}/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token})
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.read().decode().strip()
    except OSError:
        with open(IDENTITY_COPY, encoding="utf-8") as handle:
            return json.load(handle)["instanceId"]


def cloudformation(region: str):
    import boto3  # pylint: disable=import-outside-toplevel  # the cookbook virtualenv's; the node's own credentials

    return boto3.session.Session(region_name=region).client("cloudformation")


def main(argv=None) -> int:
    """cfn-init -s STACK -r RESOURCE [-c CONFIGSETS] --region REGION [--url URL] [--role ROLE] [-v]"""
    import argparse  # pylint: disable=import-outside-toplevel

    parser = argparse.ArgumentParser(prog="cfn-init", description="the sandbox's cfn-init")
    parser.add_argument("-s", "--stack", required=True)
    parser.add_argument("-r", "--resource", required=True)
    parser.add_argument("-c", "--configsets", default="default")
    parser.add_argument("--region", required=True)
    parser.add_argument("--url")
    parser.add_argument("--role")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    config_sets = [name.strip() for name in args.configsets.split(",") if name.strip()]
    try:
        apply(metadata(cloudformation(args.region), args.stack, args.resource), config_sets)
    except Exception as exc:  # pylint: disable=broad-except  # cfn-init's own report of any failure
        log(f"Error occurred during build: {exc}")
        print(f"Error occurred during build: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
