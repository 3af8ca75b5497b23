"""The hpc.pcluster sandbox: a local AWS (moto) and a real Slurm cluster in namespaces.

    .venv/bin/python sandbox/sandbox.py up [--compute-nodes N] [--gpus-per-node G]
                                           [--state-dir DIR] [--if-needed]
    .venv/bin/python sandbox/sandbox.py down [--state-dir DIR] [--all]
    .venv/bin/python sandbox/sandbox.py status [--state-dir DIR] [--json]

Exit codes: 0 done; 1 failed; 2 `up` found a sandbox already running on that
state dir (nothing changed; with --if-needed that is exit 0); 3 `status`
found no running sandbox. See sandbox/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fcntl
import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import ami  # noqa: E402  pylint: disable=wrong-import-position

DEFAULT_STATE_DIR = HERE / ".state"
REGISTRY = ami.REGISTRY_DIR
MAX_INSTANCES = 100
DEFAULT_CLUSTER_NAME = "ml-training-cluster"
# ScaledownIdletime (minutes) of a sandbox with dynamic nodes when up is given none: ParallelCluster's default.
DYNAMIC_SCALEDOWN_IDLETIME = 10
DEFAULT_REGION = "us-east-1"
# Well-formed but fake: moto has no FSx (see README).
FAKE_FSX_LUSTRE_ID = "fs-0123456789abcdef0"
FAKE_FSX_OPENZFS_VOLUME_ID = "fsvol-0123456789abcdef0"
# pcluster's launch-template dry runs do not work against moto.
SUPPRESS_VALIDATORS = ["type:HeadNodeLaunchTemplateValidator", "type:ComputeResourceLaunchTemplateValidator"]
NOT_AVAILABLE = "not available in the sandbox"
# Names of the verify role's checks (or check families) the sandbox cannot show. The container
# checks join them when the real chain or the package mirrors are missing (verify_not_available).
VERIFY_NOT_AVAILABLE = {
    # Slurm's GPU scheduling is real (GRES on stand-in /dev/nvidiaN devices): gpu_count checks it.
    "nvidia_smi": f"{NOT_AVAILABLE}: no GPU or NVIDIA driver, so no nvidia-smi (Slurm schedules stand-in /dev/nvidiaN devices)",
    "fsx_lustre": f"{NOT_AVAILABLE}: /lustre is a tmpfs, not FSx for Lustre",
    "fsx_openzfs": f"{NOT_AVAILABLE}: /fsx is a tmpfs, not FSx for OpenZFS",
    "efa": f"{NOT_AVAILABLE}: no Elastic Fabric Adapter",
    # The distributed checks run the MPI all-reduce instead (verify_distributed_mpi_on_gpu_nodes).
    "nccl": f"{NOT_AVAILABLE}: no GPU, NCCL or EFA to run nccl-tests with (the MPI all-reduce runs instead)",
    # The cluster config says Image.Os ubuntu2204; the sandbox nodes run this machine's OS.
    "os_release": f"{NOT_AVAILABLE}: the nodes run this machine's OS, not the ParallelCluster AMI of Image.Os",
}

# clustermgtd's loop_time: ParallelCluster's default. Each loop costs the machine about 0.5 s of CPU (the fleet
# status script, its EC2 and DynamoDB calls to moto): an idle sandbox at 10 s takes 2.4 times the CPU of one at 60 s
# (bench/sandbox_idle_cpu.py: 8.7% and 3.7% of one core with two compute nodes).
CLUSTERMGTD_LOOP_TIME = 60
# How long up waits for clustermgtd's static nodes to be idle in Slurm (its first loop, the launch, the boots).
STATIC_FLEET_TIMEOUT = 300.0
# The MPI all-reduce (Python, TCP, every node on this machine's cores) reaches 0.09-1.1 of one TCP stream
# between two nodes (bench/allreduce_sandbox.py and the e2e tests, 2 and 4 nodes, on a loaded 2-core machine);
# it passes at 0.05.
SANDBOX_MPI_MIN_FRACTION = 0.05


def verify_not_available(containers: dict) -> dict:
    import container_chain
    return dict(VERIFY_NOT_AVAILABLE, **container_chain.not_available(containers))


EXIT_FAILED, EXIT_ALREADY_RUNNING, EXIT_NOT_RUNNING = 1, 2, 3


class SandboxError(Exception):
    """A failure with a message meant for the user."""


def log(msg: str) -> None:
    print(f"[sandbox] {msg}", flush=True)


# --------------------------------------------------------------------------- checks

REQUIRED_TOOLS = ["slurmctld", "slurmd", "scontrol", "sinfo", "munged", "sshd", "ssh-keygen", "gcc",
                  "ip", "nsenter", "unshare", "setpriv", "mount"]


def check_platform() -> None:
    if platform.system() != "Linux":
        raise SandboxError(f"the sandbox needs Linux (namespaces, Slurm); this is {platform.system()}")
    if os.geteuid() != 0:
        raise SandboxError("the sandbox needs root (it creates network/mount namespaces and runs "
                           "slurmctld, slurmd, munged and sshd); run it as root, e.g. with sudo")
    missing = [t for t in REQUIRED_TOOLS if not shutil.which(t, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")]
    if not os.path.exists("/usr/include/slurm/spank.h"):
        missing.append("/usr/include/slurm/spank.h (libslurm-dev)")
    if missing:
        raise SandboxError(f"missing tools: {', '.join(missing)}; run `make setup` (scripts/setup.sh)")
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    absent = [m for m in ("boto3", "moto", "yaml", "pcluster") if importlib.util.find_spec(m) is None]
    if absent:
        raise SandboxError(f"{', '.join(absent)} not importable by {sys.executable}: run the sandbox with the "
                           f"project's virtualenv, .venv/bin/python sandbox/sandbox.py (make setup creates it)")


# --------------------------------------------------------------------------- registry

class Registry:
    """Instances running on this machine, under /run (gone at reboot), guarded by flock on /run."""

    def __init__(self):
        self.fd = None

    def __enter__(self):
        self.fd = os.open("/run", os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)

    @staticmethod
    def entries() -> dict:
        out = {}
        if REGISTRY.is_dir():
            for f in REGISTRY.glob("instance-*.json"):
                try:
                    out[int(f.stem.split("-")[1])] = json.loads(f.read_text())
                except (ValueError, OSError):
                    continue
        return out

    def claim(self, state_dir: str) -> int:
        taken = set(self.entries())
        links = set(os.listdir("/sys/class/net"))
        netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        for index in range(MAX_INSTANCES):
            if index in taken or f"pcsbx{index}up" in links or any(n.startswith(f"pcsbx{index}-") for n in netns):
                continue
            REGISTRY.mkdir(mode=0o755, exist_ok=True)
            (REGISTRY / f"instance-{index}.json").write_text(json.dumps({"state_dir": state_dir}))
            return index
        raise SandboxError(f"no free sandbox instance index (max {MAX_INSTANCES} at once)")

    def release(self, index) -> None:
        if index is not None:
            (REGISTRY / f"instance-{index}.json").unlink(missing_ok=True)
        if self.entries():
            return
        # Last instance gone: remove what the sandboxes created on the host.
        created = REGISTRY / "created.json"
        if created.exists():
            info = json.loads(created.read_text())
            for d in info.get("dirs", []):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            if info.get("netns_mount") and os.path.isdir("/run/netns") and not os.listdir("/run/netns"):
                subprocess.run(["umount", "/run/netns"], capture_output=True, check=False)
                try:
                    os.rmdir("/run/netns")
                except OSError:
                    pass
            created.unlink()
        try:
            REGISTRY.rmdir()
        except OSError:
            pass

    @staticmethod
    def note_created(dirs: list, netns_mount: bool) -> None:
        created = REGISTRY / "created.json"
        info = json.loads(created.read_text()) if created.exists() else {"dirs": [], "netns_mount": False}
        info["dirs"] = sorted(set(info["dirs"]) | set(dirs))
        info["netns_mount"] = info["netns_mount"] or netns_mount
        created.write_text(json.dumps(info))


# --------------------------------------------------------------------------- state

def load_state(state_dir: Path) -> dict | None:
    import state_file
    return state_file.load(state_dir)


def save_state(state_dir: Path, state: dict) -> None:
    """Write state.json whole: only while up starts the sandbox, before the hypervisor runs (later: update_state)."""
    import state_file
    state_file.save(state_dir, state)


def update_state(state_dir: Path, values: dict) -> dict:
    """Set keys of state.json (the hypervisor changes others meanwhile); returns the whole state."""
    import state_file
    return state_file.update(state_dir, lambda state: state.update(values))


def pid_alive(pid) -> bool:
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def health(state: dict) -> dict:
    """What is running of a recorded sandbox."""
    import nodes
    problems = []
    if not pid_alive(state.get("moto_pid")):
        problems.append("moto server is not running")
    else:
        try:
            urllib.request.urlopen(state["endpoint_url"] + "/moto-api/", timeout=10).read(1)
        except OSError as exc:
            problems.append(f"moto server does not answer: {exc}")
    for name in ("base", "head"):
        if name in state.get("holders", {}) and not pid_alive(state["holders"][name]):
            problems.append(f"node {name} is gone")
    if "hypervisor_pid" in state and not pid_alive(state["hypervisor_pid"]):
        problems.append("the hypervisor (hypervisor.py) is not running")
    if "proxy_pid" in state and not pid_alive(state["proxy_pid"]):
        problems.append("the package-mirror proxy (proxy.py) is not running")
    if "forwarder_pid" in state and not pid_alive(state["forwarder_pid"]):
        problems.append("the nodes' AWS endpoint (forwarder.py) is not running")
    if "imds_pid" in state and not pid_alive(state["imds_pid"]):
        problems.append("the instance metadata service (imds.py) is not running")
    if not all(pid_alive(pid) for pid in state.get("containers", {}).get("registry", {}).get("pids", [])):
        problems.append("the registry (docker-registry) or ECR's API front (registry.py) is not running")
    head = state.get("holders", {}).get("head")
    if state.get("status") == "running" and pid_alive(head) and not state.get("no_cluster"):
        r = nodes.run(nodes.nsenter(head, ["scontrol", "ping"]), check=False)
        if "UP" not in r.stdout:
            problems.append("slurmctld does not answer scontrol ping")
    alive = pid_alive(state.get("moto_pid")) and all(pid_alive(state.get("holders", {}).get(n)) for n in ("base", "head"))
    return {"running": not problems and state.get("status") == "running", "problems": problems,
            "processes_alive": bool(alive and state.get("holders"))}


# --------------------------------------------------------------------------- up

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout=20.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SandboxError(f"moto server exited with {proc.returncode}; see its log")
        try:
            urllib.request.urlopen(url, timeout=1).read(1)
            return
        except OSError:
            time.sleep(0.05)
    raise SandboxError(f"{url} did not answer within {timeout:.0f} s")


def yaml_dump(data) -> str:
    import yaml
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def yaml_load(text: str):
    import yaml
    return yaml.safe_load(text)


def write_file(path: Path, text: str, mode=0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def venv_python() -> str:
    return sys.executable


def write_inventory(state_dir: Path, state: dict, group_vars: dict) -> None:
    inv = state_dir / "inventory"
    ssh_args = (f"-o UserKnownHostsFile={state['known_hosts']} -o StrictHostKeyChecking=yes "
                f"-o IdentitiesOnly=yes -i {state['ssh_key']}")
    write_file(inv / "pcluster_nodes.yml", "# Written by sandbox/sandbox.py up.\n" + yaml_dump({
        "plugin": "hpc.pcluster.nodes",
        "regions": [state["region"]],
        "endpoint_url": state["endpoint_url"],
        "clusters": [state["cluster_name"]],
        # Host names are the plugin's default: <cluster>-head and the Slurm node names of the compute nodes.
        # moto gives the head node a public address nothing answers on; the namespaces use the private one.
        "address_preference": ["private-ip-address"],
        # root on every node and on the hop through the head node to the compute nodes.
        "remote_user": "root",
        "proxy_jump": True,
        "ssh_common_args": ssh_args,
        "compose": {"ansible_user": "'root'", "ansible_python_interpreter": "'/usr/bin/python3'"},
    }))
    # Written last and atomically: the render play waits for this file.
    vars_file = inv / "group_vars" / "all" / "sandbox.yml"
    tmp = state_dir / "sandbox-vars.yml.tmp"
    write_file(tmp, "# Written by sandbox/sandbox.py up: the sandbox's environment.\n" + yaml_dump(group_vars), 0o600)
    vars_file.parent.mkdir(parents=True, exist_ok=True)
    tmp.replace(vars_file)


def write_env(state_dir: Path, state: dict) -> None:
    """env.sh: the controller's environment, as the pcluster user; admin-env.sh: the same as the sandbox's admin."""
    import iam_identities
    for name, identity, who in (("env.sh", state["iam"]["user"], f"the IAM user {iam_identities.USER_NAME} with "
                                 "ParallelCluster's documented user policies"),
                                ("admin-env.sh", iam_identities.ADMIN_CREDENTIALS, "the sandbox's admin (everything)")):
        lines = [f"# Source this file to use the sandbox as {who}: . {state_dir / name}"]
        lines += [f"export {k}={json.dumps(v)}" for k, v in sandbox_env(state, identity).items()]
        write_file(state_dir / name, "\n".join(lines) + "\n", 0o600)


def sandbox_env(state: dict, identity: dict) -> dict:
    """The sandbox's environment for a process signing as identity ({aws_access_key_id, aws_secret_access_key})."""
    import iam_identities
    return {
        "AWS_ENDPOINT_URL": state["endpoint_url"],
        "AWS_DEFAULT_REGION": state["region"],
        "AWS_REGION": state["region"],
        **iam_identities.environment(identity),
        "SANDBOX_CLUSTER_NAME": state["cluster_name"],
        # up --no-cluster: the head node is the instance deploy.yml's create launches (the inventory finds it).
        "SANDBOX_HEAD_IP": "" if state.get("no_cluster") else state["head_ip"],
        "SANDBOX_SSH_KEY": state["ssh_key"],
        "SANDBOX_KNOWN_HOSTS": state["known_hosts"],
        "SANDBOX_STATE_DIR": state["state_dir"],
        "ANSIBLE_SSH_CONTROL_PATH_DIR": state["ansible_control_path_dir"],
    }


def start_render(state_dir: Path, state: dict, vars_file: Path) -> subprocess.Popen:
    """Start sandbox/render-config.yml (role hpc.pcluster.cluster_config) right away: Ansible's
    start-up overlaps with moto's, and the play waits for the variables file. Part of the sandbox's set-up:
    it signs as the admin (it makes no AWS call)."""
    import iam_identities
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(state_dir / "ansible-tmp"),
               ANSIBLE_NOCOLOR="1", **sandbox_env(state, iam_identities.ADMIN_CREDENTIALS))
    playbook = shutil.which("ansible-playbook", path=env["PATH"])
    with open(state_dir / "logs" / "render-config.log", "wb") as out:
        return subprocess.Popen([playbook, "-i", str(state_dir / "inventory" / "hosts.yml"),
                                 "-e", f"sandbox_vars_file={vars_file}", str(HERE / "render-config.yml")],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=str(ROOT), start_new_session=True)


def finish_render(state_dir: Path, proc: subprocess.Popen, group_vars: dict) -> tuple[str, str]:
    """Wait for the render play. Returns (config YAML text, where it came from)."""
    out = Path(group_vars["cluster_config_output_path"])
    log_file = state_dir / "logs" / "render-config.log"
    if proc.wait(timeout=120) != 0:
        raise SandboxError(f"rendering the cluster config with role hpc.pcluster.cluster_config failed; "
                           f"see {log_file}:\n{log_file.read_text()[-3000:]}")
    if not out.exists():
        raise SandboxError(f"role hpc.pcluster.cluster_config wrote no cluster config at {out}; see {log_file}")
    return out.read_text(), "role hpc.pcluster.cluster_config"


def aws_side(state_dir: Path, state: dict, moto_proc, p: dict, timings: dict) -> dict:
    """Seed moto, write the inventory, render and register the cluster, unless state says no_cluster (runs in a
    thread)."""
    t0 = time.monotonic()
    inv = state_dir / "inventory"
    write_file(inv / "hosts.yml", "# Written by sandbox/sandbox.py up.\n" + yaml_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": venv_python()}}}}))
    vars_file = inv / "group_vars" / "all" / "sandbox.yml"
    renders = [start_render(state_dir, state, vars_file)]
    try:
        return _aws_side(state_dir, state, moto_proc, p, timings, renders, t0)
    finally:
        for render in renders:
            if render.poll() is None:
                render.kill()
                render.wait()


def _aws_side(state_dir, state, moto_proc, p, timings, renders, t0) -> dict:
    import iam_identities
    import moto_cluster
    import pcluster_resources
    # pcluster's schema (the config's implied values) takes about a second to import: while moto starts.
    import pcluster.schemas.cluster_schema  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    for service in ("ec2", "s3", "cloudformation", "dynamodb"):
        moto_cluster.client(service, state["endpoint_url"], state["region"])
    # Render with the ids moto is expected to create while it is being seeded (see
    # moto_cluster.PREDICTED_SEED_IDS); render again below if it created others.
    predicted = moto_cluster.predicted_seed(state["region"])
    if predicted:
        write_inventory(state_dir, state, sandbox_group_vars(state_dir, state, p, predicted))
    wait_http(state["endpoint_url"] + "/moto-api/", proc=moto_proc)
    timings["moto_ready"] = time.monotonic() - t0
    seed = moto_cluster.seed_environment(state["endpoint_url"], state["region"], p["vpc_cidr"],
                                         p["public_cidr"], p["private_cidr"], rng_seed=moto_cluster.MOTO_RNG_SEED)
    timings["seeded"] = time.monotonic() - t0
    identities = controller_identity(state["endpoint_url"], seed)
    state["aws"] = seed
    write_file(state_dir / "moto-fsx.json", json.dumps(moto_cluster.fsx_standins(
        state["endpoint_url"], state["region"], seed["vpc_id"], seed["private_subnet_id"], seed["security_group_id"],
        FAKE_FSX_LUSTRE_ID, FAKE_FSX_OPENZFS_VOLUME_ID)))
    group_vars = sandbox_group_vars(state_dir, state, p, seed)
    if predicted != {k: seed[k] for k in predicted or {}}:
        if predicted:
            log("moto created other ids than predicted; rendering the cluster config again")
            if renders[-1].wait(timeout=120) != 0:
                raise SandboxError("rendering the cluster config failed; see "
                                   f"{state_dir / 'logs' / 'render-config.log'}")
            vars_file = state_dir / "inventory" / "group_vars" / "all" / "sandbox.yml"
            vars_file.unlink()
            renders.append(start_render(state_dir, state, vars_file))
        write_inventory(state_dir, state, group_vars)
    moto_cluster.warm_up(state["endpoint_url"], state["region"])
    timings["warmed_up"] = time.monotonic() - t0
    text, source = finish_render(state_dir, renders[-1], group_vars)
    timings["rendered"] = time.monotonic() - t0
    if state.get("no_cluster"):
        # The VPC's router holds the head node's address in the namespaces: moto must not give it to an instance.
        registered = {"registration": None, "head_dna": None, "launch_templates": None, "node_roles": {},
                      "router_eni": moto_cluster.reserve_address(state["endpoint_url"], state["region"],
                                                                 seed["public_subnet_id"], p["head"]["ip"]),
                      "pcluster_bucket": moto_cluster.ensure_pcluster_bucket(state["endpoint_url"], state["region"])}
    else:
        registered = pcluster_resources.register(state["endpoint_url"], state["region"], state["cluster_name"],
                                                 p["head"]["ip"], text, seed, p["gpus_per_node"])
        timings["registered"] = time.monotonic() - t0
    moto_cluster.upload_node_setup_scripts(state["endpoint_url"], state["region"], yaml_load(text),
                                           str(ROOT / "roles" / "node_setup" / "files" / "hpc-pcluster-node-setup.sh"))
    identities.update(node_roles=registered["node_roles"],
                      ec2_service=iam_identities.create_service_identity(state["endpoint_url"]))
    timings["node_roles"] = time.monotonic() - t0
    return dict(registered, config_source=source, config_text=text, iam=identities)


def controller_identity(endpoint_url: str, seed: dict) -> dict:
    """The IAM user the controller signs as (env.sh): ParallelCluster's documented user policies and hpc.pcluster's
    own (sandbox/policies/). Returns state.json's "iam"."""
    import iam_identities
    user = iam_identities.create_user(endpoint_url, iam_identities.USER_NAME, iam_identities.user_policies(
        {"BootstrapBucket": seed["bootstrap_bucket"]}))
    return {"admin": {"user": iam_identities.ADMIN_USER, "arn": f"arn:aws:iam::{iam_identities.ACCOUNT_ID}:user"
                      f"{iam_identities.ADMIN_PATH}{iam_identities.ADMIN_USER}"}, "user": user}


def cluster_config_vars(state: dict, p: dict, seed: dict) -> dict:
    """The variables role hpc.pcluster.cluster_config renders the sandbox's cluster config from."""
    import real_account
    n = len(p["static"])
    return {
        "pcluster_cluster_name": state["cluster_name"],
        "pcluster_region": state["region"],
        "cluster_config_region": state["region"],
        "cluster_config_public_subnet_id": seed["public_subnet_id"],
        "cluster_config_private_subnet_id": seed["private_subnet_id"],
        "cluster_config_security_group_id": seed["security_group_id"],
        # SSH to the head node from inside the sandbox's VPC only, with the sandbox's login key.
        "cluster_config_ssh_allowed_ips": p["vpc_cidr"],
        "cluster_config_ssh_key_name": real_account.KEY_PAIR_NAME,
        "cluster_config_fsx_lustre_id": FAKE_FSX_LUSTRE_ID,
        "cluster_config_fsx_openzfs_volume_id": FAKE_FSX_OPENZFS_VOLUME_ID,
        "cluster_config_head_node_bootstrap_script": seed["head_node_bootstrap_script"],
        "cluster_config_compute_node_bootstrap_script": seed["compute_node_bootstrap_script"],
        "cluster_config_compute_instance_type": "g5.8xlarge",
        "cluster_config_compute_min_count": n,
        "cluster_config_compute_max_count": n + len(p["dynamic"]),
        **({"cluster_config_scaledown_idletime": p["scaledown_idletime"]} if p.get("scaledown_idletime") is not None else {}),
        "cluster_config_output_path": str(Path(state["state_dir"]) / "cluster-config.yaml"),
        # moto cannot dry-run launch templates: every ParallelCluster dryrun of the sandbox skips these two.
        "cluster_config_suppress_validators": SUPPRESS_VALIDATORS,
    }


def sandbox_group_vars(state_dir: Path, state: dict, p: dict, seed: dict) -> dict:
    """inventory/group_vars/all/sandbox.yml: the environment values from what moto was seeded with (what a
    user's cluster.yml holds; the sandbox-only settings are in sandbox_only.yml, real_account.py)."""
    environment = cluster_config_vars(dict(state, state_dir=str(state_dir)), p, seed)
    environment.pop("cluster_config_suppress_validators")
    return dict(environment, pcluster_endpoint_url=state["endpoint_url"], ansible_ssh_private_key_file=state["ssh_key"])


def up(args) -> int:
    check_platform()
    import boot
    import nodes
    state_dir = Path(args.state_dir).resolve()
    existing = load_state(state_dir)
    if existing:
        h = health(existing)
        if h["running"]:
            where = ("created by deploy.yml, not by up" if existing.get("no_cluster")
                     else f"head node {existing['head_ip']}")
            log(f"a sandbox is already running on {state_dir} (cluster {existing['cluster_name']}, {where}, "
                f"moto {existing['endpoint_url']}); nothing changed")
            return 0 if args.if_needed else EXIT_ALREADY_RUNNING
        if existing.get("status") == "starting" and pid_alive(existing.get("up_pid")):
            log(f"another `up` (pid {existing['up_pid']}) is starting a sandbox on {state_dir}; nothing changed")
            return 0 if args.if_needed else EXIT_ALREADY_RUNNING
        if existing.get("status") == "running" and h["processes_alive"]:
            raise SandboxError(f"the sandbox on {state_dir} runs but does not answer ({'; '.join(h['problems'])}); "
                               "nothing changed: try again, or `sandbox.py down` then `up`")
        log(f"cleaning up a stopped or broken sandbox in {state_dir} ({'; '.join(h['problems'])})")
        teardown(state_dir, existing)
    if args.compute_nodes < 1:
        raise SandboxError(f"--compute-nodes must be at least 1 (got {args.compute_nodes})")
    if not 0 <= args.dynamic_nodes <= 200:
        raise SandboxError(f"--dynamic-nodes must be between 0 and 200 (got {args.dynamic_nodes})")
    if args.gpus_per_node < 0:
        raise SandboxError(f"--gpus-per-node must be 0 or more (got {args.gpus_per_node})")
    if args.scaledown_idletime is not None and args.scaledown_idletime < -1:
        raise SandboxError(f"--scaledown-idletime must be -1 or more (got {args.scaledown_idletime}), as "
                           f"ParallelCluster's ScaledownIdletime")
    if not 1 <= args.clustermgtd_loop_time <= 600:
        raise SandboxError(f"--clustermgtd-loop-time must be between 1 and 600 seconds (got {args.clustermgtd_loop_time})")
    if args.scaledown_idletime == -1 and args.dynamic_nodes:
        # ParallelCluster writes SuspendTime=-1, which turns Slurm's power saving off: the collection's
        # validation refuses -1 with dynamic nodes, whose ResumeProgram would never run.
        raise SandboxError(f"--scaledown-idletime -1 turns Slurm's power saving off (SuspendTime=-1), so the "
                           f"{args.dynamic_nodes} dynamic node(s) of --dynamic-nodes would never be powered up: give "
                           f"1 or more minutes, or leave it out ({DYNAMIC_SCALEDOWN_IDLETIME} with dynamic nodes)")
    import rootfs
    problem = rootfs.check_state_dir(state_dir)
    if problem:
        raise SandboxError(problem)
    try:
        ami.cache_dir(args.cache_dir)
    except ami.AmiError as exc:
        raise SandboxError(str(exc)) from None

    started = time.monotonic()
    # A state dir holding only the logs of a failed `up` counts as the sandbox's own.
    created_state_dir = not state_dir.exists() or set(os.listdir(state_dir)) <= {"logs"}
    shutil.rmtree(state_dir / "logs", ignore_errors=True)
    with Registry() as reg:
        index = reg.claim(str(state_dir))
        reg.note_created([], not os.path.isdir("/run/netns"))
    p = nodes.plan(index, args.compute_nodes, args.gpus_per_node, args.cluster_name, args.dynamic_nodes)
    p["scaledown_idletime"] = args.scaledown_idletime
    if p["scaledown_idletime"] is None and p["dynamic"]:
        # The collection's default (-1, the guide's) is for static nodes only.
        p["scaledown_idletime"] = DYNAMIC_SCALEDOWN_IDLETIME
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    for sub in ("logs", "ssh", "nodes", "roots", "shared", "cp", "ansible-tmp"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    state = {
        "status": "starting",
        "up_pid": os.getpid(),
        "index": index,
        "state_dir": str(state_dir),
        "created_state_dir": created_state_dir,
        "cluster_name": args.cluster_name,
        "region": args.region,
        "head_ip": p["head"]["ip"],
        "head_name": p["head"]["name"],
        "host_ip": p["host_ip"],
        "host_veth": p["host_veth"],
        "vpc_cidr": p["vpc_cidr"],
        "netns_prefix": p["netns_prefix"],
        # The head node's; each instance the hypervisor boots has one named <netns_prefix><instance id>.
        "netns": [p["head"]["netns"]],
        "prefix_len": p["prefix_len"],
        # The Slurm names of the static and dynamic compute nodes; the static nodes' current holders and
        # addresses (holders, compute_ips) follow their instances (hypervisor.py); every instance's node:
        # nodes.json.
        "compute_nodes": p["static"],
        "dynamic_nodes": p["dynamic"],
        "compute_ips": [""] * len(p["static"]),
        "nodes": [{"name": p["head"]["name"], "ip": p["head"]["ip"], "netns": p["head"]["netns"], "role": "head"}]
        + [{"name": name, "ip": "", "netns": "", "role": "compute"} for name in p["static"]]
        + [{"name": name, "ip": "", "netns": "", "role": "dynamic"} for name in p["dynamic"]],
        "node_endpoint_url": f"http://{p['head']['ip']}:{boot.ENDPOINT_PORT}",
        "gpus_per_node": args.gpus_per_node,
        "queue": nodes.QUEUE,
        "compute_resource": nodes.COMPUTE_RESOURCE,
        "ssh_key": str(state_dir / "ssh" / "id_ed25519"),
        "known_hosts": str(state_dir / "ssh" / "known_hosts"),
        "inventory_dir": str(state_dir / "inventory"),
        "ansible_control_path_dir": str(state_dir / "cp"),
        "slurm_job_completions": nodes.SLURM_JOB_COMPLETIONS,
        "slurm_conf": "/opt/slurm/etc/slurm.conf",
        "suppress_validators": SUPPRESS_VALIDATORS,
        "verify_not_available": VERIFY_NOT_AVAILABLE,
        "holders": {},
        "pcluster_version": "3.16.1",
        # up --no-cluster: no registered cluster; the head node's holder is the VPC's network only (its bridge,
        # the proxy, the nodes' AWS endpoint), and a cluster's head node is an instance the hypervisor boots.
        "no_cluster": bool(getattr(args, "no_cluster", False)),
        # The nodes' instance metadata service (imds.py, started before any node boots): where its records are.
        # The nodes get their instance roles' credentials from it.
        "imds": {"records": str(state_dir / "imds")},
        # clustermgtd's loop_time on the cluster's head node (hypervisor.py gives it to the nodes it boots).
        "clustermgtd_loop_time": args.clustermgtd_loop_time,
    }
    port = free_port()
    state["endpoint_url"] = f"http://127.0.0.1:{port}"
    save_state(state_dir, state)
    try:
        return _up(args, state_dir, state, p, started)
    except BaseException as exc:
        msg = str(exc) if isinstance(exc, (SandboxError, RuntimeError)) else repr(exc)
        log(f"up failed: {msg}")
        log(f"tearing down what was started; its logs stay in {state_dir / 'logs'}")
        teardown(state_dir, load_state(state_dir) or state, keep_logs=True)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return EXIT_FAILED


def start_hypervisor(state_dir: Path) -> subprocess.Popen:
    """The hypervisor (hypervisor.py), in a process group of its own; down kills it."""
    with open(state_dir / "logs" / "hypervisor.log", "ab") as out:
        return subprocess.Popen([sys.executable, str(HERE / "hypervisor.py"), "--state-dir", str(state_dir)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start_imds(state_dir: Path) -> subprocess.Popen:
    """The instance metadata service of every node (imds.py), in a process group of its own; down kills it."""
    with open(state_dir / "logs" / "imds.log", "ab") as ilog:
        return subprocess.Popen([sys.executable, str(HERE / "imds.py"), "serve", "--state-dir", str(state_dir)],
                                stdin=subprocess.DEVNULL, stdout=ilog, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process_group(pid) -> None:
    """SIGKILL a process group the sandbox started (moto, the hypervisor, ...) and wait for its leader."""
    if not pid_alive(pid):
        return
    try:
        os.killpg(pid, 9)
    except OSError:
        pass
    for _attempt in range(250):
        if not pid_alive(pid):
            break
        time.sleep(0.01)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def start_moto(state_dir: Path, state: dict) -> subprocess.Popen:
    """moto, with only the ParallelCluster AMI loaded (fast start, and found by pcluster's AMI search)."""
    import moto_cluster
    amis = state_dir / "moto-amis.json"
    amis.write_text(json.dumps([moto_cluster.official_ami_record()]))
    # IAM enforced from the first request (moto_server.py creates the admin first; iam_moto.py). The wait condition
    # handles' URLs: where the nodes reach moto (the host reaches it there too).
    moto_env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true", MOTO_AMIS_PATH=str(amis),
                    SANDBOX_FSX_PATH=str(state_dir / "moto-fsx.json"), INITIAL_NO_AUTH_ACTION_COUNT="0",
                    SANDBOX_CFN_SIGNAL_BASE=state["node_endpoint_url"],
                    # Image builds go to the image builder in the hypervisor's process (image_layers.py).
                    SANDBOX_IMAGE_BUILDS=str(state_dir / "image-builds"))
    with open(state_dir / "logs" / "moto.log", "wb") as mlog:
        port = state["endpoint_url"].rsplit(":", 1)[1]
        return subprocess.Popen([sys.executable, str(HERE / "moto_server.py"), "-H", "127.0.0.1", "-p", port],
                                stdin=subprocess.DEVNULL, stdout=mlog, stderr=subprocess.STDOUT, env=moto_env,
                                start_new_session=True)


def measure_network(state: dict) -> dict:
    """One TCP stream between two compute nodes (netbench.py): the figure the MPI all-reduce is judged against."""
    import netbench
    names = state["compute_nodes"][:2]
    return netbench.measure(names, [state["holders"][n] for n in names], state["compute_ips"][:2])


def _up(args, state_dir: Path, state: dict, p: dict, started: float) -> int:
    import boot
    import container_chain
    import moto_cluster
    import netbench
    import real_account
    timings = {}
    moto_proc = start_moto(state_dir, state)
    state["moto_pid"] = moto_proc.pid
    save_state(state_dir, state)
    # The AMI layer and the container image (built once per machine), then the keys.
    state["containers"] = container_chain.prepare(args.vendor_dir, args.cache_dir, state_dir, p, state["region"],
                                                  ami.running_layers, log)
    # ECR's private DNS names, in every node's /etc/hosts (the hypervisor reads them from the state too).
    p["extra_hosts"] = state["extra_hosts"] = container_chain.hosts_lines(state["containers"])
    state["verify_not_available"] = verify_not_available(state["containers"])
    save_state(state_dir, state)
    timings["ami_layer"] = time.monotonic() - started
    head_dir = state_dir / "nodes" / p["head"]["name"]
    head_dir.mkdir(parents=True, exist_ok=True)
    keygens = [subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for comment, path in (("hpc-pcluster-sandbox", state["ssh_key"]),
                                     (p["head"]["name"], str(head_dir / "ssh_host_ed25519_key")))]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    aws_future = pool.submit(aws_side, state_dir, state, moto_proc, p, timings)
    try:
        try:
            head_pid = boot.start_head(state_dir, state, p, keygens, lambda st: save_state(state_dir, st))
            timings["head_node"] = time.monotonic() - started
            aws = aws_future.result()
        except boot.BootError as exc:
            raise SandboxError(str(exc)) from None
        state.update(registration=aws["registration"], config_source=aws["config_source"],
                     launch_templates=aws["launch_templates"], cluster_config_path=str(state_dir / "cluster-config.yaml"),
                     head_instance_id=(aws["registration"] or {}).get("head_instance_id"), iam=aws["iam"])
        # The nodes' instance metadata service, before the head node's bootstrap calls AWS with its role.
        state["imds_pid"] = start_imds(state_dir).pid
        save_state(state_dir, state)
        # The registry (it needs moto's token) starts while the head node boots; only its thread saves the state
        # meanwhile.
        registry_future = pool.submit(container_chain.start_registry, state_dir, state, head_pid,
                                      lambda st: save_state(state_dir, st))
        if not state.get("no_cluster"):
            try:
                boot.boot_head(state_dir, describe_head_instance(state, state["head_instance_id"]), aws["head_dna"])
            except (boot.BootError, RuntimeError) as exc:
                raise SandboxError(f"{exc} (see {state_dir / 'logs'}: boot-<instance>.log)") from None
            timings["slurm_started"] = time.monotonic() - started
        registry_future.result()
        timings["registry"] = time.monotonic() - started
    finally:
        pool.shutdown(wait=True)
    # The sandbox's login key as the EC2 key pair the config names, before any instance is launched with it.
    real_account.import_key_pair(moto_cluster.client("ec2", state["endpoint_url"], state["region"]),
                                 state["ssh_key"] + ".pub")
    if state.get("no_cluster"):
        return _up_without_cluster(state_dir, state, p, started, timings)
    # From here on the hypervisor changes state.json too: only update_state.
    try:
        update_state(state_dir, {"hypervisor_pid": start_hypervisor(state_dir).pid})
        # As a create waits for it (the head node's wait_static_fleet_running): clustermgtd launches the static
        # nodes, the hypervisor boots them, each runs its bootstrap and its slurmd registers.
        wait_static_fleet(state_dir, head_pid, p["static"])
    except (boot.BootError, RuntimeError) as exc:
        raise SandboxError(f"{exc} (see {state_dir / 'logs'}: hypervisor.log, boot-<instance>.log)") from None
    timings["static_nodes_idle"] = time.monotonic() - started
    state = load_state(state_dir)
    network_vars = {}
    if len(p["static"]) >= 2:
        # Measured when nothing else of `up` runs: the figure the MPI all-reduce is judged against.
        state["network"] = measure_network(state)
        network_vars = netbench.verify_vars(state["network"], SANDBOX_MPI_MIN_FRACTION)
        timings["network_measured"] = time.monotonic() - started
    write_sandbox_only(state_dir, state, p, network_vars)
    state = update_state(state_dir, {"status": "running", "up_seconds": round(time.monotonic() - started, 2),
                                     "timings": {k: round(v, 2) for k, v in timings.items()},
                                     "network": state.get("network")})
    write_env(state_dir, state)
    log(f"up in {state['up_seconds']} s: cluster {state['cluster_name']} in {state['region']}, "
        f"moto {state['endpoint_url']}, head node {state['head_ip']} ({state['head_name']}), "
        f"{len(p['static'])} static compute node(s) launched by clustermgtd "
        f"({len(p['dynamic'])} dynamic) with {p['gpus_per_node']} stand-in GPU(s) each; config from {state['config_source']}")
    log(f"use it: . {state_dir / 'env.sh'}; ssh -i $SANDBOX_SSH_KEY -o UserKnownHostsFile=$SANDBOX_KNOWN_HOSTS "
        f"root@$SANDBOX_HEAD_IP sinfo")
    for line in real_account.seeded_values(state, yaml_load((state_dir / "inventory" / "group_vars" / "all"
                                                             / "sandbox.yml").read_text())):
        log(line)
    return 0


def write_sandbox_only(state_dir: Path, state: dict, p: dict, network_vars: dict) -> None:
    """sandbox_only.yml: what only the sandbox needs, beside the seeded account's values (real_account.py)."""
    import container_chain
    import real_account
    write_file(real_account.sandbox_only_path(state_dir), "# Written by sandbox/sandbox.py up: what only the "
               "sandbox needs (sandbox/README.md, \"Trying the real-account steps here\").\n" + yaml_dump(
                   real_account.sandbox_only_vars(state, p["vpc_cidr"], SUPPRESS_VALIDATORS, container_chain.group_vars(
                       state["containers"]), network_vars)),
               0o600)


def _up_without_cluster(state_dir: Path, state: dict, p: dict, started: float, timings: dict) -> int:
    """up --no-cluster, once moto, the config and the VPC's network run: the hypervisor (it boots the instances a
    cluster's stack and its daemons launch), and the network figure, measured between two namespaces on the VPC's
    bridge as it is between two compute nodes."""
    import netbench
    update_state(state_dir, {"hypervisor_pid": start_hypervisor(state_dir).pid})
    network = netbench.measure_bridge(state, p)
    write_sandbox_only(state_dir, state, p, netbench.verify_vars(network, SANDBOX_MPI_MIN_FRACTION))
    timings["network_measured"] = time.monotonic() - started
    state = update_state(state_dir, {"status": "running", "up_seconds": round(time.monotonic() - started, 2),
                                     "timings": {k: round(v, 2) for k, v in timings.items()}, "network": network})
    write_env(state_dir, state)
    log(f"up in {state['up_seconds']} s without a cluster: moto {state['endpoint_url']} in {state['region']} with the "
        f"network, buckets and AMI; deploy.yml creates cluster {state['cluster_name']} (config from "
        f"{state['config_source']})")
    log(f"use it: . {state_dir / 'env.sh'}; ansible-playbook -i {state_dir / 'inventory'} playbooks/deploy.yml")
    return 0


def wait_static_fleet(state_dir: Path, head_pid: int, names: list) -> None:
    """Until every static node is idle in Slurm and its bootstrap has ended (the hypervisor has recorded it)."""
    import nodes
    deadline = time.monotonic() + STATIC_FLEET_TIMEOUT
    while True:
        state = load_state(state_dir)
        if not pid_alive(state.get("hypervisor_pid")):
            raise SandboxError("the hypervisor exited while the static compute nodes booted")
        left = max(1.0, deadline - time.monotonic())
        nodes.wait_idle(head_pid, names, timeout=left)
        if all(name in state["holders"] for name in names):
            return
        if time.monotonic() > deadline:
            raise SandboxError(f"the static compute nodes' bootstraps did not end within {STATIC_FLEET_TIMEOUT:.0f} s")
        time.sleep(0.25)


def describe_head_instance(state: dict, instance_id: str) -> dict:
    import moto_cluster
    ec2 = moto_cluster.client("ec2", state["endpoint_url"], state["region"])
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


# --------------------------------------------------------------------------- down

def teardown(state_dir: Path, state: dict | None, keep_logs: bool = False) -> list:
    """Stop everything of one instance and remove its files (but logs/ with keep_logs).
    Returns leftover problems."""
    import nodes
    problems = []
    state = state or {}
    for key in ("hypervisor_pid", "forwarder_pid", "proxy_pid", "imds_pid", "moto_pid"):
        stop_process_group(state.get(key))
    for pid in state.get("containers", {}).get("registry", {}).get("pids", []):
        stop_process_group(pid)
    # Every node: the head, the base and every instance the hypervisor booted (their namespaces carry the prefix).
    import state_file
    records = state_file.load(state_dir, state_file.NODES) or {}
    holders = list(state.get("holders", {}).values()) + [r.get("pid") for r in records.values()]
    prefix = state.get("netns_prefix")
    netns = set(state.get("netns", [])) | {r["netns"] for r in records.values() if r.get("netns")}
    if prefix and os.path.isdir("/run/netns"):
        netns |= {name for name in os.listdir("/run/netns") if name.startswith(prefix)}
    survivors = nodes.kill_all([pid for pid in holders if pid], sorted(netns))
    if survivors:
        problems.append(f"processes survived SIGKILL: {survivors}")
    cgroup_root = state.get("containers", {}).get("docker_cgroup_root")
    if cgroup_root:
        problems += nodes.remove_cgroups(cgroup_root)
    veth = state.get("host_veth")
    if veth and os.path.exists(f"/sys/class/net/{veth}"):
        nodes.run(["ip", "link", "delete", veth], check=False)
    if state.get("vpc_cidr"):
        nodes.remove_host_routes(state["vpc_cidr"])
    with Registry() as reg:
        reg.release(state.get("index"))
    if state_dir.exists() and (state.get("state_dir") in (None, str(state_dir))):
        if state.get("created_state_dir", True) and not keep_logs:
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            ours = ["ssh", "nodes", "roots", "shared", "imds", "build", "cp", "ansible-tmp", "inventory", "env.sh",
                    "admin-env.sh", "state.json", "nodes.json", "state.lock", "registry", "moto-amis.json",
                    "moto-fsx.json", "cluster-config.yaml", "sandbox-vars.yml.tmp"] + ([] if keep_logs else ["logs"])
            for sub in ours:
                path = state_dir / sub
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
    return problems


def down(args) -> int:
    check_platform()
    targets = []
    if args.all:
        for index, entry in Registry.entries().items():
            targets.append(Path(entry["state_dir"]))
        targets.append(Path(args.state_dir).resolve())
    else:
        targets.append(Path(args.state_dir).resolve())
    rc = 0
    seen = set()
    for state_dir in targets:
        if state_dir in seen:
            continue
        seen.add(state_dir)
        state = load_state(state_dir)
        if state is None:
            if not args.all:
                log(f"no sandbox recorded in {state_dir}; nothing to do")
            continue
        t0 = time.monotonic()
        problems = teardown(state_dir, state)
        if problems:
            rc = EXIT_FAILED
            log(f"down {state_dir}: {'; '.join(problems)}")
        else:
            log(f"down in {time.monotonic() - t0:.2f} s: {state_dir}")
    if args.all:
        rc = max(rc, sweep())
    return rc


def sweep() -> int:
    """After down --all: remove any sandbox namespace or veth still present (e.g. a crashed up)."""
    import nodes
    netns = [n for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else []) if n.startswith("pcsbx")]
    if netns:
        nodes.kill_all([], netns)
    for link in os.listdir("/sys/class/net"):
        if link.startswith("pcsbx"):
            nodes.run(["ip", "link", "delete", link], check=False)
    nodes.remove_host_routes()
    with Registry() as reg:
        for index in list(Registry.entries()):
            reg.release(index)
        reg.release(None)
    return 0


# --------------------------------------------------------------------------- status

def status(args) -> int:
    state_dir = Path(args.state_dir).resolve()
    state = load_state(state_dir)
    if state is None:
        if args.json:
            print(json.dumps({"running": False, "state_dir": str(state_dir)}))
        else:
            log(f"not running (no sandbox in {state_dir}); start it with `make sandbox-up`")
        return EXIT_NOT_RUNNING
    h = health(state)
    if args.json:
        print(json.dumps(dict(state, **h), indent=2, sort_keys=True))
    elif h["running"]:
        log(f"running: cluster {state['cluster_name']} ({state['region']}), moto {state['endpoint_url']}, "
            f"head node {state['head_ip']}, compute nodes {', '.join(state['compute_nodes'])}; "
            f"state in {state_dir}")
    else:
        log(f"not healthy: {'; '.join(h['problems']) or state.get('status')}; run `sandbox.py down` then `up`")
    return 0 if h["running"] else EXIT_NOT_RUNNING


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start moto and the Slurm cluster, register the cluster")
    p_up.add_argument("--compute-nodes", type=int, default=2, help="static compute nodes (default 2)")
    p_up.add_argument("--dynamic-nodes", type=int, default=0,
                      help="dynamic compute nodes, powered up by Slurm for jobs (default 0)")
    p_up.add_argument("--gpus-per-node", type=int, default=1, help="stand-in GPUs (GRES gpu) per compute node")
    p_up.add_argument("--scaledown-idletime", type=int, default=None,
                      help="the config's ScaledownIdletime in minutes (default: the collection's, -1, which turns "
                           "Slurm's power saving off; with --dynamic-nodes %d, and -1 is refused)"
                           % DYNAMIC_SCALEDOWN_IDLETIME)
    p_up.add_argument("--no-cluster", action="store_true",
                      help="the account, network, buckets and AMI only: no cluster (deploy.yml creates it through "
                           "ParallelCluster's template)")
    p_up.add_argument("--clustermgtd-loop-time", type=int, default=CLUSTERMGTD_LOOP_TIME, metavar="SECONDS",
                      help="how often ParallelCluster's clustermgtd runs its loop on the head node (default %d, "
                           "ParallelCluster's; the tests that watch it replace nodes or stop the fleet give 10)"
                           % CLUSTERMGTD_LOOP_TIME)
    p_up.add_argument("--cluster-name", default=DEFAULT_CLUSTER_NAME)
    p_up.add_argument("--region", default=DEFAULT_REGION)
    p_up.add_argument("--if-needed", action="store_true", help="exit 0 if a sandbox already runs here")
    p_up.add_argument("--vendor-dir", default=None,
                      help="the vendored Enroot and Pyxis source archives (default: $HPC_PCLUSTER_VENDOR_DIR, "
                           "else ../shared/vendor next to the checkout)")
    p_up.add_argument("--cache-dir", default=None,
                      help="where the AMI layer is built once per machine (default: $HPC_PCLUSTER_SANDBOX_CACHE, "
                           "else /var/cache/hpc-pcluster-sandbox)")
    p_down = sub.add_parser("down", help="stop everything and remove the state dir")
    p_down.add_argument("--all", action="store_true", help="every sandbox instance on this machine")
    p_status = sub.add_parser("status", help="exit 0 if the sandbox runs and answers")
    p_status.add_argument("--json", action="store_true")
    for p in (p_up, p_down, p_status):
        p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    args = parser.parse_args(argv)
    try:
        return {"up": up, "down": down, "status": status}[args.command](args)
    except SandboxError as exc:
        log(f"error: {exc}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
