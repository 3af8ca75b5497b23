"""AWS option resolution shared by every module."""

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils import aws


def test_params_win_over_environment():
    env = {"AWS_REGION": "eu-west-1", "AWS_PROFILE": "envprof", "AWS_ENDPOINT_URL": "http://env"}
    settings = aws.resolve_aws_settings({"region": "us-east-2", "profile": None, "endpoint_url": None}, env)
    assert settings == {"region": "us-east-2", "profile": "envprof", "endpoint_url": "http://env"}


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"AWS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "us-west-2"}, "ap-south-1"),
        ({"AWS_DEFAULT_REGION": "us-west-2"}, "us-west-2"),
        ({}, None),
    ],
)
def test_region_environment_order(env, expected):
    assert aws.resolve_aws_settings({}, env)["region"] == expected


def test_apply_exports_both_region_variables_and_endpoint():
    env = {}
    aws.apply_aws_environment({"region": "us-east-1", "profile": None, "endpoint_url": "http://127.0.0.1:5000"}, env)
    assert env == {
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    }


def test_missing_region_message_names_the_option_and_the_fix():
    message = aws.missing_region_message()
    assert "'region'" in message and "AWS_REGION" in message and "group/hpc.pcluster.aws" in message


def test_boto3_client_uses_endpoint_and_region():
    client = aws.boto3_client("ec2", {"region": "eu-central-1", "profile": None, "endpoint_url": "http://127.0.0.1:1"})
    assert client.meta.region_name == "eu-central-1"
    assert client.meta.endpoint_url == "http://127.0.0.1:1"
