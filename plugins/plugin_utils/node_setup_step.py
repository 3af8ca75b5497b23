# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node-setup step of the queues' OnNodeConfigured sequence: the boot script, where it goes in S3, its step."""

from __future__ import annotations

import hashlib
import os
import re

from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import problem, short_repr
from ansible_collections.hpc.pcluster.plugins.plugin_utils.role_variables import PREFIX, blank

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The node-setup loader shipped with the collection (role node_setup), uploaded next to the bootstrap scripts under
# a key named after its interface: the queues' OnNodeConfigured entry - whose change makes ParallelCluster drain and
# replace every node of the queue - changes only when the loader's interface does, not with each release (what
# changes from release to release is in the bundle on shared storage).
BOOT_SCRIPT_PATH = os.path.join(COLLECTION_ROOT, "roles", "node_setup", "files", "hpc-pcluster-node-setup.sh")
BOOT_SCRIPT_PREFIX = "hpc-pcluster-node-setup-"
_INTERFACE_LINE = re.compile(rb"^# hpc\.pcluster node-setup loader - interface (\d+)\.$", re.M)


def boot_script_sha256(path=BOOT_SCRIPT_PATH):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def loader_interface(path=BOOT_SCRIPT_PATH):
    """The interface number the loader declares in its header."""
    with open(path, "rb") as handle:
        match = _INTERFACE_LINE.search(handle.read(4096))
    if not match:
        raise ValueError("%s declares no interface ('# hpc.pcluster node-setup loader - interface N.')" % path)
    return int(match.group(1))


def _folder(url):
    """s3://bucket/some/key.sh -> (bucket, 'some/') ; None when url is not an s3:// URL with a bucket."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        return None
    bucket, _sep, key = url[len("s3://"):].partition("/")
    if not bucket:
        return None
    return bucket, key.rpartition("/")[0] + "/" if "/" in key else ""


def boot_script(variables, compute_script, path):
    """Where the boot script goes: {url, bucket, key, sha256, src}, or None (and a problem) when that is unknown.

    cluster_config_node_setup_script_location names an s3:// folder; when it is empty, the folder of the
    compute nodes' bootstrap script is used ("next to the bootstrap scripts").
    """
    location = variables.get("node_setup_script_location")
    variable = PREFIX + "node_setup_script_location"
    if blank(location):
        if blank(compute_script):
            return None  # reported as missing already
        folder = _folder(compute_script)
        if folder is None:
            variables.problems.append(problem(
                path, None, "%s is not set and %scompute_node_bootstrap_script (%s) is not an s3:// URL, so there is "
                "no S3 folder to upload the node-setup boot script to" % (variable, PREFIX, short_repr(compute_script)),
                "Set %s to an s3:// folder the nodes may read (e.g. s3://my-bucket/bootstrap/), or set "
                "%snode_setup_enabled: false." % (variable, PREFIX), variable))
            return None
    else:
        folder = _folder(location if location.endswith("/") else location + "/")
        if folder is None:
            variables.problems.append(problem(path, location, "%s must be an s3:// folder, e.g. "
                                              "s3://my-bucket/bootstrap/ (got %s)" % (variable, short_repr(location)),
                                              "Give %s as s3://<bucket>/<folder>/." % variable, variable))
            return None
    sha256 = boot_script_sha256()
    bucket, prefix = folder
    key = "%s%sv%d.sh" % (prefix, BOOT_SCRIPT_PREFIX, loader_interface())
    return {"url": "s3://%s/%s" % (bucket, key), "bucket": bucket, "key": key, "sha256": sha256,
            "src": BOOT_SCRIPT_PATH}


def step(script, directory, wait_seconds):
    """The OnNodeConfigured step that runs the loader: its Args are the user's settings only."""
    return {"Script": script["url"], "Args": ["--dir", str(directory), "--wait", str(wait_seconds)]}


# Where users write on a ParallelCluster cluster: their homes, temporary directories, the instance store.
USER_WRITABLE_DIRS = ("/home", "/tmp", "/var/tmp", "/dev/shm", "/scratch")


def writable_dir_problems(directory, config):
    """A problem when the bundle's directory is under a place users write to - /home, /tmp, the instance store, the
    config's shared storage (/fsx, /lustre, ...): whoever can write there gets root on every node at its next boot.
    The head node checks the real owners and modes when the bundle is staged; this catches the obvious offline."""
    if not isinstance(directory, str) or not directory.startswith("/"):
        return []
    mounts = [storage.get("MountDir") for storage in config.get("SharedStorage") or [] if isinstance(storage, dict)]
    mounts += [((queue.get("ComputeSettings") or {}).get("LocalStorage") or {}).get("EphemeralVolume", {}).get("MountDir")
               for queue in (config.get("Scheduling") or {}).get("SlurmQueues") or [] if isinstance(queue, dict)]
    places = [m if m.startswith("/") else "/" + m for m in mounts if isinstance(m, str) and m] + list(USER_WRITABLE_DIRS)
    normal = os.path.normpath(directory)
    for place in places:
        place = os.path.normpath(place)
        if normal == place or normal.startswith(place.rstrip("/") + "/"):
            variable = PREFIX + "node_setup_dir"
            return [problem("", directory, "%s (%s) is under %s, where the cluster's users can write: whoever writes "
                            "the node-setup bundle runs code as root on every compute node" % (variable, directory, place),
                            "Keep it where only root writes, e.g. /opt/slurm/hpc-pcluster/node-setup (the default), and "
                            "set pcluster_node_setup_dir to the same.", variable)]
    return []
