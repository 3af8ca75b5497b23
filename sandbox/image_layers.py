"""Custom images in the sandbox: what an image build changed, as a layer the image's instances boot from.

EC2 Image Builder builds a ParallelCluster image on a build instance started from the parent image and keeps that
instance's disk as the AMI. In the sandbox (image_builder.py runs the recipe, in the hypervisor's process):

- the build instance is an instance of the parent image in moto (RunInstances in the build's subnet, tagged as Image
  Builder tags it, terminated after the build) booted as a node of its own (``NodeHost``): a root over the parent
  image's layers, on the VPC's bridge with the address moto gave it, apt's way out (proxy.py), the sandbox's AWS
  configuration. The script components run in it as root;
- the AMI is what the build changed on that node: its overlays' upper directories (``/usr``, ``/usr/local``, ``/etc``,
  ``/var``, ``/opt``), moved to ``<state>/images/<AMI id>/<overlay>`` once the node is stopped. The rest of a node's
  root (``/root``, ``/tmp``, ...) is the instance's own and is not kept, nor is anything on the shared file systems;
- ``<state>/images.json`` maps each AMI to its layer and its parent image. An instance of a custom image - whoever
  launches it: slurm_resume with a queue's launch template, clustermgtd - boots over the image's layer, its parent's
  layers below (an image built from a custom image), then the sandbox's AMI layer (``layers_of``, rootfs.py); the
  sandbox's own AMI has no layer of its own there.

Layers live and die with the sandbox, as moto's AMIs do: ``down`` removes the state directory with them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import nodes
import rootfs
import state_file

IMAGES = "images.json"
LAYERS_DIR = "images"
BUILD_TAGS = {"CreatedBy": "EC2 Image Builder"}
# What the sandbox wrote into the build node as it writes it into every node it boots (nodes.populate_node,
# rootfs.NODE_SCRIPT): EC2's and the cluster's part of an instance, not the build's; each node gets its own.
INSTANCE_FILES = ("etc/hosts", "etc/hostname", "etc/munge/munge.key",
                  "etc/apt/apt.conf.d/80hpc-pcluster-sandbox-proxy")


def layers_of(state_dir: Path, image_id: str | None) -> list:
    """The layers an instance of image_id boots over, top first (none for the sandbox's own AMI or an unknown one)."""
    images = state_file.load(Path(state_dir), IMAGES) or {}
    layers, seen = [], set()
    while image_id in images and image_id not in seen:
        seen.add(image_id)
        layers.append(images[image_id]["layer"])
        image_id = images[image_id].get("parent")
    return layers


def register(state_dir: Path, ami_id: str, layer: str | None, request: dict) -> None:
    """Record the layer of a built AMI (image_builder's on_image): moved to <state>/images/<ami_id>."""
    if not layer:
        return
    target = Path(state_dir) / LAYERS_DIR / ami_id
    target.parent.mkdir(parents=True, exist_ok=True)
    Path(layer).rename(target)

    def change(data):
        data[ami_id] = {"layer": str(target), "parent": request.get("parent_image"), "image_arn": request.get("image_arn"),
                        "registered": time.time()}
    state_file.update(Path(state_dir), change, IMAGES)


class NodeHost:
    """The build instance of one image build (image_builder's host interface: run, capture, close), as a node."""

    def __init__(self, sandbox, request: dict):
        import hypervisor  # pylint: disable=import-outside-toplevel  # it imports this module

        self.hypervisor, self.sandbox, self.request = hypervisor, sandbox, request
        self.pid = self.netns = self.instance_id = None
        self.instance_id, self.ip = self._launch()
        try:
            self._boot()
        except Exception:
            self.close()
            raise

    def _boot(self) -> None:
        sandbox, hypervisor, request = self.sandbox, self.hypervisor, self.request
        self.name = f"build-{self.instance_id}"
        self.netns = f"{sandbox.state['netns_prefix']}{self.instance_id}"
        # An instance of the parent image, not a node of the cluster: no instance storage on /scratch (ParallelCluster
        # formats and mounts it at a cluster node's boot) and none of the cluster's FSx.
        layout = dict(hypervisor.node_layout(sandbox.state_dir, sandbox.state, self.name, request["parent_image"]),
                      file_systems=())
        proc = rootfs.start_node(sandbox.state["holders"]["base"], "ip-" + self.ip.replace(".", "-"), False, 0, layout)
        self.pid = nodes.wait_holder(proc, f"build instance {self.instance_id}")
        nodes.connect_node(sandbox.network_pid, self.pid, {"ip": self.ip, "veth": "b" + self.instance_id[-12:],
                                                           "netns": self.netns}, sandbox.state["prefix_len"])
        head_ip, proxy = sandbox.state["head_ip"], sandbox.state["containers"]["proxy"]
        hosts = nodes.hosts_file(head_ip, sandbox.state["head_name"], sandbox.state.get("extra_hosts", []))
        munge_key = Path(f"/proc/{sandbox.network_pid}/root/etc/munge/munge.key").read_bytes()
        nodes.populate_node(self.pid, hosts, munge_key, None if proxy["note"] else proxy["url"])
        hypervisor.write_in(self.pid, hypervisor.aws_files(sandbox))

    def _launch(self):
        request = self.request
        args = {"ImageId": request["parent_image"], "MinCount": 1, "MaxCount": 1,
                "InstanceType": request.get("instance_type") or "c5.xlarge",
                "TagSpecifications": [{"ResourceType": "instance", "Tags": [
                    {"Key": "Name", "Value": f"Build instance for {request['stack_name']}"},
                    *({"Key": k, "Value": v} for k, v in BUILD_TAGS.items())]}]}
        if request.get("subnet_id"):
            args["SubnetId"] = request["subnet_id"]
        if request.get("security_group_ids"):
            args["SecurityGroupIds"] = request["security_group_ids"]
        instance = self.sandbox.ec2().run_instances(**args)["Instances"][0]
        return instance["InstanceId"], instance["PrivateIpAddress"]

    def run(self, script: bytes, name: str, timeout: float = 7200.0):
        """Run one component's script as root in the build node, as Image Builder's wrapper runs it."""
        path = f"/root/imagebuilder/{name}"
        self.hypervisor.write_in(self.pid, {path: (script, 0o700)})
        argv = nodes.nsenter(self.pid, ["env", "-i", f"PATH={self.hypervisor.NODE_PATH}", "HOME=/root", "LANG=C.UTF-8",
                                        "/bin/bash", path])
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              check=False)
        return proc.returncode, proc.stdout.splitlines() + ["Stderr: " + line for line in proc.stderr.splitlines()]

    def _stop(self) -> None:
        if self.pid:
            nodes.kill_all([self.pid], [self.netns])
            self.pid = None

    def capture(self) -> str:
        """Stop the build node and keep what it changed: its overlays' upper directories, as a layer."""
        self._stop()
        root = self.sandbox.state_dir / "roots" / self.name
        layer = self.sandbox.state_dir / LAYERS_DIR / f".{self.name}"
        layer.parent.mkdir(parents=True, exist_ok=True)
        (root / "upper").rename(layer)
        for path in INSTANCE_FILES:
            (layer / path).unlink(missing_ok=True)
        return str(layer)

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self.sandbox.state_dir / "roots" / self.name, ignore_errors=True)
        if self.instance_id:
            self.sandbox.ec2().terminate_instances(InstanceIds=[self.instance_id])


def start_builder(sandbox, alive) -> None:
    """The sandbox's image builder (image_builder.py) on build nodes, in a thread of the calling process."""
    import threading  # pylint: disable=import-outside-toplevel

    import image_builder  # pylint: disable=import-outside-toplevel

    builds = sandbox.state_dir / "image-builds"
    builds.mkdir(exist_ok=True)

    def on_image(ami, layer, request):
        register(sandbox.state_dir, ami, layer, request)

    builder = image_builder.ImageBuilder(sandbox.endpoint_url, sandbox.region, builds,
                                         host_factory=lambda request: NodeHost(sandbox, request), on_image=on_image)
    threading.Thread(target=builder.run, args=(alive,), daemon=True).start()


def launch_queue_from(ec2, template_name: str, ami_id: str) -> int:
    """Make a queue's instances start from ami_id, as a cluster update that changes the queue's Image.CustomAmi leaves
    EC2: a new version of the queue's launch template with the same data and that ImageId (ParallelCluster's
    slurm_resume and clustermgtd launch its ``$Latest``). Returns the version's number."""
    data = ec2.describe_launch_template_versions(LaunchTemplateName=template_name, Versions=["$Default"])[
        "LaunchTemplateVersions"][0]["LaunchTemplateData"]
    version = ec2.create_launch_template_version(LaunchTemplateName=template_name,
                                                 LaunchTemplateData=dict(data, ImageId=ami_id))["LaunchTemplateVersion"]
    return version["VersionNumber"]
