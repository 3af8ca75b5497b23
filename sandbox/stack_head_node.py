"""The head node instance a ParallelCluster stack creates, booted by the sandbox's hypervisor with its own user data.

ParallelCluster's head node user data (the template's ``HeadNodeLaunchTemplate``) carries no dna.json:
its shell script part runs ``cfn-init -c deployFiles`` (the launch template's metadata writes dna.json
and the wait condition handle's URL), checks the AMI, runs ``cfn-init -c default`` (the cookbook) and
``cfn-signal``s the stack's wait condition, or signals the failure with its reason (``error_exit``).
The sandbox runs that script as it is, in the node, as cloud-init runs a user data script (bash, its
output in ``/var/log/cloud-init-output.log``); what it calls that the sandbox's AMI layer has not
(cfn-init, cfn-signal, cfn-hup, cinc-client and the cookbook) are the stand-ins of
``sandbox/cfn_node`` (the node sees them as ``/run/sandbox/cfn``), after the AMI's facts they rely on:
``/etc/parallelcluster/pcluster_cookbook_environment.sh`` (``CFN_BOOTSTRAP_VIRTUALENV_PATH``),
``/opt/parallelcluster/.bootstrapped`` (the cookbook version the AMI was baked with), cinc-client on
the script's PATH and the directories the script writes into (``/etc/chef``, ``/opt/parallelcluster/tmp``).
"""

from __future__ import annotations

import base64
import email
import os
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "cfn_node"      # seen in the node as NODE_CFN
NODE_CFN = "/run/sandbox/cfn"
COOKBOOK_VERSION = "aws-parallelcluster-cookbook-3.16.1"
SCRIPT = "/var/lib/cloud/instance/scripts/part-001"
OUTPUT = "/var/log/cloud-init-output.log"
DEPLOY_FILES = re.compile(r"cfn-init -s (\S+) -v -c deployFiles -r (\S+) --region (\S+)")


def head_node_script(encoded: str | None) -> str | None:
    """The shell script part of a ParallelCluster head node's user data (base64), or None for other user data."""
    if not encoded:
        return None
    message = email.message_from_bytes(base64.b64decode(encoded))
    for part in message.walk() if message.is_multipart() else [message]:
        if part.get_content_type() == "text/x-shellscript":
            text = part.get_payload(decode=True).decode(errors="replace")
            if DEPLOY_FILES.search(text):
                return text
    return None


def stack_of(script: str) -> dict:
    """The stack, launch template resource and region the script's cfn-init reads."""
    found = DEPLOY_FILES.search(script)
    return {"stack": found.group(1), "resource": found.group(2), "region": found.group(3)}


def ami_files(script: str) -> dict:
    """{path in the node: (content, mode)}: what ParallelCluster's AMI holds that the script relies on, and the
    script where cloud-init puts it."""
    return {
        "/etc/parallelcluster/pcluster_cookbook_environment.sh": (
            f"# ParallelCluster cookbook environment (the sandbox: its stand-ins of cfn-bootstrap)\n"
            f"CFN_BOOTSTRAP_VIRTUALENV_PATH={NODE_CFN}/bin\n\nexport CFN_BOOTSTRAP_VIRTUALENV_PATH\n", 0o644),
        "/opt/parallelcluster/.bootstrapped": (COOKBOOK_VERSION + "\n", 0o644),
        "/usr/local/bin/cinc-client": (f"#!/bin/sh\nexec {NODE_CFN}/bin/cinc-client \"$@\"\n", 0o755),
        SCRIPT: (script, 0o700),
    }


def write_in(pid: int, files: dict) -> None:
    """Write {path: (text, mode)} inside the node held by pid."""
    for path, (content, mode) in files.items():
        target = Path(f"/proc/{pid}/root{path}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        os.chmod(target, mode)


def user_data_argv(timeout: int) -> list:
    """cloud-init's scripts-user, in the node: the script with bash, its output appended to cloud-init-output.log
    (and printed), within the bootstrap timeout."""
    return ["/bin/bash", "-c", f"timeout {int(timeout)} /bin/bash {SCRIPT} 2>&1 | tee -a {OUTPUT}; exit ${{PIPESTATUS[0]}}"]


def bootstrap_timeout(script: str) -> int:  # pylint: disable=unused-argument
    """cloud-init runs the user data without a limit of its own; the stack's wait condition times the head node out
    (HeadNodeBootstrapTimeout). The sandbox stops the script after that long at most."""
    return HEAD_NODE_BOOTSTRAP_TIMEOUT


HEAD_NODE_BOOTSTRAP_TIMEOUT = 43200
# Directories ParallelCluster's AMI has that the user data's script writes into (cinc's, the cookbook's).
AMI_DIRECTORIES = ("/etc/chef", "/opt/parallelcluster/tmp", "/opt/parallelcluster/scripts")
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def prepare(state: dict, network_pid: int, pid: int, ip: str, script: str) -> None:
    """Before the user data runs: the AMI's files, and the head node's way to and from the host (the host reaches
    the cluster through its head node, as a user reaches a head node in a public subnet)."""
    import nodes  # pylint: disable=import-outside-toplevel

    for directory in AMI_DIRECTORIES:
        Path(f"/proc/{pid}/root{directory}").mkdir(parents=True, exist_ok=True)
    write_in(pid, ami_files(script))
    # Through the VPC's router (the namespace holding the bridge), which forwards.
    nodes.run(["ip", "route", "replace", f"{ip}/32", "via", state["head_ip"], "dev", state["host_veth"],
               "src", state["host_ip"], "proto", str(nodes.ROUTE_PROTO)])
    nodes.run(nodes.nsenter(network_pid, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
    nodes.run(nodes.nsenter(pid, ["ip", "route", "replace", f"{state['host_ip']}/32", "via", state["head_ip"]]))


def run_user_data(state_dir: Path, pid: int, instance_id: str, timeout: int) -> int:
    """The user data's script in the node (cloud-init's scripts-user); its output also in logs/boot-<instance>.log.
    A failure is the script's own (it signals the stack): the head node is not shut down."""
    import subprocess  # pylint: disable=import-outside-toplevel

    import nodes  # pylint: disable=import-outside-toplevel

    argv = nodes.nsenter(pid, ["env", "-i", f"PATH={NODE_PATH}", "HOME=/root", "LANG=C.UTF-8", *user_data_argv(timeout)])
    with open(Path(state_dir) / "logs" / f"boot-{instance_id}.log", "ab") as out:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
