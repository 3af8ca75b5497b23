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
``/opt/parallelcluster/.bootstrapped`` (the cookbook version the AMI was baked with) and cinc-client on
the script's PATH.
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
