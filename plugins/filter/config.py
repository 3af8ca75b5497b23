# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the cluster_config role: build and check a cluster config, report its problems (the action
cluster_config_write writes the file)."""

from __future__ import annotations

import sys

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import (
    format_problems,
    merge_problems,
    name_variables,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.config.rules import validate_config
from ansible_collections.hpc.pcluster.plugins.module_utils.config.schema import HAS_PCLUSTER_SCHEMA
from ansible_collections.hpc.pcluster.plugins.module_utils.plain_data import to_plain
from ansible_collections.hpc.pcluster.plugins.plugin_utils.config_builder import build_cluster_config
from ansible_collections.hpc.pcluster.plugins.plugin_utils.role_variables import role_options

display = Display()


def cluster_config_build(variables, spec, schema=True):
    """``{cluster_config_* name: value}`` -> ``{config, problems, sources, warnings, schema_checked, ...}``.

    ``spec`` is the role's meta/argument_specs.yml (parsed), which the role reads: every variable's type and
    default, the queues' keys.

    ``problems`` holds what building found (missing or mistyped variables, unknown
    variables and keys), then the offline checks of the result: the collection's
    rules and, with ``schema`` and aws-parallelcluster installed, ParallelCluster's
    ClusterSchema run in this process. No AWS call. Each problem names its variable
    where known; each warning is also shown as an Ansible warning.
    """
    if not isinstance(variables, dict):
        raise AnsibleFilterError("cluster_config_build expects a mapping of cluster_config_* variables")
    try:
        options = role_options(to_plain(spec))  # its defaults go into the config: plain data, not Ansible's
    except ValueError as exc:
        raise AnsibleFilterError("cluster_config_build: the second argument is %s" % exc)
    built = build_cluster_config(variables, options)
    found, built["schema_checked"], built["schema_note"] = validate_config(built["config"], built["cluster_name"],
                                                                           use_schema=schema)
    built["problems"] = name_variables(merge_problems(built["problems"], found), built["sources"])
    if built["schema_note"]:
        where = "" if HAS_PCLUSTER_SCHEMA else " for the controller's Python (%s): install requirements.txt there" % (
            sys.executable)
        built["warnings"].append("%s%s." % (built["schema_note"], where))
    for warning in built["warnings"]:
        display.warning(warning)
    return built


def cluster_config_report(build, validation=None, cluster_name=None):
    """Merge the build problems with config_validate's errors: ``{problems, msg}``, msg empty when valid."""
    if not isinstance(build, dict):
        raise AnsibleFilterError("cluster_config_report expects the result of cluster_config_build")
    errors = list((validation or {}).get("errors") or []) if isinstance(validation, dict) else []
    sources = build.get("sources") or {}
    merged = name_variables(merge_problems(list(build.get("problems") or []), [dict(e) for e in errors]), sources)
    return {"problems": merged, "msg": format_problems(merged, sources, cluster_name) if merged else ""}


class FilterModule:
    """hpc.pcluster cluster config filters."""

    def filters(self):
        return {
            "cluster_config_build": cluster_config_build,
            "cluster_config_report": cluster_config_report,
        }
