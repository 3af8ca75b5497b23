# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters used by the cluster_config role to build, report on and render a cluster config."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hpc.pcluster.plugins.module_utils.cluster_config import (
    build_cluster_config,
    format_problems,
    merge_problems,
    validate_config,
    variable_for,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.config_file import render_yaml


def cluster_config_build(variables, schema=True):
    """``{cluster_config_* name: value}`` -> ``{config, problems, sources, schema_checked}``.

    ``problems`` holds what building found (missing or mistyped variables, unknown
    variables and keys), then the offline checks of the result: the collection's
    rules and, with ``schema`` and aws-parallelcluster installed, ParallelCluster's
    ClusterSchema run in this process. Each problem names its variable where known.
    """
    if not isinstance(variables, dict):
        raise AnsibleFilterError("cluster_config_build expects a mapping of cluster_config_* variables")
    built = build_cluster_config(variables)
    found, built["schema_checked"] = validate_config(built["config"], variables.get("cluster_config_cluster_name"),
                                                     use_schema=schema)
    problems = merge_problems(built["problems"], found)
    for item in problems:
        if not item.get("variable"):
            variable = variable_for(item["path"], built["sources"])
            if variable:
                item["variable"] = variable
    built["problems"] = problems
    return built


def cluster_config_report(build, validation=None, cluster_name=None):
    """Merge the build problems with config_validate's errors: ``{problems, msg}``, msg empty when valid."""
    if not isinstance(build, dict):
        raise AnsibleFilterError("cluster_config_report expects the result of cluster_config_build")
    problems = list(build.get("problems") or [])
    errors = list((validation or {}).get("errors") or []) if isinstance(validation, dict) else []
    sources = build.get("sources") or {}
    merged = merge_problems(problems, [dict(e) for e in errors])
    for item in merged:
        if not item.get("variable"):
            variable = variable_for(item.get("path") or "", sources)
            if variable:
                item["variable"] = variable
    return {"problems": merged, "msg": format_problems(merged, sources, cluster_name) if merged else ""}


def cluster_config_yaml(config):
    """The config as YAML text from a YAML dumper (keys in build order, strings quoted as needed)."""
    if not isinstance(config, dict):
        raise AnsibleFilterError("cluster_config_yaml expects the cluster config mapping")
    return render_yaml(config)


class FilterModule:
    """hpc.pcluster cluster config filters."""

    def filters(self):
        return {
            "cluster_config_build": cluster_config_build,
            "cluster_config_report": cluster_config_report,
            "cluster_config_yaml": cluster_config_yaml,
        }
