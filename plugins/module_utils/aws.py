# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS connection settings shared by every module of the collection.

ParallelCluster's Python API (``pcluster.lib``) builds its boto3 clients from
the process environment, so the module options are applied there, once, before
pcluster is imported or called. boto3 clients made by the collection itself use
the same settings.
"""

from __future__ import annotations

import os

AWS_ENV = {
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "profile": ("AWS_PROFILE",),
    "endpoint_url": ("AWS_ENDPOINT_URL",),
}


def aws_argument_spec():
    """The options documented by the ``hpc.pcluster.aws`` doc fragment."""
    return dict(
        region=dict(type="str", aliases=["aws_region"]),
        profile=dict(type="str", aliases=["aws_profile"]),
        endpoint_url=dict(type="str", aliases=["aws_endpoint_url"]),
    )


def resolve_aws_settings(params, environ=None):
    """Return {region, profile, endpoint_url} from module params, then the environment."""
    environ = os.environ if environ is None else environ
    settings = {}
    for key, env_names in AWS_ENV.items():
        value = params.get(key)
        if not value:
            value = next((environ[name] for name in env_names if environ.get(name)), None)
        settings[key] = value
    return settings


def apply_aws_environment(settings, environ=None):
    """Export settings so that pcluster.lib and boto3 default sessions use them."""
    environ = os.environ if environ is None else environ
    if settings.get("region"):
        environ["AWS_DEFAULT_REGION"] = settings["region"]
        environ["AWS_REGION"] = settings["region"]
    if settings.get("profile"):
        environ["AWS_PROFILE"] = settings["profile"]
    if settings.get("endpoint_url"):
        environ["AWS_ENDPOINT_URL"] = settings["endpoint_url"]


def missing_region_message():
    return (
        "No AWS region: set the module's 'region' option (or module_defaults for "
        "group/hpc.pcluster.aws, e.g. region: \"{{ pcluster_region }}\"), or export AWS_REGION."
    )


def setup_aws(module):
    """Resolve and apply the AWS settings of an AnsibleModule; fail clearly without a region."""
    settings = resolve_aws_settings(module.params)
    if not settings["region"]:
        module.fail_json(msg=missing_region_message())
    apply_aws_environment(settings)
    return settings


def boto3_client(service, settings):
    """A boto3 client honouring region/profile/endpoint_url (boto3 is imported lazily)."""
    import boto3  # pylint: disable=import-outside-toplevel

    session = boto3.session.Session(profile_name=settings.get("profile") or None, region_name=settings.get("region"))
    kwargs = {}
    if settings.get("endpoint_url"):
        kwargs["endpoint_url"] = settings["endpoint_url"]
    return session.client(service, **kwargs)


def caller_arn(settings):
    """The ARN of the identity the credentials in use belong to (sts:GetCallerIdentity, which IAM never denies), or
    None: for naming the principal where AWS's answer does not (an S3 HEAD request's 403 has no body)."""
    try:
        return boto3_client("sts", settings).get_caller_identity().get("Arn")
    except Exception:  # pylint: disable=broad-except  # only ever used to say more in a failure message
        return None
