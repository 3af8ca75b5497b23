# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verify role's container checks: Docker and Enroot on every node, Pyxis in Slurm, a container smoke job."""

from __future__ import annotations

import glob
import os

from ansible_collections.hpc.pcluster.plugins.module_utils.slurm.parsers import (
    docker_version,
    enroot_version,
    plugstack_includes,
    plugstack_references,
)

DEFAULT_PLUGSTACK = "/opt/slurm/etc/plugstack.conf"
CONTAINERS_HINT = "apply the %s role (playbooks/containers.yml)"


def check_node_containers(report, name, facts, docker_wanted=True):
    """docker (when wanted) and enroot of a compute node, from its probe answers."""
    docker = (facts.get("docker") or ["absent"])[0]
    enroot = (facts.get("enroot") or ["absent"])[0]
    if docker_wanted:
        report.add("docker", name, "docker installed", docker_version(docker) or docker,
                   docker != "absent" and bool(docker_version(docker)), CONTAINERS_HINT % "docker")
    report.add("enroot", name, "enroot installed", enroot_version(enroot) or enroot,
               enroot != "absent" and bool(enroot_version(enroot)), CONTAINERS_HINT % "enroot")


def plugstack_text(path, read_file):
    """A plugstack.conf and the files its include lines name, as one text."""
    texts = [read_file(path)]
    for pattern in plugstack_includes(texts[0]):
        texts += [read_file(included) for included in sorted(glob.glob(pattern))]
    return "\n".join(texts)


def check_containers(report, runner, params, head, slurm_config, usable, check_mode, read_file):
    """docker (unless params' docker is false), enroot, pyxis_plugin, pyxis_loaded (and container_smoke when an image
    is given) on the head node."""
    if params["docker"]:
        rc, out, err = runner.run(["docker", "--version"])
        version = docker_version(out)
        report.add("docker", head, "docker installed", version or (err or out).strip() or "not found",
                   rc == 0 and bool(version), CONTAINERS_HINT % "docker")
    rc, out, err = runner.run(["enroot", "version"])
    version = enroot_version(out) if rc == 0 else ""
    report.add("enroot", head, "enroot installed", version or (err or out).strip() or "not found", bool(version),
               CONTAINERS_HINT % "enroot")

    plugin = params["pyxis_plugin_path"]
    plugstack = slurm_config.get("PlugStackConfig", "") or DEFAULT_PLUGSTACK
    present = os.path.isfile(plugin)
    referenced = plugstack_references(plugstack_text(plugstack, read_file), plugin)
    seen = "%s %s; %s" % (plugin, "present" if present else "missing",
                          "enabled in %s" % plugstack if referenced else "not referenced by %s" % plugstack)
    report.add("pyxis_plugin", head, "%s present and enabled in plugstack" % plugin, seen, present and referenced,
               CONTAINERS_HINT % "pyxis")

    rc, out, err = runner.run([runner.slurm("srun"), "--help"])
    loaded = "--container-image" in out
    report.add("pyxis_loaded", head, "srun --help lists --container-image", "listed" if loaded else "not listed",
               loaded, "Slurm has not loaded Pyxis: check plugstack.conf.d and run 'scontrol reconfigure'")
    if params["container_smoke_image"]:
        _check_container_smoke(report, runner, params, head, usable, check_mode)


def _check_container_smoke(report, runner, params, head, usable, check_mode):
    image = params["container_smoke_image"]
    expected = "srun --container-image=%s true succeeds" % image
    if check_mode or not usable:
        report.add("container_smoke", head, expected, "not run", False, "no usable compute node",
                   unavailable_reason="not run in check mode" if check_mode else None)
        return
    argv = [runner.slurm("srun"), "--nodes=1", "--ntasks=1", "--nodelist=%s" % usable[0], "--quiet",
            "--immediate=%d" % params["srun_immediate"], "--container-image=%s" % image] + \
        list(params["srun_extra_args"]) + ["true"]
    rc, dummy, err = runner.run(argv, timeout=params["srun_timeout"])
    report.add("container_smoke", usable[0], expected,
               "rc %s%s" % (rc, (": " + err.strip()[:300]) if err.strip() else ""), rc == 0,
               "the image could not be pulled or started: check the registry access and enroot.conf")
