"""The sandbox as hypervisor: the EC2 instances moto runs in the sandbox's VPC are its nodes.

Whoever launches an instance of a ParallelCluster cluster in the sandbox's VPC - ParallelCluster's
slurm_resume and clustermgtd with the cluster's launch templates, or anything else - this process sees it in
moto (DescribeInstances every half second) and boots it as EC2 would boot it from ParallelCluster's AMI:

1. a node of its own: a holder process with its network, mount and UTS namespaces and a new root over the
   AMI layer (rootfs.py), on the VPC's bridge with the private IP moto gave the instance;
2. what the AMI and EC2 give an instance before its user data runs: ``/etc/hosts``, the cluster's munge key,
   apt's way out (proxy.py), munged and sshd (the nodes have no init system; dockerd too when the instance's
   image carries it, as its docker.service would start), the AWS endpoint of the sandbox
   (moto, through forwarder.py) in the node's AWS configuration, and its instance metadata (below);
3. its user data: ``dna.json`` from the cloud-config part of the instance's user data (ParallelCluster's
   ``write_files``) into ``/etc/chef/dna.json``, then the bootstrap (cookbook/bootstrap.py, the sandbox's
   stand-in for the cookbook's recipes) inside the node, within the user data's ``timeout``; a bootstrap that
   fails runs ``shutdown -h now`` in the node, as ParallelCluster's user data does.

An instance that stops or terminates (in moto) stops its node: every process in its namespaces, its root, its
network namespace. A node whose ``shutdown`` asks to power off (bin/shutdown, through ``<node>/power``) is
stopped or terminated in moto as the instance's InstanceInitiatedShutdownBehavior says (ParallelCluster's
launch templates: terminate), which stops the node.

Instance metadata: the instance's identity document is copied into the node (``/run/sandbox/node/identity.json``)
and ``<state>/imds/<instance-id>.json`` (0600) describes the instance for an instance metadata service in
the node's namespace; it is removed when the instance ends.

The records of the running nodes are ``<state>/nodes.json`` (instance id -> holder, address, namespace,
Slurm node name once the node knows it); one log line per step in ``logs/hypervisor.log``, each node's
bootstrap output in ``logs/boot-<instance id>.log``. The same process moves the compute fleet status of
clusters registered without nodes (headless_fleet.py). It exits by itself when the sandbox's network holder
(the head node) is gone.

    hypervisor.py --state-dir DIR           (started by sandbox.py up)
"""

from __future__ import annotations

import argparse
import base64
import email
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import image_layers
import imds
import moto_cluster
import nodes
import rootfs
import stack_head_node
import state_file

HERE = Path(__file__).resolve().parent
# The node-side stand-ins (clusterstatusmgtd for the clusters without nodes) are modules of their own directory.
sys.path.append(str(HERE / "cookbook"))
# How often the hypervisor asks moto for the VPC's instances: every POLL seconds while instances come, go or boot,
# every IDLE_POLL seconds once nothing has changed for QUIET seconds (an idle sandbox's describe calls were most of
# its moto server's work).
POLL = 0.5
IDLE_POLL = 4.0
QUIET = 10.0
ALIVE = ("pending", "running")
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOTSTRAP = f"{rootfs.NODE_SANDBOX_DIR}/cookbook/bootstrap.py"
DEFAULT_BOOTSTRAP_TIMEOUT = 1800
_RECORDS = threading.Lock()


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {msg}", flush=True)


# --------------------------------------------------------------------------- what EC2 knows of an instance

def tags(instance: dict) -> dict:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def dna_from_user_data(encoded: str | None) -> dict | None:
    """dna.json (merged with extra.json, as ParallelCluster's bootstrap merges them) from the cloud-config part of
    a ParallelCluster user data; None when the user data has none."""
    import yaml  # pylint: disable=import-outside-toplevel

    if not encoded:
        return None
    message = email.message_from_bytes(base64.b64decode(encoded))
    for part in message.walk() if message.is_multipart() else [message]:
        if part.get_content_type() != "text/cloud-config":
            continue
        files = {Path(f["path"]).name: f.get("content", "") for f in (yaml.safe_load(part.get_payload()) or {}).get(
            "write_files", [])}
        if "dna.json" in files:
            return _merge(json.loads(files["dna.json"]), json.loads(files.get("extra.json") or "{}"))
    return None


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def user_data_timeout(encoded: str | None) -> int:
    """The bootstrap timeout ParallelCluster's user data runs its bootstrap with (``timeout N bootstrap.sh``)."""
    text = base64.b64decode(encoded).decode(errors="replace") if encoded else ""
    found = re.search(r"timeout (\d+) \S*bootstrap\.sh", text)
    return int(found.group(1)) if found else DEFAULT_BOOTSTRAP_TIMEOUT


def identity_document(instance: dict, region: str) -> dict:
    """The instance identity document IMDS serves for an instance."""
    return {"instanceId": instance["InstanceId"], "privateIp": instance["PrivateIpAddress"], "region": region,
            "availabilityZone": instance["Placement"]["AvailabilityZone"], "instanceType": instance["InstanceType"],
            "imageId": instance["ImageId"], "accountId": moto_cluster.MOTO_ACCOUNT_ID,
            "pendingTime": instance["LaunchTime"].strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(
                instance["LaunchTime"], "strftime") else str(instance["LaunchTime"]),
            "architecture": "x86_64"}


def imds_record(instance: dict, region: str, pid: int, hostname: str) -> dict:
    """<state>/imds/<instance-id>.json: what an instance metadata service in the node's namespace serves."""
    return {"instance_id": instance["InstanceId"], "netns": f"/proc/{pid}/ns/net",
            "private_ip": instance["PrivateIpAddress"], "hostname": hostname, "region": region,
            "availability_zone": instance["Placement"]["AvailabilityZone"], "instance_type": instance["InstanceType"],
            "ami_id": instance["ImageId"], "instance_profile_arn": (instance.get("IamInstanceProfile") or {}).get("Arn", "")}


# --------------------------------------------------------------------------- the sandbox

class Sandbox:
    """What booting a node needs of a running sandbox (its state.json)."""

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.state = state_file.load(self.state_dir)
        self.region = self.state["region"]
        self.endpoint_url = self.state["endpoint_url"]

    def ec2(self):
        return moto_cluster.client("ec2", self.endpoint_url, self.region)

    @property
    def network_pid(self) -> int:
        """The holder whose namespace holds the VPC's bridge (the head node of the sandbox's cluster)."""
        return self.state["holders"]["head"]

    def node_dir(self, instance_id: str) -> Path:
        return self.state_dir / "nodes" / instance_id

    def records(self) -> dict:
        return state_file.load(self.state_dir, state_file.NODES) or {}

    def record(self, instance_id: str, **values) -> None:
        def change(data):
            entry = data.setdefault(instance_id, {})
            entry.update({k: v for k, v in values.items() if v is not None})
        with _RECORDS:
            state_file.update(self.state_dir, change, state_file.NODES)

    def forget(self, instance_id: str) -> dict:
        removed = {}

        def change(data):
            removed.update(data.pop(instance_id, {}))
        with _RECORDS:
            state_file.update(self.state_dir, change, state_file.NODES)
        return removed


def node_layout(state_dir: Path, state: dict, name: str, image_id: str | None = None) -> dict:
    """Where node name's root is built (rootfs.start_node: <state>/roots/<name>), over which layers (image_id's when
    it is a custom image the sandbox built: image_layers.py, then the AMI layer) and what of the machine it sees
    under /run/sandbox: the logs, its own directory <state>/nodes/<name> (sshd files, identity) and power
    button, the login key, sandbox/bin and sandbox/cookbook."""
    inside = rootfs.NODE_SANDBOX_DIR
    node_dir = Path(state_dir) / "nodes" / name
    (node_dir / "power").mkdir(parents=True, exist_ok=True)
    return {"shared": str(Path(state_dir) / "shared"), "roots": str(Path(state_dir) / "roots"),
            "root_name": name, "ami": state["containers"]["ami"]["path"],
            "images": image_layers.layers_of(state_dir, image_id),
            "binds": [(str(Path(state_dir) / "logs"), f"{inside}/logs", "rw"),
                      (str(node_dir), f"{inside}/node", "ro"),
                      (str(node_dir / "power"), f"{inside}/power", "rw"),
                      (str(Path(state_dir) / "ssh" / "authorized_keys"), f"{inside}/authorized_keys", "ro"),
                      (str(HERE / "bin"), f"{inside}/bin", "ro"),
                      (str(HERE / "cookbook"), f"{inside}/cookbook", "ro"),
                      (str(stack_head_node.NODE_DIR), stack_head_node.NODE_CFN, "ro")]}


def aws_files(sandbox: Sandbox) -> dict:
    """The node's AWS configuration: the sandbox's AWS (moto through the forwarder in the VPC) as its endpoint.
    No credentials file: the node's calls sign with its instance role's, from the instance metadata service in
    its namespace (imds.py), as on EC2."""
    config = f"[default]\nregion = {sandbox.region}\nendpoint_url = {sandbox.state['node_endpoint_url']}\n"
    return {"/root/.aws/config": (config, 0o600)}


def sandbox_settings(sandbox: Sandbox) -> dict:
    """The sandbox's own settings for the node-side code (cookbook/node_configs.py, SETTINGS_FILE)."""
    import node_configs  # pylint: disable=import-outside-toplevel  # cookbook/, on sys.path above

    settings = {"clustermgtd_loop_time": sandbox.state.get("clustermgtd_loop_time")}
    return {node_configs.SETTINGS_FILE: (json.dumps({k: v for k, v in settings.items() if v is not None}), 0o644)}


def write_in(pid: int, files: dict) -> None:
    """Write {path: (text or bytes, mode)} inside the node held by pid."""
    for path, (content, mode) in files.items():
        target = Path(f"/proc/{pid}/root{path}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        os.chmod(target, mode)


def write_imds(sandbox: Sandbox, instance: dict, pid: int, hostname: str) -> None:
    """The instance's record for the instance metadata service (imds.py), which answers in the node's namespace
    before anything in it calls AWS (register waits for it)."""
    imds.register(sandbox.state_dir, imds_record(instance, sandbox.region, pid, hostname))


def known_hosts(sandbox: Sandbox, ip: str, public_key: str | None) -> None:
    """Replace ip's line of the sandbox's known_hosts (none when public_key is None)."""
    path = Path(sandbox.state["known_hosts"])
    with state_file.locked(sandbox.state_dir):
        lines = [line for line in path.read_text().splitlines() if line.split(" ", 1)[0].split(",")[0] != ip]
        if public_key:
            lines.append(f"{ip} {public_key}")
        path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- booting and stopping nodes

def start_services(pid: int, ip: str, node_dir: Path) -> None:
    """munged and sshd, as the AMI's services start them; dockerd when the instance's image carries it (a custom
    image baked with the docker role), as its enabled docker.service starts at boot, beside the user data."""
    inside = rootfs.NODE_SANDBOX_DIR
    nodes.write(str(node_dir / "sshd_config"), nodes.sshd_config(f"{inside}/node", f"{inside}/authorized_keys", ip), 0o600)
    nodes.start_munge(pid)
    nodes.start_sshd(pid, f"{inside}/node/sshd_config", f"{inside}/logs/sshd-{node_dir.name}.log")
    if os.path.exists(f"/proc/{pid}/root/usr/sbin/dockerd"):
        nodes.run(nodes.nsenter(pid, ["sh", "-c", f"{inside}/bin/docker-service start </dev/null "
                                      f">>{inside}/logs/docker-service-{node_dir.name}.log 2>&1 &"]))


def instance_files(sandbox: Sandbox, instance: dict, pid: int, dna: dict | None, node_dir: Path) -> None:
    """What EC2 gives an instance before its user data runs: its identity (and metadata), its user data's dna.json
    (none for a stack's head node: its cfn-init writes it), the AWS configuration of the sandbox."""
    nodes.write(str(node_dir / "identity.json"), json.dumps(identity_document(instance, sandbox.region), indent=2), 0o644)
    write_in(pid, {**aws_files(sandbox), **sandbox_settings(sandbox),
                   **({"/etc/chef/dna.json": (json.dumps(dna, indent=2), 0o644)} if dna else {})})
    # Its instance profile as it is now, not as first seen: a profile associated right after RunInstances (a
    # stack's instance) is the instance's when its user data runs, as on EC2.
    current = sandbox.ec2().describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][0]
    instance = dict(instance, IamInstanceProfile=current.get("IamInstanceProfile") or instance.get("IamInstanceProfile"))
    write_imds(sandbox, instance, pid, "ip-" + instance["PrivateIpAddress"].replace(".", "-"))


def prepare_instance(sandbox: Sandbox, instance: dict, pid: int, dna: dict | None, head_ip: str) -> None:
    """Everything an instance has before its user data runs (the holder pid is up and networked)."""
    node_dir = sandbox.node_dir(instance["InstanceId"])
    proxy = sandbox.state["containers"]["proxy"]
    munge_key = Path(f"/proc/{sandbox.network_pid}/root/etc/munge/munge.key").read_bytes()
    hosts = nodes.hosts_file(head_ip, "ip-" + head_ip.replace(".", "-"), sandbox.state.get("extra_hosts", []))
    nodes.populate_node(pid, hosts, munge_key, None if proxy["note"] else proxy["url"])
    instance_files(sandbox, instance, pid, dna, node_dir)
    start_services(pid, instance["PrivateIpAddress"], node_dir)


def run_bootstrap(sandbox: Sandbox, pid: int, instance_id: str, timeout: int, args=()) -> int:
    """The user data's bootstrap inside the node: cookbook/bootstrap.py within timeout, ``shutdown -h now`` when it
    fails (ParallelCluster's error_exit). Returns its exit status; its output goes to logs/boot-<instance>.log."""
    python = f"{sandbox.state['containers']['ami']['virtualenvs']['cookbook']}/bin/python"
    script = ('limit=$1; shift; timeout "$limit" "$@" || { rc=$?; echo "Bootstrap failed (exit status $rc): shutting down"; '
              'shutdown -h now; exit "$rc"; }')
    argv = nodes.nsenter(pid, ["env", "-i", f"PATH={NODE_PATH}", "HOME=/root", "LANG=C.UTF-8", "/bin/sh", "-c", script,
                               "user-data", str(timeout), python, BOOTSTRAP, *args])
    with open(sandbox.state_dir / "logs" / f"boot-{instance_id}.log", "ab") as out:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False).returncode


def slurm_nodename(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/root/etc/parallelcluster/slurm_plugin/slurm_nodename").read_text().strip() or None
    except OSError:
        return None


def launch(sandbox: Sandbox, instance: dict, dna: dict | None, timeout: int, head_node_script: str | None = None) -> None:
    """Boot one instance as a node on the VPC's bridge, then run its bootstrap (a stack's head node: its user data's
    script, head_node_script, stack_head_node.py)."""
    instance_id, ip = instance["InstanceId"], instance["PrivateIpAddress"]
    node_dir = sandbox.node_dir(instance_id)
    node_dir.mkdir(parents=True, exist_ok=True)
    keygen = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", instance_id, "-f",
                             str(node_dir / "ssh_host_ed25519_key")], capture_output=True, check=False)
    if keygen.returncode != 0:
        raise RuntimeError(f"ssh-keygen failed: {keygen.stderr.decode(errors='replace')}")
    netns = f"{sandbox.state['netns_prefix']}{instance_id}"
    node_type = "HeadNode" if head_node_script else dna["cluster"]["node_type"]
    compute = node_type == "ComputeFleet"
    layout = node_layout(sandbox.state_dir, sandbox.state, instance_id, instance.get("ImageId"))
    proc = rootfs.start_node(sandbox.state["holders"]["base"], "ip-" + ip.replace(".", "-"), compute,
                             sandbox.state["gpus_per_node"], layout)
    pid = nodes.wait_holder(proc, f"instance {instance_id}")
    link = "v" + instance_id[-12:]
    sandbox.record(instance_id, pid=pid, ip=ip, netns=netns, veth=link, node_type=node_type, launched=time.time())
    nodes.connect_node(sandbox.network_pid, pid, {"ip": ip, "veth": link, "netns": netns}, sandbox.state["prefix_len"])
    prepare_instance(sandbox, instance, pid, dna, ip if head_node_script else dna["cluster"]["head_node_private_ip"])
    if head_node_script:
        stack_head_node.prepare(sandbox.state, sandbox.network_pid, pid, ip, head_node_script)
    public_key = " ".join((node_dir / "ssh_host_ed25519_key.pub").read_text().split()[:2])
    known_hosts(sandbox, ip, public_key)
    log(f"{instance_id} ({ip}) booted as a node (holder {pid}) from {instance.get('ImageId')} "
        f"({'its image layer' if layout['images'] else 'the AMI layer'}); bootstrap")
    started = time.monotonic()
    if head_node_script:
        rc = stack_head_node.run_user_data(sandbox.state_dir, pid, instance_id, timeout)
    else:
        rc = run_bootstrap(sandbox, pid, instance_id, timeout)
    name = slurm_nodename(pid)
    sandbox.record(instance_id, name=name, bootstrap="ok" if rc == 0 else f"failed ({rc})")
    if rc == 0 and name:
        follow_node(sandbox.state_dir, name, pid, ip, netns)
    log(f"{instance_id} ({ip}) {name or '(no Slurm node name)'}: bootstrap "
        f"{'done' if rc == 0 else f'FAILED (exit status {rc})'} in {time.monotonic() - started:.1f} s")


def follow_node(state_dir: Path, name: str, pid, ip, netns: str = "", stopped: int | None = None) -> None:
    """state.json's holders, compute_ips (static nodes) and nodes follow the compute nodes' current instances;
    stopped: the holder of a node that stopped (nothing changes when another instance backs the node already)."""
    def change(state):
        if stopped is not None and state["holders"].get(name) != stopped:
            return
        for node in state.get("nodes", []):
            if node["name"] == name:
                node.update(ip=ip or "", netns=netns or "")
        if name in state.get("compute_nodes", []):
            index = state["compute_nodes"].index(name)
            ips = (state.get("compute_ips") or []) + [""] * len(state["compute_nodes"])
            ips[index] = ip or ""
            state["compute_ips"] = ips[:len(state["compute_nodes"])]
        if pid:
            state["holders"][name] = pid
        else:
            state["holders"].pop(name, None)
    state_file.update(state_dir, change)


def stop(sandbox: Sandbox, instance_id: str, why: str) -> None:
    """Stop a node: every process of it, its root, its network namespace, its metadata and host key."""
    record = sandbox.forget(instance_id)
    if not record:
        return
    survivors = nodes.kill_all([record.get("pid")], [record.get("netns", "")])
    shutil.rmtree(sandbox.state_dir / "roots" / record.get("root", instance_id), ignore_errors=True)
    shutil.rmtree(sandbox.node_dir(instance_id), ignore_errors=True)
    (sandbox.state_dir / "imds" / f"{instance_id}.json").unlink(missing_ok=True)
    if record.get("ip"):
        known_hosts(sandbox, record["ip"], None)
    if record.get("name") and record.get("node_type") != "HeadNode":
        follow_node(sandbox.state_dir, record["name"], None, "", stopped=record.get("pid"))
    log(f"{instance_id} ({record.get('ip')}) {record.get('name') or ''}: node stopped, {why}"
        + (f"; processes survived SIGKILL: {survivors}" if survivors else ""))


# --------------------------------------------------------------------------- the loop

class Hypervisor:
    def __init__(self, state_dir: Path):
        self.sandbox = Sandbox(state_dir)
        self.booting = {}
        self.unbootable = set()
        self.vpc_id = self.sandbox.state["aws"]["vpc_id"]
        self.network_ns = os.stat(f"/proc/{self.sandbox.network_pid}/ns/net").st_ino

    def network_alive(self) -> bool:
        try:
            return os.stat(f"/proc/{self.sandbox.network_pid}/ns/net").st_ino == self.network_ns
        except OSError:
            return False

    def instances(self) -> dict:
        pages = self.sandbox.ec2().get_paginator("describe_instances").paginate(Filters=[
            {"Name": "vpc-id", "Values": [self.vpc_id]}, {"Name": "tag-key", "Values": ["parallelcluster:node-type"]}])
        return {i["InstanceId"]: i for page in pages for r in page["Reservations"] for i in r["Instances"]}

    def boot(self, instance: dict) -> None:
        instance_id = instance["InstanceId"]
        try:
            data = self.sandbox.ec2().describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
            encoded = (data.get("UserData") or {}).get("Value")
            dna = dna_from_user_data(encoded)
            script = stack_head_node.head_node_script(encoded) if dna is None else None
            if dna is None and script is None:
                self.unbootable.add(instance_id)
                log(f"{instance_id}: no ParallelCluster dna.json or head node user data in its user data; not booted")
                return
            launch(self.sandbox, instance, dna, stack_head_node.bootstrap_timeout(script) if script
                   else user_data_timeout(encoded), script)
        except Exception:  # pylint: disable=broad-except  # one instance's failure is logged, the others go on
            log(f"{instance_id}: boot failed: {traceback.format_exc()}")
        finally:
            self.booting.pop(instance_id, None)

    def power_requests(self, instances: dict) -> None:
        for instance_id, record in self.sandbox.records().items():
            request = self.sandbox.node_dir(instance_id) / "power" / "request"
            if instance_id not in instances or not request.exists():
                continue
            request.unlink(missing_ok=True)
            ec2 = self.sandbox.ec2()
            behaviour = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")[
                "InstanceInitiatedShutdownBehavior"]["Value"]
            log(f"{instance_id} ({record.get('ip')}): shutdown in the node; the instance's shutdown behaviour: {behaviour}")
            if behaviour == "terminate":
                ec2.terminate_instances(InstanceIds=[instance_id])
            else:
                ec2.stop_instances(InstanceIds=[instance_id])

    def step(self) -> frozenset:
        """One look at the VPC's instances; returns what it saw (the instances' states and the nodes' records)."""
        instances = self.instances()
        self.power_requests(instances)
        records = self.sandbox.records()
        for instance_id in list(records):
            state = (instances.get(instance_id) or {}).get("State", {}).get("Name", "gone")
            if state not in ALIVE and instance_id not in self.booting:
                stop(self.sandbox, instance_id, f"its instance is {state}")
        for instance_id, instance in instances.items():
            if (instance["State"]["Name"] in ALIVE and instance_id not in records and instance_id not in self.booting
                    and instance_id not in self.unbootable and instance.get("PrivateIpAddress")):
                self.booting[instance_id] = thread = threading.Thread(target=self.boot, args=(instance,), daemon=True)
                thread.start()
        return frozenset([(i, instance["State"]["Name"]) for i, instance in instances.items()] + list(records))

    def run(self) -> int:
        import headless_fleet  # pylint: disable=import-outside-toplevel

        log(f"hypervisor for VPC {self.vpc_id} ({self.sandbox.region}) at {self.sandbox.endpoint_url}")
        fleet = headless_fleet.HeadlessFleet(self.sandbox.endpoint_url, self.sandbox.region, self.sandbox.state_dir)
        threading.Thread(target=fleet.run, args=(self.network_alive,), daemon=True).start()
        image_layers.start_builder(self.sandbox, self.network_alive)
        seen, changed_at = None, time.monotonic()
        while self.network_alive():
            try:
                view = self.step()
                if view != seen or self.booting:
                    seen, changed_at = view, time.monotonic()
            except Exception:  # pylint: disable=broad-except  # moto busy or restarting: again on the next poll
                log(f"poll failed: {traceback.format_exc(limit=3)}")
            time.sleep(POLL if time.monotonic() - changed_at < QUIET else IDLE_POLL)
        log("the sandbox's network (head node) is gone; exiting")
        return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    return Hypervisor(Path(args.state_dir)).run()


if __name__ == "__main__":
    sys.exit(main())
