"""The sandbox nodes' file systems: a root of their own, shared storage as ParallelCluster shares it.

Every node is a long-lived holder process (``sleep infinity``) owning the node's mount, UTS and
network namespaces; daemons are started in them with ``nsenter --target <holder>``.

**Shared storage.** A "base" holder's mount namespace mounts one tmpfs per shared file system
(``/opt/slurm`` and ``/opt/parallelcluster/shared`` as the head node's NFS exports, ``/home``, ``/fsx``,
``/lustre``) under
``<state>/shared``; every node's namespace is a copy of the base's, so they all see the same
file systems, and the host sees only an empty directory.

**A root of their own.** Each node then builds a root file system and ``pivot_root``s into it
(``nsenter`` lands in it too), under ``<state>/roots/<node>``:

| path | what |
|---|---|
| ``/usr``, ``/etc`` | overlay: this machine's directory, the AMI layer (ami.py; ami.HIDDEN) on top, the node's own changes on top |
| ``/usr/local``, ``/opt`` | overlay of the AMI layer only (the machine's own ``/usr/local`` and ``/opt`` are not part of the node) |
| ``/var`` | overlay of this machine's ``/var``, without man-db's ``auto-update`` (ROOT_SCRIPT) |
| ``/``, ``/root``, ``/tmp``, ``/srv`` ... | the node's own directory (``rootfs``) |
| ``/opt/slurm``, ``/opt/parallelcluster/shared``, ``/home``, ``/fsx``, ``/lustre`` | the shared file systems |
| ``/scratch`` (compute) | a tmpfs of the node's own, like instance storage |
| ``/run`` | a tmpfs of the node's own |
| ``/proc``, ``/sys`` | the machine's |
| ``/dev`` | an overlay of the machine's, with ``/dev/mqueue``, ``/dev/log`` and, on compute nodes with GPUs, stand-in ``/dev/nvidiaN`` devices |
| ``/run/sandbox/...`` | bound from the machine: ``logs`` (read-write), ``node`` (sshd files), ``authorized_keys``, ``bin`` |

So a package install or any other write on a node stays in ``<state>/roots/<node>`` (upper
and work directories of the overlays, and ``rootfs``): another node and the machine never see
it. Overlayfs refuses layers that contain each other, so the state directory must not lie
inside ``/usr``, ``/etc``, ``/var`` or ``/opt`` (``check_state_dir``).

Wiping a node's root is: stop its processes, remove ``<state>/roots/<node>``, start its holder
again (``start_node`` with ``netns`` keeps its network namespace and address).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SHARED = ("opt-slurm", "pcluster-shared", "home", "fsx", "lustre")
# The shared file systems a node mounts where the cluster's config puts them (the head node's /home, the FSx).
FILE_SYSTEMS = ("home", "fsx", "lustre")
# Where a node sees what is bound into it from the machine (in its own /run, so that no directory a
# user or Enroot may bind-mount, such as /root or /tmp, has a mount of the sandbox's below it).
NODE_SANDBOX_DIR = "/run/sandbox"
# Overlay of the node root: (name, mount point, lower directories; "{ami}" is the AMI layer).
LAYERED = (
    ("usr", "usr", ("{ami}/usr", "/usr")),
    ("usrlocal", "usr/local", ("{ami}/usr/local",)),
    ("etc", "etc", ("{ami}/etc", "/etc")),
    ("var", "var", ("/var",)),
    ("opt", "opt", ("{ami}/opt",)),
)
LAYERED_HOST_DIRS = ("/usr", "/etc", "/var", "/opt")

BASE_SCRIPT = """
mount -t tmpfs -o mode=755 sandbox-shared "$SHARED"
for d in $SHARED_NAMES; do
  mkdir "$SHARED/$d"
  mount -t tmpfs -o mode=755 "sandbox-$d" "$SHARED/$d"
done
"""

# Run in the node's new mount namespace (a copy of the base's), before pivot_root.
ROOT_SCRIPT = """
R=$NODE_ROOT
mkdir -p "$R/rootfs"
for layer in $LAYER_NAMES; do mkdir -p "$R/upper/$layer" "$R/work/$layer"; done
mount --bind "$R/rootfs" "$R/rootfs"
cd "$R/rootfs"
for link in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$link" ] && [ ! -e "$link" ]; then ln -s "$(readlink "/$link")" "$link"; fi
done
mkdir -p usr etc var opt root tmp srv mnt media home proc sys dev run fsx lustre
chmod 0700 root
chmod 1777 tmp
echo "$LAYER_MOUNTS" | while IFS='|' read -r layer target lowers; do
  [ -n "$layer" ] || continue
  mkdir -p "$target"
  # redirect_dir=on: a directory of a lower layer can be renamed, as on an instance's own disk (dockerd renames
  # /var/lib/docker/runtimes at each start, which a node booted from an image with Docker carries in its layer).
  mount -t overlay "sandbox-$layer" -o "lowerdir=$lowers,upperdir=$R/upper/$layer,workdir=$R/work/$layer,redirect_dir=on" "$target"
done
# /var has no AMI layer (the layers' cache is under /var), so the node removes this itself: man-db's index rebuild
# after every package install took 5 s of CPU per Docker install.
rm -f var/lib/man-db/auto-update
mkdir -p opt/slurm opt/parallelcluster/shared
mount --bind "$SHARED/opt-slurm" opt/slurm
mount --bind "$SHARED/pcluster-shared" opt/parallelcluster/shared
for d in $NODE_FILE_SYSTEMS; do mount --bind "$SHARED/$d" "$d"; done
mount --rbind /proc proc
mount --rbind /sys sys
mount --rbind /dev dev
mount -t tmpfs -o mode=755 sandbox-run run
echo "$HOST_BINDS" | while IFS='|' read -r source target mode; do
  [ -n "$source" ] || continue
  if [ -d "$source" ]; then mkdir -p "./$target"; else mkdir -p "./$(dirname "$target")"; : > "./$target"; fi
  mount --bind "$source" "./$target"
  if [ "$mode" = ro ]; then mount -o remount,bind,ro "./$target"; fi
done
mkdir .sandbox-oldroot
pivot_root . .sandbox-oldroot
cd /
umount -l /.sandbox-oldroot
rmdir /.sandbox-oldroot
"""

# After pivot_root: what the node's own boot would set up. /dev becomes the node's own (an
# overlay of the machine's, so device nodes made here stay here) with what an init system
# mounts there: a POSIX message queue file system and a /dev/log socket (no syslog daemon
# listens on it); Enroot binds both into containers.
NODE_SCRIPT = """
mkdir -p /run/sandbox-node/dev/upper /run/sandbox-node/dev/work /run/sandbox-node/hostdev
mount --rbind /dev /run/sandbox-node/hostdev
mount -t overlay sandbox-dev -o lowerdir=/dev,upperdir=/run/sandbox-node/dev/upper,workdir=/run/sandbox-node/dev/work /dev
mount --rbind /run/sandbox-node/hostdev/pts /dev/pts
mount --rbind /run/sandbox-node/hostdev/shm /dev/shm
umount -R -l /run/sandbox-node/hostdev
mkdir -p /dev/mqueue
mount -t mqueue sandbox-mqueue /dev/mqueue
/usr/bin/python3 -c 'import socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind("/dev/log")'
mkdir -p /etc/slurm
mount --bind /opt/slurm/etc /etc/slurm
mkdir -p /run/sshd /run/munge /run/lock /var/spool/slurmd /var/spool/slurmctld
chmod 755 /run/sshd /run/munge
chmod 1777 /run/lock
chown munge:munge /run/munge
hostname "$NODE_NAME"
echo "$NODE_NAME" > /etc/hostname
"""

COMPUTE_SCRIPT = """
mkdir -p /scratch
mount -t tmpfs -o mode=1777 sandbox-scratch /scratch
i=0
while [ $i -lt "$GPUS" ]; do mknod -m 666 /dev/nvidia$i c 195 $i; i=$((i + 1)); done
"""


def check_state_dir(state_dir: Path) -> str:
    """Why the node roots cannot live under state_dir ("" when they can)."""
    resolved = state_dir.resolve()
    for layered in LAYERED_HOST_DIRS:
        if resolved == Path(layered) or Path(layered) in resolved.parents:
            return (f"the state dir {resolved} lies inside {layered}, which every node sees through an overlay "
                    f"(overlayfs refuses a layer inside another): use a state dir elsewhere, e.g. under /tmp or the checkout")
    return ""


def layer_mounts(ami_layer: str, images=()) -> str:
    """Each overlay's line for ROOT_SCRIPT. images: the layers of a custom image (image_layers.py), top first, each
    holding what its build changed per overlay (``<layer>/<name>``), above the AMI layer and the machine's."""
    lines = []
    for name, target, lowers in LAYERED:
        below = [low.format(ami=ami_layer) for low in lowers]
        lines.append("|".join([name, target, ":".join([f"{image}/{name}" for image in images] + below)]))
    return "\n".join(lines)


def _holder(argv, script: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([*argv, "/bin/sh", "-e", "-c", script + "\nexec sleep infinity\n"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env=env)


def start_base(shared_dir: Path) -> subprocess.Popen:
    """The holder of the shared file systems (mounted under shared_dir in its namespace only)."""
    shared_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SHARED=str(shared_dir), SHARED_NAMES=" ".join(SHARED))
    return _holder(["unshare", "--mount", "--propagation", "private", "--"], BASE_SCRIPT, env)


def start_node(base_pid: int, name: str, compute: bool, gpus: int, layout: dict, netns: str | None = None):
    """A node holder with a root of its own, name its host name. layout: {"shared", "roots", "ami", optional "images"
    (a custom image's layers over the AMI layer, top first: layer_mounts),
    "binds": [(machine path, node path under NODE_SANDBOX_DIR, "ro"|"rw")], optional "root_name" (the
    directory of its root under "roots"; default name), optional "file_systems" (the cluster's file systems it mounts
    besides /opt/slurm and /opt/parallelcluster/shared; default FILE_SYSTEMS)}.
    netns: the path of an existing network namespace to join (a node started again), else a new one."""
    env = dict(os.environ, NODE_NAME=name, GPUS=str(gpus if compute else 0), SHARED=layout["shared"],
               NODE_ROOT=str(Path(layout["roots"]) / layout.get("root_name", name)),
               LAYER_NAMES=" ".join(layer[0] for layer in LAYERED),
               NODE_FILE_SYSTEMS=" ".join(layout.get("file_systems", FILE_SYSTEMS)),
               LAYER_MOUNTS=layer_mounts(layout["ami"], layout.get("images", ())),
               HOST_BINDS="\n".join("|".join(bind) for bind in layout["binds"]))
    script = ROOT_SCRIPT + NODE_SCRIPT + (COMPUTE_SCRIPT if compute else "")
    argv = ["nsenter", "-t", str(base_pid), "-m", "--"]
    if netns:
        argv += ["nsenter", f"--net={netns}", "--", "unshare", "--mount", "--uts", "--propagation", "private", "--"]
    else:
        argv += ["unshare", "--mount", "--uts", "--net", "--propagation", "private", "--"]
    return _holder(argv, script, env)


def shared_path(base_pid: int, shared_dir: str, name: str) -> str:
    """Where the host reaches shared file system name (one of SHARED) through the base holder."""
    return f"/proc/{base_pid}/root{shared_dir}/{name}"
