"""The sandbox's IAM identities, in its moto that enforces IAM (iam_moto.py).

* **The admin** (``ADMIN_USER``, AdministratorAccess): the sandbox's own set-up signs with it - seeding,
  registering clusters, the compute fleet stand-in, the node instances the sandbox launches and stops.
  moto_server.py creates it, with the fixed keys ``ADMIN_CREDENTIALS``, before it answers a request; tests
  that deliberately need more than the user may do (registering extra clusters, making users) use it too,
  by that name. It is no secret: anyone who can reach the sandbox's moto on 127.0.0.1 can reset it anyway.
* **The pcluster user** (``USER_NAME``): the controller's identity - what ``env.sh`` exports and what
  deploy.yml, verify.yml, destroy.yml, the inventory and the tests' playbook runs use. It holds
  ParallelCluster's documented user policies (``policies/pcluster-user.yaml``) and hpc.pcluster's own
  (``policies/collection-user.yaml``, the actions the collection needs beyond them), as managed policies.
* **The EC2 service** (``/sandbox-service/ec2.amazonaws.com``): the instance metadata service (imds.py)
  signs with it to read instance profiles and assume the instance roles, as EC2 does for an instance;
  iam_moto.py lets the ``Service: ec2.amazonaws.com`` principal of the roles' trust policies admit it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
POLICIES_DIR = HERE / "policies"
ACCOUNT_ID = "123456789012"

ADMIN_USER = "sandbox-admin"
ADMIN_PATH = "/sandbox/"
ADMIN_POLICY_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
ADMIN_CREDENTIALS = {"aws_access_key_id": "AKIASANDBOXADMIN0000", "aws_secret_access_key": "sandbox-admin-not-a-secret"}

USER_NAME = "pcluster-user"
USER_POLICY_FILES = ("pcluster-user.yaml", "collection-user.yaml")
SERVICE_PATH = "/sandbox-service/"
EC2_SERVICE = "ec2.amazonaws.com"
# What the EC2 service does with IAM for an instance: read its instance profile, assume the profile's role.
EC2_SERVICE_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "InstanceProfiles", "Effect": "Allow", "Action": ["iam:GetInstanceProfile", "sts:AssumeRole"],
     "Resource": "*"}]}


def create_admin_in_moto(account_id: str = ACCOUNT_ID) -> str:
    """In moto's own process, before it serves: the admin user with ADMIN_CREDENTIALS. Returns its ARN."""
    # pylint: disable=import-outside-toplevel
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id]["aws"]
    user = backend.create_user("us-east-1", ADMIN_USER, ADMIN_PATH)
    backend.attach_user_policy(ADMIN_POLICY_ARN, ADMIN_USER)
    key = backend.create_access_key(ADMIN_USER)
    backend.access_keys.pop(key.physical_resource_id, None)
    key.access_key_id = ADMIN_CREDENTIALS["aws_access_key_id"]
    key.secret_access_key = ADMIN_CREDENTIALS["aws_secret_access_key"]
    backend.access_keys[key.physical_resource_id] = key
    return user.arn


def user_policies(values: dict, files=USER_POLICY_FILES) -> list:
    """[{name, documented_as, document, file}] of the pcluster user's policies, from policies/, with each
    ${Name} in their documents replaced by values[Name] (a KeyError names one that is missing)."""
    out = []
    for name in files:
        for policy in yaml.safe_load((POLICIES_DIR / name).read_text())["policies"]:
            document = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], json.dumps(policy["document"]))
            out.append(dict(policy, document=json.loads(document), file=name))
    return out


def _iam(endpoint_url: str, credentials: dict):
    import boto3  # pylint: disable=import-outside-toplevel

    return boto3.session.Session(region_name="us-east-1", **credentials).client("iam", endpoint_url=endpoint_url)


def _keys(user: dict, key: dict) -> dict:
    return {"arn": user["Arn"], "user": user["UserName"], "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"]}


def create_user(endpoint_url: str, name: str, policies: list, credentials: dict | None = None) -> dict:
    """An IAM user holding policies ([{name, document}], e.g. user_policies(...)) as managed policies named
    <user>-<name>, with an access key; made with the admin's credentials unless others are given.
    Returns {arn, user, aws_access_key_id, aws_secret_access_key, policies}."""
    iam = _iam(endpoint_url, credentials or ADMIN_CREDENTIALS)
    user = iam.create_user(UserName=name)["User"]
    arns = []
    for policy in policies:
        arn = iam.create_policy(PolicyName=f"{name}-{policy['name']}", Path=f"/{name}/",
                                PolicyDocument=json.dumps(policy["document"]))["Policy"]["Arn"]
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
        arns.append(arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return dict(_keys(user, key), policies=arns)


def delete_user(endpoint_url: str, name: str, credentials: dict | None = None) -> None:
    """Remove a user create_user made (its keys, policies and the user)."""
    iam = _iam(endpoint_url, credentials or ADMIN_CREDENTIALS)
    for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    for policy in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
        iam.detach_user_policy(UserName=name, PolicyArn=policy["PolicyArn"])
        if f":policy/{name}/" in policy["PolicyArn"]:
            iam.delete_policy(PolicyArn=policy["PolicyArn"])
    iam.delete_user(UserName=name)


def create_service_identity(endpoint_url: str, service: str = EC2_SERVICE) -> dict:
    """The IAM user that plays an AWS service (iam_moto.py: a trust policy's Service principal admits it)."""
    iam = _iam(endpoint_url, ADMIN_CREDENTIALS)
    user = iam.create_user(UserName=service, Path=SERVICE_PATH)["User"]
    iam.put_user_policy(UserName=service, PolicyName="service", PolicyDocument=json.dumps(EC2_SERVICE_POLICY))
    return _keys(user, iam.create_access_key(UserName=service)["AccessKey"])


def environment(keys: dict) -> dict:
    """The AWS_* variables of an identity (for env.sh and subprocesses)."""
    return {"AWS_ACCESS_KEY_ID": keys["aws_access_key_id"], "AWS_SECRET_ACCESS_KEY": keys["aws_secret_access_key"]}
