#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_setup_bake
short_description: Write the script that bakes the node setup into a ParallelCluster custom image
version_added: 0.1.0
description:
  - Writes a self-contained shell script, C(<dest_dir>/hpc-pcluster-node-bake-<id>.sh), for the C(Build.Components)
    of a ParallelCluster image configuration (role C(hpc.pcluster.image_config)). ParallelCluster's Image Builder
    component downloads it to the build instance and runs it as root.
  - The script carries, below its shell part, everything the node-setup bundle of role C(hpc.pcluster.node_setup)
    gives a compute node - the collection (O(collection_archive)), the variables (O(vars_text)), the bundle's runner
    and its Ansible configuration - and the wheels of a pinned ansible-core for the image's Python. On the build
    instance it builds a virtualenv from the wheels without an index, applies the collection's node-local playbook
    (C(run.py bake)) and records what it applied in C(/var/lib/hpc-pcluster/node-setup/image.json), which the boot step
    of a node started from the image compares with the cluster's bundle. Nothing is downloaded on the build instance.
  - The script is reproducible (sorted entries, fixed owners and time stamps, gzip without a time stamp). It is named
    after what it applies (C(<id>) - a digest of the collection's digest, the variables, the runner, the shell part,
    the Python and the ansible-core release), so the same setup gives the same file and S3 key even in check mode,
    when the archive and the wheels may not be there yet; a script already there is not written again.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  collection_archive:
    description: The collection as M(hpc.pcluster.node_setup_archive) packs it.
    type: path
    required: true
  vars_text:
    description: The variables the nodes get, as the YAML text of a bundle's C(vars.yml).
    type: str
    required: true
  run_py:
    description: The bundle's runner (C(files/run.py) of role C(hpc.pcluster.node_setup)).
    type: path
    required: true
  ansible_cfg:
    description: The bundle's Ansible configuration, as text.
    type: str
    required: true
  manifest:
    description:
      - What the bake applies, written as the bundle's C(manifest.json) and kept in the image's record - C(collection)
        (the archive's digest), C(vars_digest) and C(node_rendered) (filter C(hpc.pcluster.node_setup_vars_identity)),
        C(python), C(ansible_core).
    type: dict
    required: true
  wheels:
    description: A directory with the wheels of ansible-core, its dependencies and pip, for the image's Python.
    type: path
    required: true
  header:
    description: The script's shell part (C(hpc-pcluster-node-bake.sh) of role C(hpc.pcluster.node_setup)).
    type: path
    required: true
  python:
    description: The Python the image runs the bundle with (an absolute path).
    type: str
    default: /usr/bin/python3
  python_version:
    description: Its version, as C(3.10); the script refuses another.
    type: str
    required: true
  ansible_core:
    description: The ansible-core release the wheels hold.
    type: str
    required: true
  dest_dir:
    description: Where the script is written (created with mode 0700 when missing).
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description:
      - Computes the script's id (and, when the archive and the wheels are there, its content) and reports whether it
        would be written; writes nothing.
  diff_mode:
    support: none
    description: No diff is shown.
"""

EXAMPLES = r"""
- name: The bake script of the image
  hpc.pcluster.node_setup_bake:
    collection_archive: "{{ archive.path }}"
    vars_text: "{{ vars_text }}"
    run_py: "{{ role_path }}/files/run.py"
    ansible_cfg: "{{ lookup('ansible.builtin.template', 'ansible.cfg.j2') }}"
    manifest: {collection: "{{ archive.digest }}", vars_digest: 0a1b2c3d4e5f6a7b, node_rendered: []}
    wheels: ~/.cache/hpc-pcluster/wheels/py3.10-x86_64-ansible-core-2.17.14
    header: "{{ role_path }}/files/hpc-pcluster-node-bake.sh"
    python_version: "3.10"
    ansible_core: 2.17.14
    dest_dir: ~/.cache/hpc-pcluster/bake
  delegate_to: localhost
  register: bake
"""

RETURN = r"""
path:
  description: The script.
  returned: always
  type: str
  sample: /root/.cache/hpc-pcluster/bake/hpc-pcluster-node-bake-0123456789abcdef.sh
sha256:
  description: The script's SHA-256; null in check mode when the archive or the wheels are not there yet.
  returned: always
  type: str
size:
  description: The script's size in bytes (null with RV(sha256)).
  returned: always
  type: int
  sample: 9876543
manifest:
  description: The manifest the script carries, with its C(id) (the digest of what it applies).
  returned: always
  type: dict
"""

import base64
import gzip
import hashlib
import io
import json
import os
import re
import tarfile

from ansible.module_utils.basic import AnsibleModule

PAYLOAD_MARK = "__HPC_PCLUSTER_BAKE_PAYLOAD__"
# Where the script unpacks on the build instance; the bundle's ansible.cfg names the same place.
WORK_DIR = "/var/tmp/hpc-pcluster-bake"
FIXED_TIME = 946684800  # 2000-01-01: every entry's time stamp
SAFE = {"python": r"^/[A-Za-z0-9._/+-]+$", "python_version": r"^3\.[0-9]+$", "ansible_core": r"^[0-9]+\.[0-9]+\.[0-9]+$"}


def _entry(tar, name, data, mode):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, FIXED_TIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def payload(files):
    """A gzipped tar of {name: (bytes, mode)}, entries sorted, owners and times fixed: the same files, the same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            _entry(tar, name, *files[name])
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6) as handle:
        handle.write(raw.getvalue())
    return packed.getvalue()


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def script(params, manifest):
    """The script's bytes: the header with its values filled in, the payload mark, the base64 payload."""
    wheels = sorted(name for name in os.listdir(params["wheels"]) if name.endswith(".whl"))
    if not any(name.startswith("pip-") for name in wheels) or not any(name.startswith("ansible_core-") for name in wheels):
        raise ValueError("wheels=%s must hold the wheels of pip and ansible-core %s" % (params["wheels"], params["ansible_core"]))
    files = {"collection.tar.gz": (read(params["collection_archive"]), 0o644),
             "bundle/run.py": (read(params["run_py"]), 0o644),
             "bundle/ansible.cfg": (params["ansible_cfg"].encode("utf-8"), 0o644),
             "bundle/vars.yml": (params["vars_text"].encode("utf-8"), 0o600),
             "bundle/manifest.json": ((json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o644)}
    files.update({"wheels/%s" % name: (read(os.path.join(params["wheels"], name)), 0o644) for name in wheels})
    header = read(params["header"]).decode("utf-8")
    for key in ("python", "python_version", "ansible_core"):
        header = header.replace("@%s@" % key.upper(), params[key])
    header = header.replace("@WORK_DIR@", WORK_DIR).replace("@BAKE_ID@", manifest["id"])
    encoded = base64.encodebytes(payload(files)).decode("ascii")
    return ("%s\n%s\n%s" % (header.rstrip("\n"), PAYLOAD_MARK, encoded)).encode("ascii")


def bake_manifest(params):
    """The manifest the script carries; its id is a digest of what the bake applies and how."""
    manifest = dict(params["manifest"], mode="bake", python_version=params["python_version"],
                    ansible_core=params["ansible_core"])
    inputs = dict(manifest, vars=params["vars_text"], run=hashlib.sha256(read(params["run_py"])).hexdigest(),
                  header=hashlib.sha256(read(params["header"])).hexdigest(), python_path=params["python"])
    manifest["id"] = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return manifest


def main():
    module = AnsibleModule(argument_spec=dict(
        collection_archive=dict(type="path", required=True), vars_text=dict(type="str", required=True, no_log=True),
        run_py=dict(type="path", required=True), ansible_cfg=dict(type="str", required=True),
        manifest=dict(type="dict", required=True), wheels=dict(type="path", required=True),
        header=dict(type="path", required=True), python=dict(type="str", default="/usr/bin/python3"),
        python_version=dict(type="str", required=True), ansible_core=dict(type="str", required=True),
        dest_dir=dict(type="path", required=True)), supports_check_mode=True)
    params = module.params
    bad = ["%s=%r is not a safe value (%s)" % (key, params[key], pattern) for key, pattern in SAFE.items()
           if not re.match(pattern, params[key])]
    if bad:
        module.fail_json(msg="; ".join(bad))
    try:
        manifest = bake_manifest(params)
        path = os.path.join(params["dest_dir"], "hpc-pcluster-node-bake-%s.sh" % manifest["id"])
        result = dict(path=path, sha256=None, size=None, manifest=manifest)
        if module.check_mode and not (os.path.isfile(params["collection_archive"])
                                      and os.path.isfile(os.path.join(params["wheels"], ".complete"))):
            module.exit_json(changed=not os.path.isfile(path), **result)  # check mode packed and downloaded nothing
        content = script(params, manifest)
    except (OSError, ValueError) as error:
        module.fail_json(msg="cannot write the bake script: %s" % error)
    sha256 = hashlib.sha256(content).hexdigest()
    result.update(sha256=sha256, size=len(content))
    if os.path.isfile(path) and hashlib.sha256(read(path)).hexdigest() == sha256:
        module.exit_json(changed=False, **result)
    if not module.check_mode:
        os.makedirs(params["dest_dir"], mode=0o700, exist_ok=True)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
            handle.write(content)
        os.replace(tmp, path)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
