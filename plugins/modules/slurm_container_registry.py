#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: slurm_container_registry
short_description: Start an image from a private registry on every compute node through Pyxis, pulled and staged
version_added: 0.1.0
description:
  - Runs on the head node. One C(srun --container-image=<image>) per partition across the given compute nodes;
    every node pulls the image with its own credentials (Enroot's credentials file, for Amazon ECR the node's
    instance role) and prints its name from inside the container. Each node gets a C(container_registry) check
    with the job's wall time (pull, import and start).
  - When the image was staged on shared storage (module M(hpc.pcluster.enroot_stage_image)), a second job starts
    the staged squashfs on the same nodes, with no pull; each node gets a C(container_staged) check with that
    job's time and the import time the staging recorded.
  - A node that could not authenticate to an ECR registry (HTTP 401, which Enroot may not print) is asked, with one
    more job, what C(aws ecr get-login-password) says there; its check says the node has no ECR credentials and
    names the policy the nodes' role needs (C(AmazonEC2ContainerRegistryReadOnly)).
  - Returns the checks (like M(hpc.pcluster.slurm_verify)) and the runs with their times.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  image:
    description: The image, as C(srun --container-image) takes it, e.g. V(123456789012.dkr.ecr.us-east-1.amazonaws.com/team/train:v1).
    type: str
    required: true
  staged:
    description: The staged squashfs of the image (its stable name), checked when it exists; empty for none.
    type: path
    default: ""
  nodes:
    description:
      - Slurm names of the compute nodes to start it on (the usable nodes of the other checks); one job per partition
        (read from C(sinfo)).
    type: list
    elements: str
    default: []
  aws_cli:
    description: The AWS CLI on the nodes, asked for an ECR password when a node could not authenticate.
    type: str
    default: /usr/local/bin/aws
  slurm_bin_dir:
    description: Directory holding C(srun). Found automatically when empty.
    type: str
    default: ""
  timeout:
    description: Seconds each job may take (a first pull of a large image included).
    type: int
    default: 600
  srun_immediate:
    description: Seconds C(srun) waits for the nodes (C(--immediate)).
    type: int
    default: 120
  srun_extra_args:
    description: Extra C(srun) arguments.
    type: list
    elements: str
    default: []
  not_available:
    description: Checks that cannot be shown here, each check name with its reason; reported as not available.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: Starts no job; the checks are reported not available (not run in check mode).
  diff_mode:
    support: none
    description: No diff is shown.
"""

EXAMPLES = r"""
- name: Start the training image on every compute node, pulled and staged
  hpc.pcluster.slurm_container_registry:
    image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/team/train:v1
    staged: /fsx/containers/123456789012.dkr.ecr.us-east-1.amazonaws.com_team_train_v1.sqsh
    nodes: [compute-gpu-st-distributed-ml-1, compute-gpu-st-distributed-ml-2]
"""

RETURN = r"""
checks:
  description: The checks, C(container_registry) and C(container_staged) per node.
  returned: always
  type: list
  elements: dict
runs:
  description:
    - One entry per job - C(source) V(registry) or V(staged), partition, nodes, image, rc, seconds (wall time),
      answered (the nodes that started the image), and for a failed pull C(failure) (kind V(auth), V(not_found),
      V(network) or V(other), the error lines, the failed nodes and what their AWS CLI said).
  returned: always
  type: list
  elements: dict
staged:
  description: The staged image - path, digest (what its link points at), record (import time) - or empty.
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.pcluster.plugins.module_utils.registry import staging as image_staging
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.registry_checks import (
    check_pull,
    check_staged,
    group_by_partition,
    not_run,
    run_image,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.registry.client import parse_reference
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.slurm_checks import find_slurm_bin
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.check_report import CheckReport, CommandRunner


def staged_image(path):
    """The staged image behind its stable name: path, digest and the staging's record; {} when not staged."""
    if not path or not os.path.exists(path):
        return {}
    directory, name = os.path.split(path)
    digest = image_staging.current_digest(directory, name) or ""
    record = image_staging.read_json(image_staging.record_path(directory, image_staging.digest_name(digest))) \
        if digest else None
    return dict(path=path, digest=digest, record=record or {})


def main():
    module = AnsibleModule(argument_spec=dict(
        image=dict(type="str", required=True), staged=dict(type="path", default=""),
        nodes=dict(type="list", elements="str", default=[]),
        aws_cli=dict(type="str", default="/usr/local/bin/aws"), slurm_bin_dir=dict(type="str", default=""),
        timeout=dict(type="int", default=600), srun_immediate=dict(type="int", default=120),
        srun_extra_args=dict(type="list", elements="str", default=[]),
        not_available=dict(type="dict", default={})), supports_check_mode=True)
    params = module.params
    try:
        registry = parse_reference(params["image"])["registry"]
    except ValueError as exc:
        module.fail_json(msg="hpc.pcluster.slurm_container_registry: image=%s" % exc)
    report = CheckReport(params["not_available"])
    runner = CommandRunner(module, find_slurm_bin(params["slurm_bin_dir"], os.environ.get("PATH", "")))
    staged = staged_image(params["staged"])
    names = list(params["nodes"])
    runs = []
    if module.check_mode or not names or report.reason("container_registry", names[0]) is not None:
        not_run(report, params, names, staged, module.check_mode)
        module.exit_json(changed=False, checks=report.checks, runs=runs, staged=staged)
    for partition, members in sorted(group_by_partition(runner, names).items()):
        run = dict(run_image(runner, params, partition, members, params["image"]), source="registry")
        check_pull(report, runner, params, run, registry)
        runs.append(run)
        if staged:
            run = dict(run_image(runner, params, partition, members, staged["path"]), source="staged")
            check_staged(report, run, staged)
            runs.append(run)
    module.exit_json(changed=False, checks=report.checks, runs=runs, staged=staged)


if __name__ == "__main__":
    main()
