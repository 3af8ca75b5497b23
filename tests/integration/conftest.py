"""The ``sandbox`` fixture: the running default sandbox (``make sandbox-up``), as an object.

Attributes: endpoint_url, region, cluster_name, head_ip, ssh_key, known_hosts, state_dir,
inventory_dir, compute_nodes (Slurm node names), compute_ips, gpus_per_node, state (the whole
state.json) and env (a copy of os.environ with the sandbox's env.sh, the venv first on PATH and
ANSIBLE_CONFIG). Helpers: ``ssh(command)`` runs a shell command on the head node with the pinned
known_hosts and StrictHostKeyChecking=yes; ``run(argv)`` runs a local command with ``env``.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from dataclasses import dataclass, field

import pytest

from env_file import controller_env  # sandbox/env_file.py

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"

SANDBOX_PY = ROOT / "sandbox" / "sandbox.py"
DEFAULT_STATE_DIR = pathlib.Path(os.environ.get("SANDBOX_STATE_DIR", ROOT / "sandbox" / ".state"))


def ssh_argv(state: dict, known_hosts: str | None = None) -> list:
    return ["ssh", "-i", state["ssh_key"], "-o", "UserKnownHostsFile=%s" % (known_hosts or state["known_hosts"]),
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10", "root@%s" % state["head_ip"]]


@dataclass
class Sandbox:
    state: dict
    env: dict = field(repr=False)

    def __getattr__(self, name):
        if name in ("state", "env") or name.startswith("__"):
            raise AttributeError(name)
        try:
            return self.state[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def state_dir(self) -> pathlib.Path:
        return pathlib.Path(self.state["state_dir"])

    @property
    def inventory_dir(self) -> pathlib.Path:
        return pathlib.Path(self.state["inventory_dir"])

    def ssh_argv(self, known_hosts: str | None = None) -> list:
        """ssh to the head node as root, checking its host key against known_hosts."""
        return ssh_argv(self.state, known_hosts)

    def ssh(self, command: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(ssh_argv(self.state) + [command], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("on the head node, %r failed (rc %s):\n%s%s"
                                 % (command, proc.returncode, proc.stdout, proc.stderr))
        return proc

    def run(self, argv, check: bool = False, timeout: int = 120, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=timeout, check=check,
                              **kwargs)


def load_sandbox(state_dir: pathlib.Path) -> Sandbox | None:
    try:
        state = json.loads((state_dir / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return Sandbox(state, controller_env(state_dir))


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    """The default sandbox; fails (does not start one) when it is not up."""
    status = subprocess.run([str(VENV_BIN / "python"), str(SANDBOX_PY), "status", "--state-dir", str(DEFAULT_STATE_DIR)],
                            capture_output=True, text=True, timeout=60, check=False)
    box = load_sandbox(DEFAULT_STATE_DIR) if status.returncode == 0 else None
    if box is None:
        pytest.fail("the sandbox is not up in %s (%s): start it with `make sandbox-up`"
                    % (DEFAULT_STATE_DIR, (status.stdout + status.stderr).strip()), pytrace=False)
    if box.state.get("no_cluster"):
        pytest.fail("the sandbox in %s runs without a registered cluster (up --no-cluster, as `make demo` brings it "
                    "up): these tests need it registered; `make sandbox-down`, then `make sandbox-up`"
                    % DEFAULT_STATE_DIR, pytrace=False)
    release_node_setup_holds(box)
    return box


# The shell command on the head node that deletes every node-setup hold (see release_node_setup_holds).
RELEASE_NODE_SETUP_HOLDS = ("for r in $(scontrol show reservation --oneliner | sed -n 's/^ReservationName=\\(hpc-pcluster-node-setup-[^ ]*\\) .*/\\1/p');"
                            " do scontrol delete reservation=$r; done")


def release_node_setup_holds(box: Sandbox) -> None:
    """A sandbox just up is a created cluster no playbook has set up: its static nodes booted before any node-setup
    bundle existed and are held out of scheduling until deploy.yml's fleet job sets them up (a Slurm maintenance
    reservation each, roles/node_setup/README.md). The tests of the sandbox itself use the nodes as they are, as an
    administrator would after deleting those reservations."""
    box.ssh(RELEASE_NODE_SETUP_HOLDS)
