#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: config_validate
short_description: Validate an AWS ParallelCluster 3 cluster configuration
version_added: 0.1.0
description:
  - Checks a ParallelCluster 3 cluster configuration before anything is created, and reports every problem at
    once, each with its path in the config (for example C(SharedStorage[1].FsxLustreSettings.DeploymentType)),
    the value found there, what is wrong and how to fix it.
  - The offline check runs in-process and calls no AWS API. It runs ParallelCluster's own configuration schema
    (C(ClusterSchema)) and the collection's rules; the Slurm settings ParallelCluster manages itself (the
    CustomSlurmSettings deny-list at cluster, queue and compute resource level); the form of subnet, security
    group, FSx, capacity reservation, AMI and IAM policy identifiers; MinCount not above MaxCount; unique queue,
    compute resource, login node pool and shared storage names; no unsubstituted C(${VAR}), Jinja2 markup or
    line breaks in any value (but in C(DevSettings.Cookbook.ExtraChefAttributes), JSON text, where ParallelCluster's
    own example writes a C(|) block); custom action scripts given as C(s3://) or C(https://) URLs; no
    C(ScaledownIdletime) of -1 with dynamic nodes (it turns Slurm's power saving off, so they would never start).
  - A value shown in a problem is cut to 300 characters; an unknown key is named without its value.
  - With O(full=true) the module then checks against the AWS account. First, that every subnet and security
    group of the config exists (each missing one reported at its path), and that the head node's key pair exists
    and is not RSA on Ubuntu 22.04/24.04 (which ParallelCluster refuses), then ParallelCluster's create-cluster
    dryrun (instance types, AMIs, IAM, S3, FSx and more), which creates nothing; for a cluster that exists
    already its update-cluster dryrun, which changes nothing. The dryrun's validation messages are returned
    grouped by level.
  - The module never changes anything.
  - ParallelCluster has no C(validate-config) command in version 3; this module replaces it.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  config:
    description:
      - The cluster configuration as a mapping (what C(pcluster create-cluster) reads from YAML).
      - Exactly one of O(config) and O(config_file) is required.
    type: dict
  config_file:
    description:
      - Path of a cluster configuration YAML file on the host that runs the module.
      - Duplicate keys in a mapping are reported as problems (YAML would silently keep the last one).
      - Refused before it is parsed when it is not a regular file or larger than 1 MiB. A file whose top-level
        keys are none of ParallelCluster's is refused without showing its content, and so is a key no config can
        have (named by its line only).
    type: path
  name:
    description:
      - The name the cluster will have. Its form is checked (letters, digits and hyphens, starting with a
        letter, at most 60 characters) and it is used by the schema and the dryrun.
      - Named O(name) as in the collection's other modules; O(cluster_name) is its alias.
    type: str
    required: true
    aliases: [cluster_name]
  offline:
    description:
      - Run the offline check (the collection's rules and ParallelCluster's schema, no AWS call).
      - Set V(false) together with O(full=true) when the offline check already ran on this very config, so that
        only the checks against AWS run. Role P(hpc.pcluster.cluster_config#role) does so, having checked offline
        while it built the config.
    type: bool
    default: true
  full:
    description:
      - Also check against AWS (or the endpoint set by O(endpoint_url)) that every subnet and security group
        exists and that the key pair exists (ed25519 on Ubuntu 22.04/24.04), then run ParallelCluster's
        create-cluster dryrun (its update-cluster dryrun when the cluster O(name) exists; an update that
        needs the compute fleet stopped is valid).
      - Runs only when the offline check found no problem; the dryrun runs only when every subnet, security
        group and the key pair pass.
      - Needs credentials and Node.js, like C(pcluster create-cluster).
    type: bool
    default: false
  suppress_validators:
    description:
      - ParallelCluster validators to skip in the dryrun, in pcluster's syntax, for example
        C(type:InstanceTypeValidator) or C(ALL).
      - Used only with O(full=true).
    type: list
    elements: str
    default: []
  validation_failure_level:
    description:
      - The lowest dryrun message level that makes the configuration invalid.
      - Used only with O(full=true).
    type: str
    choices: [INFO, WARNING, ERROR]
    default: ERROR
  fail_on_invalid:
    description:
      - Fail the task when the configuration is invalid. Set V(false) to only report (V(valid) and V(errors)).
    type: bool
    default: true
extends_documentation_fragment:
  - hpc.pcluster.aws
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same way in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
notes:
  - The region for the dryrun comes from O(region), else the config's C(Region), else the environment.
  - Module group C(group/hpc.pcluster.aws) can set O(region), O(profile) and O(endpoint_url) once for every
    module of the collection.
seealso:
  - name: ParallelCluster 3 cluster configuration file
    description: The reference of every key of the configuration.
    link: https://docs.aws.amazon.com/parallelcluster/latest/ug/cluster-configuration-file-v3.html
"""

EXAMPLES = r"""
- name: Check a config file offline (no AWS call)
  hpc.pcluster.config_validate:
    config_file: "{{ cluster_config_file }}"
    name: ml-training-cluster

- name: Check a config built in the playbook, then against the AWS account
  hpc.pcluster.config_validate:
    config: "{{ my_cluster_config }}"
    name: ml-training-cluster
    region: us-east-1
    full: true

- name: Only the checks against AWS, for a config the offline check already passed
  hpc.pcluster.config_validate:
    config: "{{ cluster_config_data }}"
    name: ml-training-cluster
    offline: false
    full: true

- name: Report problems without failing, then show them
  hpc.pcluster.config_validate:
    config_file: cluster-config.yaml
    name: ml-training-cluster
    fail_on_invalid: false
  register: check

- name: Show each problem with its path
  ansible.builtin.debug:
    msg: "{{ item.path }}: {{ item.message }} ({{ item.fix }})"
  loop: "{{ check.errors }}"
"""

RETURN = r"""
valid:
  description: Whether the configuration passed every check that ran.
  returned: always
  type: bool
  sample: false
errors:
  description:
    - Every problem found, in config order. With O(full=true), dryrun messages at or above
      O(validation_failure_level) are added with an empty path and the validator's name in the message.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Where the problem is, dotted and indexed; empty for the whole config.
      type: str
      sample: SharedStorage[1].FsxLustreSettings.DeploymentType
    value:
      description: The value found at that path (null when missing or a whole section).
      type: raw
      sample: PERSISTENT_1
    message:
      description: What is wrong.
      type: str
      sample: DeploymentType cannot be specified when an existing Lustre file system is used
    fix:
      description: How to fix it.
      type: str
      sample: "Remove DeploymentType: an existing file system keeps its own settings."
offline_checked:
  description: Whether the offline check ran (see O(offline)).
  returned: always
  type: bool
  sample: true
schema_checked:
  description:
    - Whether ParallelCluster's own schema ran offline (false with O(offline=false), without aws-parallelcluster,
      or when the schema would have needed an AWS call for this config, which a warning then says).
  returned: always
  type: bool
  sample: true
full_checked:
  description: Whether the checks against AWS ran (O(full=true) and the offline check passed).
  returned: always
  type: bool
  sample: false
validation_messages:
  description: The dryrun's validation messages grouped by level. Empty lists without O(full=true).
  returned: always
  type: dict
  contains:
    ERROR:
      description: Messages C({id, type, level, message}) at level ERROR.
      type: list
      elements: dict
    WARNING:
      description: Messages at level WARNING.
      type: list
      elements: dict
    INFO:
      description: Messages at level INFO.
      type: list
      elements: dict
  sample: {"ERROR": [], "WARNING": [], "INFO": []}
dryrun_message:
  description: ParallelCluster's message from the dryrun.
  returned: when O(full=true) and the dryrun ran
  type: str
  sample: Request would have succeeded, but DryRun flag is set.
dryrun_operation:
  description: Which dryrun ran, V(create) or V(update) (the cluster exists).
  returned: when O(full=true) and the dryrun ran
  type: str
  sample: create
msg:
  description: A summary; when invalid, one line per problem.
  returned: always
  type: str
"""

import copy  # noqa: E402

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster import errors as pcluster_errors  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_base import PclusterModule  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.module_utils.aws import boto3_client  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.module_utils.config.aws_checks import (  # noqa: E402
    DRYRUN_LEVELS,
    dryrun_problems,
    key_pair_problems,
    missing_network_problems,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import load_config_file  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import format_problems, problem  # noqa: E402
from ansible_collections.hpc.pcluster.plugins.module_utils.config.rules import validate_config  # noqa: E402


def run_dryrun(api, cluster_name, config, suppress_validators, validation_failure_level):
    """ParallelCluster's dryrun through api (a PclusterApi; creates and changes nothing):
    {success, message, validation_messages, operation, ...}.

    A create's; for a cluster that exists already (pcluster refuses to dry-run its create) an update's, whose
    validators check the config the same way. An update that needs the compute fleet stopped is a valid config:
    the deploy playbook stops the fleet for it when asked (pcluster_stop_fleet_for_update)."""
    try:
        return dict(api.dryrun_create(cluster_name, config, suppress_validators, validation_failure_level),
                    operation="create")
    except pcluster_errors.PclusterApiError as error:
        if not error.already_exists:
            raise
    dry = dict(api.dryrun_update(cluster_name, config, suppress_validators, validation_failure_level),
               operation="update")
    if not dry["success"] and dry["error"] is not None and dry["error"].needs_fleet_stopped:
        dry.update(success=True, message="The update is valid and needs the compute fleet stopped: %s"
                   % dry["error"].describe())
    return dry


def aws_settings_for(module, config):
    """The AWS settings of the checks against AWS (the module base's: exported for boto3 and pcluster, failing
    without a region), the config's Region standing in for an unset region option."""
    if not module.params.get("region") and isinstance(config.get("Region"), str):
        module.params["region"] = config["Region"]
    return module.settings


def run_aws_checks(module, config, result):
    """Subnets, security groups and the key pair exist, then the dryrun; returns the blocking problems."""
    settings = aws_settings_for(module, config)
    # Subnets, security groups and the key pair first: named by path, where pcluster either stops at the first
    # missing one or (for the head node's subnet, in its launch template check) reports no path.
    try:
        ec2 = boto3_client("ec2", settings)
        missing = missing_network_problems(config, ec2, settings["region"]) + key_pair_problems(
            config, ec2, settings["region"])
    except Exception as error:  # pylint: disable=broad-except
        module.fail_json(msg="Cannot look up the config's subnets, security groups and key pair: %s" % error, **result)
    result["full_checked"] = True
    if missing:
        return missing
    level = module.params["validation_failure_level"]
    try:
        dryrun = run_dryrun(module.client(), module.params["name"], copy.deepcopy(config),
                            module.params["suppress_validators"] or None, level)
    except pcluster_errors.PclusterMissingError as error:
        module.fail_json(msg=str(error), **result)
    except pcluster_errors.PclusterApiError as error:
        module.fail_json_pcluster(error, msg="The ParallelCluster dryrun could not run", **result)
    result["dryrun_message"] = dryrun["message"]
    result["dryrun_operation"] = dryrun.get("operation", "create")
    grouped = dryrun["validation_messages"]
    result["validation_messages"] = {name: list(grouped.get(name) or []) for name in ("ERROR", "WARNING", "INFO")}
    return dryrun_problems(config, dryrun, level)


def offline_check(module, config, result):
    """The collection's rules and ParallelCluster's schema, in this process: no AWS call."""
    problems, result["schema_checked"], note = validate_config(config, module.params["name"])
    result["offline_checked"] = True
    if note:
        module.warn(note + ".")
    return problems


def summary(result):
    checks = (["collection rules"] if result["offline_checked"] else []) + (
        ["ParallelCluster schema"] if result["schema_checked"] else []) + (
        ["subnets, security groups and ParallelCluster dryrun"] if result["full_checked"] else [])
    return "The cluster configuration is valid (%s)." % ", ".join(checks)


def main():
    argument_spec = dict(
        config=dict(type="dict"),
        config_file=dict(type="path"),
        name=dict(type="str", required=True, aliases=["cluster_name"]),
        offline=dict(type="bool", default=True),
        full=dict(type="bool", default=False),
        suppress_validators=dict(type="list", elements="str", default=[]),
        validation_failure_level=dict(type="str", choices=list(DRYRUN_LEVELS), default="ERROR"),
        fail_on_invalid=dict(type="bool", default=True),
    )
    module = PclusterModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("config", "config_file")],
        required_one_of=[("config", "config_file")],
        supports_check_mode=True,
    )
    result = dict(changed=False, valid=False, errors=[], offline_checked=False, schema_checked=False,
                  full_checked=False, validation_messages={"ERROR": [], "WARNING": [], "INFO": []})
    if not module.params["offline"] and not module.params["full"]:
        module.fail_json(msg="offline=false and full=false leave nothing to check: set full=true (the checks against "
                             "AWS) or leave offline at true.", **result)

    if module.params["config_file"]:
        config, problems = load_config_file(module.params["config_file"])
    else:
        config, problems = module.params["config"], []
    if config is None:
        problems = problems or [problem("", None, "The config is empty", "Give a cluster configuration.")]
    elif module.params["offline"]:
        problems = problems + offline_check(module, config, result)

    if not problems and module.params["full"]:
        problems = run_aws_checks(module, config, result)

    result["errors"] = problems
    result["valid"] = not problems
    if problems:
        result["msg"] = format_problems(problems, cluster_name=module.params["name"])
        if module.params["fail_on_invalid"]:
            module.fail_json(**result)
    else:
        result["msg"] = summary(result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
