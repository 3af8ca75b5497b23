"""A private sandbox for the end-to-end tests, and helpers that run the playbooks against it.

The tests change Slurm state (a node set down, a job left running), so they use their own sandbox
instance in a temporary state dir rather than the shared default one.
"""

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import pytest

from env_file import controller_env  # sandbox/env_file.py

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"

SANDBOX = ROOT / "sandbox" / "sandbox.py"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    recap: dict = field(default_factory=dict)

    @property
    def output(self):
        return self.stdout + self.stderr


def parse_recap(text):
    """PLAY RECAP lines -> {host: {ok, changed, unreachable, failed}}."""
    return {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                         "failed": int(m.group(5))} for m in RECAP.finditer(text)}


def load_env(state_dir):
    env = controller_env(state_dir)
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


@dataclass
class E2ESandbox:
    state_dir: pathlib.Path
    state: dict
    env: dict
    report_dir: pathlib.Path
    up_output: str = ""  # what `sandbox.py up` printed

    @property
    def inventory(self):
        return str(self.state_dir / "inventory")

    @property
    def cluster_name(self):
        return self.state["cluster_name"]

    @property
    def compute_nodes(self):
        return [n["name"] if isinstance(n, dict) else n for n in self.state["compute_nodes"]]

    def playbook(self, playbook, extra_vars=None, args=(), timeout=900, inventory=None, env=None):
        argv = ["ansible-playbook", "-i", inventory or self.inventory, str(ROOT / playbook),
                "-e", "verify_report_dir=%s" % self.report_dir]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        argv += list(args)
        proc = subprocess.run(argv, cwd=str(ROOT), env=env or self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        return Run(proc.returncode, proc.stdout, proc.stderr, parse_recap(proc.stdout))

    def node_setup(self, tasks, extra_vars=None, args=(), timeout=900):
        """Role node_setup alone on the head node (node_setup_only.yml), tasks_from tasks (main, stage or fleet),
        without the container roles that playbooks/containers.yml runs over SSH first."""
        return self.playbook("tests/e2e/node_setup_only.yml", dict(extra_vars or {}, node_setup_tasks=tasks), args=args,
                             timeout=timeout)

    def head(self, *argv, check=True, timeout=60):
        """Run a command on the head node over SSH (pinned host key)."""
        ssh = ["ssh", "-i", self.state["ssh_key"], "-o", "UserKnownHostsFile=%s" % self.state["known_hosts"],
               "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "root@%s" % self.state["head_ip"]]
        proc = subprocess.run(ssh + [shlex.join(argv)], capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("%s failed (rc %s): %s" % (" ".join(argv), proc.returncode, proc.stderr))
        return proc.stdout

    def sandbox(self, *args, timeout=900):
        """sandbox.py <args> --state-dir <this sandbox>."""
        return subprocess.run(_sandbox_cmd(*args, "--state-dir", str(self.state_dir)), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def head_file(self, path):
        """A file of the head node's own root (e.g. the node daemons' logs under /var/log/parallelcluster)."""
        return pathlib.Path("/proc/%d/root%s" % (self.state["holders"]["head"], path)).read_text()

    def node_records(self):
        """The hypervisor's records of the running instances: {instance id: {name, ip, pid, bootstrap, ...}}."""
        return json.loads((self.state_dir / "nodes.json").read_text())

    def wait_not_in_replacement(self, node, timeout=120):
        """Until ParallelCluster's clustermgtd has seen a static node it launched up (its log's list of nodes in
        replacement no longer names it): until then it leaves a drained or down node alone, as on AWS, for up to
        node_replacement_timeout. Its last word counts: the loop's "Following nodes are currently in replacement"
        or, right after it launched the node, "After node maintenance, following nodes are ..."."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [line for line in self.head_file("/var/log/parallelcluster/clustermgtd").splitlines()
                     if "following nodes are currently in replacement:" in line.lower()]
            if lines and node not in lines[-1]:
                return
            time.sleep(2)
        raise AssertionError("clustermgtd still counts %s as in replacement after %d s" % (node, timeout))

    def instance_of(self, node):
        """The instance ParallelCluster's node table names for a Slurm node."""
        ddb = self.aws("dynamodb")
        item = ddb.get_item(TableName="parallelcluster-slurm-%s" % self.cluster_name, Key={"Id": {"S": node}})
        return item.get("Item", {}).get("InstanceId", {}).get("S")

    def aws(self, service):
        import boto3  # pylint: disable=import-outside-toplevel
        from iam_identities import ADMIN_CREDENTIALS  # pylint: disable=import-outside-toplevel  # sandbox/
        return boto3.session.Session(region_name=self.state["region"], **ADMIN_CREDENTIALS).client(
            service, endpoint_url=self.state["endpoint_url"])

    def latest_report(self):
        latest = self.report_dir / self.cluster_name / "latest"
        return latest.resolve()


def _sandbox_cmd(*args):
    return [str(VENV_BIN / "python"), str(SANDBOX)] + list(args)


def private_sandbox(compute_nodes, *up_args):
    """A sandbox of its own with compute_nodes static compute nodes (and sandbox.py up's up_args), in a temporary
    state dir; down and removed afterwards."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        pytest.skip("the sandbox needs root on Linux")
    base = pathlib.Path(tempfile.mkdtemp(prefix="hpc-pcluster-e2e-"))
    state_dir = base / "sandbox"
    up = subprocess.run(_sandbox_cmd("up", "--state-dir", str(state_dir), "--compute-nodes", str(compute_nodes),
                                     "--gpus-per-node", "1", *up_args),
                        capture_output=True, text=True, timeout=300, check=False)
    if up.returncode != 0:
        subprocess.run(_sandbox_cmd("down", "--state-dir", str(state_dir)), capture_output=True, check=False)
        pytest.fail("private sandbox did not come up:\n%s\n%s" % (up.stdout[-3000:], up.stderr[-3000:]))
    try:
        state = json.loads((state_dir / "state.json").read_text())
        yield E2ESandbox(state_dir, state, load_env(state_dir), base / "reports", up.stdout + up.stderr)
    finally:
        subprocess.run(_sandbox_cmd("down", "--state-dir", str(state_dir)), capture_output=True, timeout=120, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def e2e_sandbox():
    yield from private_sandbox(2)


# Extra variables for the deploy runs (JSON), e.g. '{"pcluster_containers_enabled": false}' to look at the
# rest of the flow while the container roles are being worked on. Empty: deploy.yml exactly as `make demo` runs it.
DEPLOY_VARS = json.loads(os.environ.get("HPC_PCLUSTER_E2E_DEPLOY_VARS") or "{}")


@pytest.fixture(scope="session")
def deploy_vars():
    return dict(DEPLOY_VARS)


@pytest.fixture(scope="session")
def first_deploy(e2e_sandbox):
    """deploy.yml's first run on the e2e sandbox, shared by the tests that look at what it left."""
    run = e2e_sandbox.playbook("deploy.yml", DEPLOY_VARS)
    assert run.rc == 0, run.output[-6000:]
    return run


@pytest.fixture(scope="module")
def e2e_sandbox_4_nodes():
    """For the tests that need more than one pair of compute nodes; up only while their module runs."""
    yield from private_sandbox(4)


@pytest.fixture(scope="module")
def stack_sandbox():
    """No cluster (`up --no-cluster`): its tests create it through ParallelCluster's template; one static compute
    node; up only while their module runs."""
    yield from private_sandbox(1, "--no-cluster")


@pytest.fixture(scope="session")
def dynamic_sandbox():
    """A static compute node and a dynamic one (powered down until a job needs it: ScaledownIdletime 10, so that
    Slurm's power saving is on and an idle dynamic node stays up for 10 minutes). Its tests watch clustermgtd replace
    nodes and stop the fleet: clustermgtd loops every 10 s (the other sandboxes: ParallelCluster's 60 s)."""
    yield from private_sandbox(1, "--dynamic-nodes", "1", "--scaledown-idletime", "10", "--clustermgtd-loop-time", "10")
