# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the container roles (docker, enroot) and the verify role for private registries:

- ``ecr_registries``        the ECR registries a node gets credentials for: the cluster's own and more
- ``ecr_problems``          what is wrong with a role's ECR variables, each with its value and fix
- ``enroot_ecr_credentials`` Enroot's credentials file for those registries (passwords from the instance role)
- ``docker_ecr_config``     Docker's config.json with the ECR credential helper for them, the rest kept
- ``enroot_stage_problems`` what is wrong with the images to stage
- ``enroot_staged_path``    the stable path of an image staged on shared storage
- ``verify_container_registry_markdown`` the verify report's section on the registry image's jobs
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.hpc.pcluster.plugins.module_utils.registry import ecr
from ansible_collections.hpc.pcluster.plugins.module_utils.registry.staging import staged_name
from ansible_collections.hpc.pcluster.plugins.module_utils.registry.client import parse_reference


def ecr_registries(account_id, region, extra=None):
    """The cluster's own registry (when its account and region are known) and the extra ones."""
    return ecr.registries(str(account_id or ""), str(region or ""), list(extra or []))


def ecr_problems(prefix, account_id, region, registries, aws_cli=None):
    """Problems with <prefix>_ecr_account_id, _region, _registries (and _aws_cli when given)."""
    problems = ecr.registry_problems(prefix, str(account_id or ""), str(region or ""), registries)
    if aws_cli is not None:
        problems += ecr.aws_cli_problems(prefix, aws_cli)
    return problems


def enroot_ecr_credentials(registries, aws_cli):
    """Enroot's credentials file: a line per registry, the password `aws ecr get-login-password` gives."""
    problems = ecr.aws_cli_problems("enroot", aws_cli)
    if problems:
        raise AnsibleFilterError(problems[0])
    return ecr.enroot_credentials(list(registries), aws_cli)


def docker_ecr_config(current, registries, path="config.json"):
    """Docker's client configuration (current: the file's text) with credHelpers for the registries."""
    try:
        return ecr.docker_config(current or "", list(registries))
    except ValueError as exc:
        raise AnsibleFilterError("hpc.pcluster.docker: %s is not Docker's client configuration (%s): fix or remove "
                                 "it, or set docker_ecr_credentials: false" % (path, exc))


def enroot_stage_problems(images, directory, keep):
    """Problems with enroot_stage_images, enroot_stage_dir and enroot_stage_keep."""
    problems = []
    if not isinstance(images, (list, tuple)):
        return ["enroot_stage_images must be a list of images, e.g. "
                "['123456789012.dkr.ecr.us-east-1.amazonaws.com/team/train:v1']"]
    for image in images:
        try:
            parse_reference(str(image))
        except ValueError as exc:
            problems.append("enroot_stage_images entry %s" % exc)
    if not str(directory or "").startswith("/"):
        problems.append("enroot_stage_dir=%r must be an absolute path on shared storage, e.g. /fsx/containers"
                        % (directory,))
    try:
        if int(keep) < 0:
            raise ValueError
    except (TypeError, ValueError):
        problems.append("enroot_stage_keep=%r must be 0 or more (earlier digests kept per image)" % (keep,))
    return problems


def enroot_staged_path(image, directory):
    """Where an image staged by role hpc.pcluster.enroot (tasks_from: stage_image) is for jobs: the stable name."""
    try:
        return os.path.join(str(directory), staged_name(parse_reference(str(image))))
    except ValueError as exc:
        raise AnsibleFilterError("enroot_staged_path: %s" % exc)


def verify_container_registry_markdown(result):
    """The report's section on the registry image: each job (pulled by every node, or staged), its nodes and time."""
    runs = (result or {}).get("runs") or []
    if not runs:
        return ""
    staged = (result or {}).get("staged") or {}
    record = staged.get("record") or {}
    lines = ["## Container image from the registry", "",
             "| job | image | nodes | time (s) | started on |", "|---|---|---|---:|---|"]
    for run in runs:
        what = "pulled by every node" if run.get("source") == "registry" else "staged squashfs (no pull)"
        nodes = run.get("nodes") or []
        lines.append("| %s | `%s` | %s | %s | %d of %d |" % (
            what, run.get("image"), ", ".join(nodes), run.get("seconds"), len(run.get("answered") or []), len(nodes)))
    if record:
        lines += ["", "Staged once: %s (%s), imported at %s in %s s." % (
            staged.get("path"), staged.get("digest"), record.get("imported_at"), record.get("import_seconds"))]
    for run in runs:
        failure = run.get("failure") or {}
        for node in failure.get("nodes") or []:
            said = (failure.get("password") or {}).get(node)
            lines += ["", "Pull failed on %s (%s): %s%s" % (
                node, (failure.get("kinds") or {}).get(node), (failure.get("detail") or {}).get(node),
                ("; its `aws ecr get-login-password`: %s" % said) if said else "")]
    return "\n".join(lines) + "\n"


class FilterModule:
    """hpc.pcluster filters for private registries."""

    def filters(self):
        return {"ecr_registries": ecr_registries, "ecr_problems": ecr_problems,
                "enroot_ecr_credentials": enroot_ecr_credentials, "docker_ecr_config": docker_ecr_config,
                "enroot_stage_problems": enroot_stage_problems, "enroot_staged_path": enroot_staged_path,
                "verify_container_registry_markdown": verify_container_registry_markdown}
