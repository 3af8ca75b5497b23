"""The container chain of the sandbox's nodes, and what the collection's roles are told about it.

- The AMI layer (ami.py): real Enroot and Pyxis when the vendored archives are there, else the
  stand-ins, with the reason.
- A container image on shared storage (``/fsx/containers/busybox.sqsh``), which the verify role's
  container smoke test and the tests run through Pyxis.
- Docker: the docker role installs Debian's ``docker.io`` into each node's own root through the
  package-mirror proxy (proxy.py) and starts dockerd with ``bin/docker-service`` (the nodes have no
  init system), with a daemon configuration a node without bridge networking can run.
- Amazon ECR (registry.py): a real registry behind ECR's names, TLS (the sandbox CA is in the AMI
  layer's trust store) and authentication, with an image pushed at ``up``; the roles get ECR
  credentials from the nodes' instance role, the verify role pulls the image on every compute node
  and stages it once on ``/fsx/containers``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import ami
import proxy
import registry
import rootfs

HERE = Path(__file__).resolve().parent
NOT_AVAILABLE = "not available in the sandbox"
PROXY_PORT = 3128
IMAGE_DIR = "containers"
IMAGE_NAME = "busybox.sqsh"
# dockerd inside a node: no bridge or iptables in the node's network namespace, and vfs
# because the node's /var/lib/docker is itself on overlayfs (measured: docker run works so).
DOCKER_DAEMON_OPTIONS = {"storage-driver": "vfs", "bridge": "none", "iptables": False, "ip6tables": False}
# The nodes share this machine's cgroup file systems: every node's containers get cgroups under
# /<docker_cgroup_root>/<container id>, which down removes (rather than under the machine's /docker).
# One value for every node: a custom image built in the sandbox carries the nodes' docker settings.
DOCKER_CGROUP_PARENT = "/{root}"


def check_mirrors(mirrors: list, timeout=3.0) -> str:
    """Why the package mirrors cannot be reached from this machine ("" when the first one answers)."""
    if not mirrors:
        return "this machine's apt sources name no package mirror"
    try:
        socket.create_connection((mirrors[0], 80), timeout=timeout).close()
        return ""
    except OSError as exc:
        return f"the package mirror {mirrors[0]} is not reachable from this machine ({exc})"


def prepare(vendor_setting, cache_setting, state_dir: Path, p: dict, region: str, in_use, log) -> dict:
    """Build (or find in the cache) the AMI layer and the images; look at the package mirrors."""
    vendor, cache = ami.vendor_dir(vendor_setting), ami.cache_dir(cache_setting)
    build_log = state_dir / "logs" / "ami-build.log"
    head_ip, index = p["head"]["ip"], p["index"]
    ecr = prepare_registry(cache, build_log, p, region, log)
    layer = ami.ensure_layer(vendor, cache, build_log, in_use, log, extras=ecr.pop("trust", {}))
    if layer["fallback"]:
        log(f"Enroot and Pyxis are the stand-ins: {layer['fallback']}")
    image, image_note = (ami.ensure_image(cache, build_log, log) if layer["real"]
                         else (None, "the container image needs the real Enroot and Pyxis"))
    mirrors = proxy.apt_source_hosts()
    mirror_note = check_mirrors(mirrors)
    if mirror_note:
        log(f"Docker is not installed on the nodes: {mirror_note}")
    return {
        "vendor_dir": str(vendor), "cache_dir": str(cache), "ami": layer,
        "image_cache": image, "image": f"/fsx/{IMAGE_DIR}/{IMAGE_NAME}" if image else "", "image_note": image_note,
        "proxy": {"listen": f"{head_ip}:{PROXY_PORT}", "url": f"http://{head_ip}:{PROXY_PORT}/",
                  "mirrors": mirrors, "note": mirror_note},
        "docker_cgroup_root": f"hpc-pcluster-sandbox{index}",
        "registry": ecr,
    }


def prepare_registry(cache: Path, build_log: Path, p: dict, region: str, log) -> dict:
    """ECR's names and addresses for this sandbox, the CA the AMI layer carries ("trust") and the image
    to push; "note" says why there is no registry ("" when there is)."""
    ends = registry.endpoints(p, region)
    note = registry.missing_tools()
    if note:
        log(f"no registry in the sandbox: {note}")
        return dict(ends, note=note)
    ca_dir = registry.ensure_ca(cache)
    image = registry.ensure_image(cache, build_log, log)
    return dict(ends, note="", ca_dir=str(ca_dir), image_cache=str(image), trust=registry.trust_files(ca_dir))


def hosts_lines(containers: dict) -> list:
    """The nodes' /etc/hosts lines for the registry (ECR's private DNS names)."""
    return registry.hosts_lines(containers["registry"]) if not containers["registry"]["note"] else []


def start_registry(state_dir: Path, state: dict, head_pid: int, save) -> None:
    """The registry and ECR's API in the head node's network namespace, the image pushed; their processes
    go into state["containers"]["registry"]["pids"] as they start (save(state) records them)."""
    ecr = state["containers"]["registry"]
    if ecr["note"]:
        return

    def started(pid):
        ecr.setdefault("pids", []).append(pid)
        save(state)

    password = registry.start(state_dir, state, head_pid, ecr, Path(ecr["ca_dir"]), started)
    ecr.update(registry.push_image(state_dir, state, head_pid, ecr, Path(ecr["image_cache"]), password))
    save(state)


def install_image(containers: dict, fsx_path: str) -> None:
    """Copy the cached image onto the cluster's shared /fsx (fsx_path: where the host reaches it)."""
    if containers["image_cache"]:
        target = Path(fsx_path) / IMAGE_DIR
        target.mkdir(mode=0o755, exist_ok=True)
        shutil.copyfile(containers["image_cache"], target / IMAGE_NAME)
        (target / IMAGE_NAME).chmod(0o644)


def start_proxy(state_dir: Path, containers: dict, head_pid: int) -> subprocess.Popen:
    """The package-mirror proxy, in a process group of its own; down kills it."""
    with open(state_dir / "logs" / "proxy.log", "ab") as plog:
        return subprocess.Popen(
            [sys.executable, str(HERE / "proxy.py"), "--netns", f"/proc/{head_pid}/ns/net",
             "--listen", containers["proxy"]["listen"], "--allow", *containers["proxy"]["mirrors"]],
            stdin=subprocess.DEVNULL, stdout=plog, stderr=subprocess.STDOUT, start_new_session=True)


def group_vars(containers: dict) -> dict:
    """The container roles' variables for the sandbox's nodes."""
    layer = containers["ami"]
    docker = not containers["proxy"]["note"]
    return {
        # Enroot as the AMI ships it (the enroot role's "shipped" path), when it is really there.
        "enroot_require_binary": layer["real"],
        "containers_docker_enabled": docker,
        "docker_daemon_options": dict(DOCKER_DAEMON_OPTIONS, **{
            "cgroup-parent": DOCKER_CGROUP_PARENT.format(root=containers["docker_cgroup_root"])}),
        "docker_service_manager": "command",
        "docker_service_command": [f"{rootfs.NODE_SANDBOX_DIR}/bin/docker-service"],
        # Debian's Slurm layout, and a slurmd restart that needs no init system.
        "pyxis_slurm_bin_dir": "/usr/bin",
        "pyxis_slurm_include_dir": "/usr/include",
        "pyxis_slurmd_restart_command": [f"{rootfs.NODE_SANDBOX_DIR}/bin/restart-slurmd"],
        "verify_container_smoke_image": containers["image"],
        **registry_vars(containers),
    }


def registry_vars(containers: dict) -> dict:
    """With the registry: the verify role pulls its image on every compute node (each node signing ECR's calls with
    its instance role's credentials), and deploy.yml stages it once."""
    ecr = containers.get("registry", {})
    if ecr.get("note", "no registry") or not containers["ami"]["real"]:
        return {}
    image = f"{ecr['registry_host']}/{registry.REPOSITORY}:{registry.TAG}"
    return {"verify_container_registry_image": image, "enroot_stage_images": [image]}


def not_available(containers: dict) -> dict:
    """The verify role's container checks this sandbox cannot show, each with its reason."""
    out = {}
    layer = containers["ami"]
    if not layer["real"]:
        why = layer["fallback"]
        out["enroot"] = f"{NOT_AVAILABLE}: no Enroot on the nodes ({why})"
        out["pyxis_plugin"] = (f"{NOT_AVAILABLE}: spank_pyxis.so is the sandbox's stand-in, not Pyxis "
                               f"(the plugstack wiring is real; {why})")
        out["pyxis_loaded"] = f"{NOT_AVAILABLE}: the stand-in plugin has no --container-image ({why})"
        out["container_smoke"] = f"{NOT_AVAILABLE}: no Pyxis and no Enroot ({why})"
        out["container_registry"] = f"{NOT_AVAILABLE}: no Pyxis and no Enroot to pull with ({why})"
    elif containers.get("registry", {}).get("note"):
        out["container_registry"] = f"{NOT_AVAILABLE}: no registry ({containers['registry']['note']})"
    if containers["proxy"]["note"]:
        out["docker"] = f"{NOT_AVAILABLE}: Docker is not installed on the nodes ({containers['proxy']['note']})"
    return out
