# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ParallelCluster image configs (pcluster build-image): the image id, the collection's offline rules, the schema."""

from __future__ import annotations

import re

from ansible_collections.hpc.pcluster.plugins.module_utils.config import schema as config_schema
from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import merge_problems, problem, short_repr
from ansible_collections.hpc.pcluster.plugins.module_utils.config.rules import check_id

# pcluster.constants PCLUSTER_IMAGE_ID_REGEX (3.16): also the name of the image's CloudFormation stack.
IMAGE_ID_PATTERN = r"^[a-zA-Z][a-zA-Z0-9-]{0,127}$"
# Build.ParentImage: an AMI id, or an EC2 Image Builder image ARN (pcluster's schema takes "^ami|arn").
PARENT_IMAGE_PATTERN = r"^ami-[0-9a-z]{8}([0-9a-z]{9})?$|^arn:aws[a-z-]*:imagebuilder:[a-z0-9-]+:(aws|\d{12}):image/\S+$"


def check_image_id(image_id, problems, path="name"):
    """Append a problem when ParallelCluster would refuse the image id; returns whether it is fine."""
    if isinstance(image_id, str) and re.match(IMAGE_ID_PATTERN, image_id):
        return True
    problems.append(problem(path, image_id, "The image id %s must start with a letter, hold only letters, digits "
                            "and hyphens and be at most 128 characters long" % short_repr(image_id),
                            "Use an id like 'ml-training-cluster-nodes-3f2a9c01b7de'."))
    return False


def check_image_rules(config):
    """The collection's own offline rules for an image config; returns a list of problems (never raises)."""
    if not isinstance(config, dict):
        return [problem("", short_repr(config), "The image config must be a mapping",
                        "Give the config as a dict/YAML mapping with Build (InstanceType, ParentImage).")]
    problems = []
    build = config.get("Build")
    if not isinstance(build, dict):
        return [problem("Build", short_repr(build), "The image config needs a Build mapping",
                        "Give Build with InstanceType and ParentImage.")]
    parent = build.get("ParentImage")
    if not (isinstance(parent, str) and re.match(PARENT_IMAGE_PATTERN, parent)):
        problems.append(problem(("Build", "ParentImage"), parent, "%s is not an AMI id or an EC2 Image Builder image "
                                "ARN" % short_repr(parent), "Use the ParallelCluster AMI of the cluster's OS "
                                "(pcluster list-official-images), e.g. ami-0123456789abcdef0."))
    check_id(("Build", "InstanceType"), build.get("InstanceType"), "instance_type", problems)
    if build.get("SubnetId") is not None:
        check_id(("Build", "SubnetId"), build["SubnetId"], "subnet", problems)
        if not build.get("SecurityGroupIds"):
            # pcluster's SecurityGroupsAndSubnetValidator, which only its build (or dryrun) runs.
            problems.append(problem(("Build", "SecurityGroupIds"), None, "Build.SubnetId is given without "
                                    "Build.SecurityGroupIds, which ParallelCluster then requires",
                                    "Give the security groups of the build instance (outbound access to the internet "
                                    "and S3), or leave out the subnet to build in the default VPC."))
    for index, group in enumerate(build.get("SecurityGroupIds") or []):
        check_id(("Build", "SecurityGroupIds", index), group, "security_group", problems)
    for index, component in enumerate(build.get("Components") or []):
        if isinstance(component, dict) and component.get("Type") == "script":
            check_id(("Build", "Components", index, "Value"), component.get("Value"), "script_url", problems)
    return problems


def validate_image_config(config, use_schema=True):
    """Every offline problem of an image config: these rules, then pcluster's ImageBuilderSchema. No AWS call.

    Returns (problems, schema_checked, note) as config_rules.validate_config does.
    """
    problems = check_image_rules(config)
    if not use_schema or not isinstance(config, dict):
        return problems, False, ""
    try:
        schema = config_schema.schema_problems(config, None, kind="image")
    except ImportError:
        return problems, False, "aws-parallelcluster is not installed: only the collection's rules ran"
    except config_schema.SchemaNeedsAws as refused:
        return problems, False, ("ParallelCluster's image schema asked AWS (%s) about this config: only the "
                                 "collection's rules ran" % refused.operation)
    return merge_problems(problems, schema), True, ""
