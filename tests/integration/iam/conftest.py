"""IAM users made for one test with the sandbox's admin identity, and module runs signed as them."""

from __future__ import annotations

import copy
import secrets
import types

import pytest

# sandbox/iam_identities.py
import iam_identities

from ansible_collections.hpc.pcluster.tests.integration.lifecycle.lifecycle_helpers import run_playbook


def without_actions(policies: list, actions: set) -> list:
    """A copy of policies ([{name, document}]) whose statements no longer list actions (literally listed ones)."""
    out = copy.deepcopy(policies)
    for policy in out:
        kept = []
        for statement in policy["document"]["Statement"]:
            listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            statement["Action"] = [a for a in listed if a not in actions]
            if statement["Action"]:
                kept.append(statement)
        policy["document"]["Statement"] = kept
    return out


@pytest.fixture(name="pcluster_user_policies")
def pcluster_user_policies_fixture(sandbox):
    """The pcluster user's policies for this sandbox (sandbox/policies/)."""
    return iam_identities.user_policies({"BootstrapBucket": sandbox.state["aws"]["bootstrap_bucket"]})


@pytest.fixture(name="limited_user")
def limited_user_fixture(sandbox, pcluster_user_policies):
    """limited_user(without=(), deny=()) -> SimpleNamespace(arn, env): an IAM user with the pcluster user's policies
    less the actions in without (and an explicit Deny of those in deny), made with the admin identity for one test;
    env is the sandbox's controller environment signed as that user."""
    made = []

    def make(without=(), deny=()):
        policies = without_actions(pcluster_user_policies, set(without))
        if deny:
            policies.append({"name": "Deny", "document": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Deny", "Action": list(deny), "Resource": "*"}]}})
        name = "limited-%s" % secrets.token_hex(3)
        user = iam_identities.create_user(sandbox.endpoint_url, name, policies)
        made.append(name)
        env = dict(sandbox.env, **iam_identities.environment(user))
        return types.SimpleNamespace(arn=user["arn"], name=name, env=env)

    yield make
    for name in made:
        iam_identities.delete_user(sandbox.endpoint_url, name)


@pytest.fixture(name="playbook_as")
def playbook_as_fixture(tmp_path):
    """playbook_as(env, *steps) -> PlaybookRun: lifecycle_helpers.Step tasks run with env (an identity's)."""
    return lambda env, *steps, **kwargs: run_playbook(types.SimpleNamespace(env=env), tmp_path, list(steps), **kwargs)
