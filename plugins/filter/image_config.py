# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the image_config role: build and check a ParallelCluster image config, report its problems."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import format_problems
from ansible_collections.hpc.pcluster.plugins.plugin_utils.image_config_builder import build_image_config


def image_config_build(settings):
    """The role's settings -> ``{config, image_id, problems, sources, msg}``; msg reports every problem, empty when none."""
    if not isinstance(settings, dict):
        raise AnsibleFilterError("image_config_build expects a mapping of the image_config role's settings")
    built = build_image_config(settings)
    built["msg"] = format_problems(built["problems"], built["sources"], built["image_id"],
                                   what="image configuration") if built["problems"] else ""
    return built


class FilterModule:
    """hpc.pcluster image config filters."""

    def filters(self):
        return {"image_config_build": image_config_build}
