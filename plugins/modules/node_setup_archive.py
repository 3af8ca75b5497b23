#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_setup_archive
short_description: Pack a collection tree into a reproducible archive named after its content
version_added: 0.1.0
description:
  - Packs what the nodes run of a collection (the one the controller runs, for the node-setup bundle of role
    C(hpc.pcluster.node_setup)) into C(<dest_dir>/hpc-pcluster-<digest>.tar.gz), where C(<digest>) is a SHA-256
    over every file's path, mode and content.
  - Only the entries O(include) names at the top of the collection are packed (an allow-list), and within them no
    name O(exclude) matches. A controller's checkout also holds inventories, host variables, keys, vault password
    files, C(.env) files and logs, which must not reach shared storage.
  - Every entry is root's only (files C(0600), C(0700) when executable, directories C(0700)), so that the
    collection, unpacked on the head node's shared storage, is readable by root alone.
  - The archive is reproducible - sorted entries, owner root, one fixed time stamp, gzip without a time stamp -
    so the same files always give the same bytes, and an archive already there is not written again.
  - Symbolic links are not followed (a checkout links C(collections/ansible_collections/hpc/pcluster) back to
    itself) and not packed.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  src:
    description: The collection's root directory (the one holding C(galaxy.yml) or C(MANIFEST.json)).
    type: path
    required: true
  dest_dir:
    description: Where the archive is written (created with mode 0700 when missing).
    type: path
    required: true
  include:
    description:
      - The entries at the top of O(src) that are packed (files or directories); anything else there is not.
    type: list
    elements: str
    default: [galaxy.yml, MANIFEST.json, FILES.json, meta, plugins, roles, playbooks]
  exclude:
    description:
      - Names of files and directories left out, at any depth below O(include) (shell patterns, e.g. C(*.pyc)).
      - Hidden names (starting with C(.)) are always left out.
    type: list
    elements: str
    default: [__pycache__, "*.pyc", molecule, tests, "*.log", "*.retry", "*.pem", "*.key", "*.tar.gz", "*.swp",
              "*.orig", "*.rej", "*~"]
attributes:
  check_mode:
    support: full
    description: Computes the digest and reports whether the archive would be written; writes nothing.
  diff_mode:
    support: none
    description: No diff is shown.
"""

EXAMPLES = r"""
- name: Pack the collection this role belongs to
  hpc.pcluster.node_setup_archive:
    src: "{{ role_path }}/../.."
    dest_dir: ~/.cache/hpc-pcluster/archives
  delegate_to: localhost
  register: collection_archive
"""

RETURN = r"""
digest:
  description: SHA-256 over the packed files' paths, modes and contents.
  returned: always
  type: str
  sample: 3b5c1f0e9a8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b
path:
  description: The archive.
  returned: always
  type: str
  sample: /root/.cache/hpc-pcluster/archives/hpc-pcluster-3b5c1f0e9a8d7c6b.tar.gz
files:
  description: How many files it holds.
  returned: always
  type: int
  sample: 187
"""

import fnmatch
import gzip
import hashlib
import io
import os
import stat
import tarfile

from ansible.module_utils.basic import AnsibleModule

# A fixed time stamp for every entry: the archive's bytes depend on the files' contents only.
EPOCH = 946684800  # 2000-01-01


# Modes in the archive: root's only.
FILE_MODE = 0o600
EXEC_MODE = 0o700
DIR_MODE = 0o700
DEFAULT_INCLUDE = ["galaxy.yml", "MANIFEST.json", "FILES.json", "meta", "plugins", "roles", "playbooks"]
DEFAULT_EXCLUDE = ["__pycache__", "*.pyc", "molecule", "tests", "*.log", "*.retry", "*.pem", "*.key", "*.tar.gz",
                   "*.swp", "*.orig", "*.rej", "*~"]


def _left_out(name, exclude):
    return name.startswith(".") or any(fnmatch.fnmatch(name, pattern) for pattern in exclude)


def collect(src, include, exclude):
    """(relative path, mode, content) of every file to pack, and (relative path, DIR_MODE, None) of every directory
    holding them, sorted: the entries include names at the top of src, without excluded or hidden names below."""
    found = []
    for top in sorted(set(include)):
        path = os.path.join(src, top)
        if os.path.islink(path) or _left_out(top, exclude):
            continue
        if os.path.isfile(path):
            found.append(_file_entry(src, path))
            continue
        for root, dirs, files in os.walk(path, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not _left_out(d, exclude) and not os.path.islink(os.path.join(root, d)))
            found.append((os.path.relpath(root, src), DIR_MODE, None))
            found.extend(_file_entry(src, os.path.join(root, name)) for name in sorted(files)
                         if not _left_out(name, exclude) and not os.path.islink(os.path.join(root, name)))
    return sorted(found, key=lambda entry: entry[0])


def _file_entry(src, path):
    mode = EXEC_MODE if os.stat(path).st_mode & stat.S_IXUSR else FILE_MODE
    with open(path, "rb") as handle:
        return os.path.relpath(path, src), mode, handle.read()


def digest_of(files):
    digest = hashlib.sha256()
    for path, mode, content in files:
        if content is not None:
            digest.update(("%s\0%o\0%s\n" % (path, mode, hashlib.sha256(content).hexdigest())).encode())
    return digest.hexdigest()


def archive_bytes(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, mode, content in files:
            info = tarfile.TarInfo(path)
            info.mode, info.mtime = mode, EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def main():
    module = AnsibleModule(argument_spec=dict(
        src=dict(type="path", required=True), dest_dir=dict(type="path", required=True),
        include=dict(type="list", elements="str", default=list(DEFAULT_INCLUDE)),
        exclude=dict(type="list", elements="str", default=list(DEFAULT_EXCLUDE))),
        supports_check_mode=True)
    src = module.params["src"]
    if not any(os.path.isfile(os.path.join(src, name)) for name in ("galaxy.yml", "MANIFEST.json")):
        module.fail_json(msg="src=%r holds neither galaxy.yml nor MANIFEST.json: give the collection's root directory"
                         % src)
    files = collect(src, module.params["include"], module.params["exclude"])
    digest = digest_of(files)
    path = os.path.join(module.params["dest_dir"], "hpc-pcluster-%s.tar.gz" % digest[:16])
    result = dict(digest=digest, path=path, files=sum(1 for entry in files if entry[2] is not None))
    if os.path.isfile(path):
        module.exit_json(changed=False, **result)
    if not module.check_mode:
        os.makedirs(module.params["dest_dir"], mode=0o700, exist_ok=True)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "wb") as handle:
            handle.write(archive_bytes(files))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
