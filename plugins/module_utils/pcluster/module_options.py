# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options the cluster and image modules share (a name, a state, a config, waits, pcluster's validation), those
the cluster_info and image_info modules share (what to return beside the describe), and the one main of the two
lifecycle modules."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_base import PclusterModule

VALIDATION_LEVELS = ["INFO", "WARNING", "ERROR"]
# How the options of a lifecycle module go together: a config (or its file) with state=present.
LIFECYCLE_MODULE_KWARGS = dict(
    progress=True,
    mutually_exclusive=[("config", "config_file")],
    required_if=[("state", "present", ("config", "config_file"), True)],
    supports_check_mode=True,
)


def lifecycle_argument_spec(name_alias, wait_timeout, rollback_on_failure, **options):
    """The cluster or image module's options: name (with its alias), state, config or config_file, the wait, the
    rollback, ParallelCluster's validation (doc fragment hpc.pcluster.pcluster_validation), plus options."""
    spec = dict(
        name=dict(type="str", required=True, aliases=[name_alias]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        config=dict(type="dict"),
        config_file=dict(type="path"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=wait_timeout),
        rollback_on_failure=dict(type="bool", default=rollback_on_failure),
        suppress_validators=dict(type="list", elements="str"),
        validation_failure_level=dict(type="str", choices=VALIDATION_LEVELS),
    )
    spec.update(options)
    return spec


def describe_argument_spec(name_alias, **options):
    """The cluster_info or image_info module's options: an optional name (with its alias), what to return beside
    the describe (doc fragment hpc.pcluster.describe_details), plus options."""
    spec = dict(
        name=dict(type="str", aliases=[name_alias]),
        stack_progress=dict(type="bool", default=False),
        failure_details=dict(type="bool", default=False),
        stored_config=dict(type="bool", default=False),
    )
    spec.update(options)
    return spec


def run_lifecycle(argument_spec, run_class, what, problems=None):
    """The main of a lifecycle module: its options checked (problems(params) -> list of problems, all reported at
    once), then run_class(module, client).run(), its failures reported as "<what> <name> (state=...)"."""
    module = PclusterModule(argument_spec=argument_spec, **LIFECYCLE_MODULE_KWARGS)
    found = list(problems(module.params)) if problems else []
    if module.params["wait_timeout"] <= 0:
        found.append("wait_timeout must be a positive number of seconds, got %d" % module.params["wait_timeout"])
    if found:
        module.fail_json(msg="; ".join(found) + ".")
    runner = run_class(module, module.client())
    try:
        result = runner.run()
    except PclusterApiError as error:
        runner.fail_error(error, "%s %s (state=%s)" % (what, module.params["name"], module.params["state"]))
    module.exit_json(**result)
