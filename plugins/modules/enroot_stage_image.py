#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: enroot_stage_image
short_description: Import a container image once into a squashfs on shared storage, named by its digest
version_added: 0.1.0
description:
  - Asks the image's registry for the digest its tag points at (the registry's v2 API, with the credentials
    Enroot's credentials file gives that registry - for Amazon ECR, the instance role's, through
    C(aws ecr get-login-password)), then imports that digest with C(enroot import) into
    O(dest)C(/sha256-<hex>.sqsh), unless that file is already there.
  - A stable name for the reference, O(dest)C(/<registry>_<repository>_<tag>.sqsh), points at the digest's file
    (a symbolic link, moved atomically); jobs start from it with C(srun --container-image=<path>) on every node,
    instead of each node pulling the image.
  - An unchanged digest changes nothing. When the tag moves, the stable name follows and the digests that no
    name keeps any more (each keeps its newest O(keep) + 1) are removed.
  - Each digest has a record next to it (C(sha256-<hex>.json)) with the images it was staged for, when, and how
    long the import took.
  - Run it on one node that mounts the shared storage and has Enroot (the head node); as root.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  image:
    description:
      - The image, as C(srun --container-image) and C(docker pull) take it,
        e.g. V(123456789012.dkr.ecr.us-east-1.amazonaws.com/team/train:v1); a C(@sha256:...) digest pins it.
    type: str
    required: true
  dest:
    description: The staging directory on shared storage (created, mode 0755).
    type: path
    default: /fsx/containers
  credentials_file:
    description: Enroot's credentials file (C($ENROOT_CONFIG_PATH/.credentials)); what role C(hpc.pcluster.enroot) writes.
    type: path
    default: /etc/enroot/config/.credentials
  enroot:
    description: The enroot command.
    type: str
    default: enroot
  keep:
    description: Earlier digests kept for each stable name (jobs already running may use them).
    type: int
    default: 1
  timeout:
    description: Seconds the registry's answers and the import may take.
    type: int
    default: 3600
attributes:
  check_mode:
    support: full
    description: Asks the registry for the digest and reports what would be imported; imports and writes nothing.
  diff_mode:
    support: none
    description: No diff is shown.
notes:
  - An HTTP 401 from an ECR registry is reported as missing credentials, naming the policy the nodes' role needs
    (C(AmazonEC2ContainerRegistryReadOnly)).
"""

EXAMPLES = r"""
- name: Stage the training image once for every node
  hpc.pcluster.enroot_stage_image:
    image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/team/train:v1
  register: staged

- name: Start it on every node
  ansible.builtin.command:
    argv: [srun, -N4, "--container-image={{ staged.link }}", python, -c, "import torch"]
"""

RETURN = r"""
image:
  description: The image as given.
  returned: always
  type: str
digest:
  description: The digest staged.
  returned: always
  type: str
  sample: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
path:
  description: The digest's squashfs.
  returned: always
  type: str
  sample: /fsx/containers/sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sqsh
link:
  description: The stable name for the image, pointing at O(dest)/sha256-<hex>.sqsh.
  returned: always
  type: str
  sample: /fsx/containers/123456789012.dkr.ecr.us-east-1.amazonaws.com_team_train_v1.sqsh
imported:
  description: Whether this run imported the image (false when the digest was there, and in check mode).
  returned: always
  type: bool
import_seconds:
  description: How long the import took (this run's, else the record's of the run that imported it).
  returned: always
  type: float
record:
  description: The digest's record (digest, images, imported_at, import_seconds, size); empty in check mode before an import.
  returned: always
  type: dict
removed:
  description: Digests removed because no stable name keeps them any more.
  returned: always
  type: list
  elements: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.pcluster.plugins.module_utils.registry import staging
from ansible_collections.hpc.pcluster.plugins.module_utils.registry.ecr import credentials_hint, unauthorized_hint
from ansible_collections.hpc.pcluster.plugins.module_utils.registry.client import (
    RegistryError,
    manifest_digest,
    netrc_credentials,
    parse_reference,
)


def resolve(module, reference):
    """The digest the reference names now; fails the module with what the registry said."""
    try:
        credentials = netrc_credentials(module.params["credentials_file"], reference["registry"], module.run_command)
        return manifest_digest(reference, credentials, timeout=min(module.params["timeout"], 120))
    except RegistryError as exc:
        msg = "hpc.pcluster.enroot_stage_image: %s: %s" % (module.params["image"], str(exc).rstrip("."))
        if exc.no_password:
            msg += ". " + credentials_hint(reference["registry"])
        elif exc.status == 401:
            msg += ". " + unauthorized_hint(reference["registry"])
        module.fail_json(msg=msg, status=exc.status)
    return None


def import_digest(module, reference, digest, dest):
    """enroot import of the digest into dest/sha256-<hex>.sqsh (through a temporary name). Returns the seconds."""
    target = os.path.join(dest, staging.digest_name(digest))
    tmp = os.path.join(dest, ".%s.tmp-%d" % (staging.digest_name(digest), os.getpid()))
    started = time.time()
    rc, out, err = module.run_command(["timeout", str(module.params["timeout"]), module.params["enroot"], "import",
                                       "--output", tmp, "%s@%s" % (reference["uri"], digest)])
    if rc != 0 or not os.path.isfile(tmp):
        if os.path.exists(tmp):
            os.unlink(tmp)
        text = (err or out).strip()
        msg = "hpc.pcluster.enroot_stage_image: enroot import of %s@%s failed (rc %s): %s" % (
            module.params["image"], digest, rc, text[-2000:])
        if "401" in text or "Authentication succeeded" not in text and "Authenticating with user" in text:
            msg += ". " + unauthorized_hint(reference["registry"])
        module.fail_json(msg=msg, rc=rc)
    os.chmod(tmp, 0o644)
    os.rename(tmp, target)
    return time.time() - started


def main():
    module = AnsibleModule(argument_spec=dict(
        image=dict(type="str", required=True), dest=dict(type="path", default="/fsx/containers"),
        credentials_file=dict(type="path", default="/etc/enroot/config/.credentials"),
        enroot=dict(type="str", default="enroot"), keep=dict(type="int", default=1),
        timeout=dict(type="int", default=3600)), supports_check_mode=True)
    params = module.params
    try:
        reference = parse_reference(params["image"])
    except ValueError as exc:
        module.fail_json(msg="hpc.pcluster.enroot_stage_image: image=%s" % exc)
    if params["keep"] < 0:
        module.fail_json(msg="hpc.pcluster.enroot_stage_image: keep=%s must be 0 or more" % params["keep"])
    dest, name = params["dest"], staging.staged_name(reference)
    digest = resolve(module, reference)
    result = dict(image=params["image"], digest=digest, path=os.path.join(dest, staging.digest_name(digest)),
                  link=os.path.join(dest, name), imported=False, import_seconds=0.0, record={}, removed=[])
    todo = staging.plan(dest, name, digest) if os.path.isdir(dest) else {"import": True, "link": True}
    if module.check_mode or not (todo["import"] or todo["link"]):
        result["record"] = staging.read_json(staging.record_path(dest, staging.digest_name(digest))) or {}
        result["import_seconds"] = result["record"].get("import_seconds", 0.0)
        module.exit_json(changed=todo["import"] or todo["link"], **result)
    if not os.path.isdir(dest):
        os.makedirs(dest, 0o755)
    with staging.locked(dest):
        todo = staging.plan(dest, name, digest)
        seconds = import_digest(module, reference, digest, dest) if todo["import"] else None
        record = staging.record_import(dest, digest, params["image"], seconds or 0.0)
        removed = staging.point(dest, name, digest, params["image"], params["keep"]) if todo["link"] else []
    result.update(imported=seconds is not None, import_seconds=round(seconds, 2) if seconds is not None
                  else record.get("import_seconds", 0.0), record=record, removed=removed)
    module.exit_json(changed=bool(todo["import"] or todo["link"]), **result)


if __name__ == "__main__":
    main()
