# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Amazon ECR registries for Enroot and Docker: which ones, their credentials files, what a refusal means.

A node reads ECR with its instance role: ``ecr:GetAuthorizationToken`` gives a password for user ``AWS``,
valid 12 hours for every registry of that region the role may read. Nothing secret is stored:

- Enroot's credentials file (netrc format, ``$ENROOT_CONFIG_PATH/.credentials``) gets one line per
  registry whose password field is a command, ``$(<aws> ecr get-login-password --region <region>)``;
  Enroot runs it (``common::evalnetrc``) each time it authenticates, as the user importing the image.
- Docker's client configuration (``config.json``) names the ECR credential helper for each registry
  (``credHelpers: {<registry>: ecr-login}``); ``docker-credential-ecr-login`` asks ECR itself.
"""

from __future__ import annotations

import json
import re

# The registry host names of ECR (as amazon-ecr-credential-helper matches them), in the partitions
# ParallelCluster runs in: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn].
REGISTRY_PATTERN = re.compile(r"^(?P<account>[0-9]{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z]{2}(-[a-z]+)+-[0-9]+)"
                              r"\.amazonaws\.com(\.cn)?$")
ACCOUNT_PATTERN = re.compile(r"^[0-9]{12}$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
# A command path written into a file that Enroot hands to a shell: no spaces, quotes or shell syntax.
COMMAND_PATH_PATTERN = re.compile(r"^/[A-Za-z0-9._/+-]+$")
USER = "AWS"
POLICY = "AmazonEC2ContainerRegistryReadOnly"
POLICY_ARN = "arn:aws:iam::aws:policy/" + POLICY
HELPER = "ecr-login"


def registry_host(account, region):
    """The registry of an account in a region (commercial partition; China regions end in .cn)."""
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    return "%s.dkr.ecr.%s%s" % (account, region, suffix)


def registry_region(host):
    """The region of an ECR registry host, or None when host is not ECR's."""
    match = REGISTRY_PATTERN.match(host or "")
    return match.group("region") if match else None


def registry_problems(prefix, account, region, registries):
    """What is wrong with a role's ECR variables (<prefix>_ecr_account_id, _region, _registries), each with
    the value and the fix."""
    problems = []
    if account and not ACCOUNT_PATTERN.match(str(account)):
        problems.append("%s_ecr_account_id=%r must be a 12-digit AWS account id (or empty: no registry of the "
                        "cluster's own)" % (prefix, account))
    if account and not REGION_PATTERN.match(str(region or "")):
        problems.append("%s_ecr_region=%r must be an AWS region such as us-east-1 (the cluster's region) when "
                        "%s_ecr_account_id is set" % (prefix, region, prefix))
    if not isinstance(registries, (list, tuple)):
        return problems + ["%s_ecr_registries must be a list of registry host names, e.g. "
                           "['123456789012.dkr.ecr.eu-west-1.amazonaws.com']" % prefix]
    for host in registries:
        if not REGISTRY_PATTERN.match(str(host)):
            problems.append("%s_ecr_registries entry %r is not an ECR registry host name: "
                            "<12-digit account>.dkr.ecr.<region>.amazonaws.com, without https:// or a path"
                            % (prefix, host))
    return problems


def registries(account, region, extra):
    """The cluster's own registry (when account and region are known) and the extra ones, each once, in order."""
    hosts = [registry_host(account, region)] if account and region else []
    for host in extra or ():
        if host not in hosts:
            hosts.append(host)
    return hosts


def aws_cli_problems(prefix, aws_cli):
    if not COMMAND_PATH_PATTERN.match(str(aws_cli or "")):
        return ["%s_ecr_aws_cli=%r must be the absolute path of the AWS CLI (letters, digits and ._/+- only: "
                "Enroot hands the password command to a shell), e.g. /usr/local/bin/aws" % (prefix, aws_cli)]
    return []


def enroot_credentials(hosts, aws_cli):
    """Enroot's credentials file: one netrc line per registry, the password a command Enroot runs."""
    return "".join("machine %s login %s password $(%s ecr get-login-password --region %s)\n"
                   % (host, USER, aws_cli, registry_region(host)) for host in hosts)


def docker_config(current, hosts):
    """Docker's client configuration with the ECR credential helper for hosts, the rest of current kept.

    current: the file's text ("" when there is none). Raises ValueError when it is not a JSON object."""
    config = json.loads(current) if (current or "").strip() else {}
    if not isinstance(config, dict):
        raise ValueError("it holds %s, not a JSON object" % type(config).__name__)
    helpers = dict(config.get("credHelpers") or {})
    helpers.update((host, HELPER) for host in hosts)
    if helpers:
        config["credHelpers"] = helpers
    return config


def credentials_hint(registry):
    """Where a node's credentials for a registry come from, naming the policy for ECR's registries."""
    if registry_region(registry):
        return ("The node has no ECR credentials: its instance role must allow ecr:GetAuthorizationToken and the pulls "
                "- the managed policy %s (%s), which role hpc.pcluster.cluster_config attaches to the nodes by default - "
                "and the instance must get that role's credentials from its instance metadata. Enroot's credentials "
                "for %s come from role hpc.pcluster.enroot (enroot_ecr_*), Docker's from role hpc.pcluster.docker "
                "(docker_ecr_*)." % (POLICY, POLICY_ARN, registry))
    return ("Give Enroot a line for %s in its credentials file ($ENROOT_CONFIG_PATH/.credentials), or Docker a "
            "login for it." % registry)


def unauthorized_hint(registry):
    """What an HTTP 401 from a registry means and what to do."""
    return "%s refused the node's credentials (HTTP 401). %s" % (registry, credentials_hint(registry))
