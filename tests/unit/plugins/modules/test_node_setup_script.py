"""hpc.pcluster.node_setup_script against a moto server over HTTP (real S3 API calls)."""

from __future__ import annotations

import hashlib
import pathlib

import boto3
import pytest

from ansible_collections.hpc.pcluster.plugins.modules import node_setup_script
from ansible_collections.hpc.pcluster.tests.unit.plugins.inventory.pcluster_moto import MotoServer
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import run_module

ROOT = pathlib.Path(__file__).resolve().parents[4]
SCRIPT = ROOT / "roles" / "node_setup" / "files" / "hpc-pcluster-node-setup.sh"
SHA256 = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()
URL = "s3://scripts/bootstrap/hpc-pcluster-node-setup-v1.sh"


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture()
def s3(moto, monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    for bucket in client.list_buckets()["Buckets"]:
        for item in client.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            client.delete_object(Bucket=bucket["Name"], Key=item["Key"])
        client.delete_bucket(Bucket=bucket["Name"])
    client.create_bucket(Bucket="scripts")
    return client


def run(moto, check_mode=False, **args):
    args = dict({"src": str(SCRIPT), "url": URL, "region": "us-east-1", "endpoint_url": moto.endpoint_url}, **args)
    result = run_module(node_setup_script, args, check_mode=check_mode)
    return bool(result.get("failed")), result


def test_uploads_once_with_its_sha256_then_changes_nothing(moto, s3):
    failed, result = run(moto, sha256=SHA256)
    assert not failed and result["changed"] and result["uploaded"] and result["sha256"] == SHA256
    key = URL.split("/", 3)[3]
    head = s3.head_object(Bucket="scripts", Key=key)
    assert head["Metadata"] == {"sha256": SHA256}
    assert s3.get_object(Bucket="scripts", Key=key)["Body"].read() == SCRIPT.read_bytes()
    failed, result = run(moto, sha256=SHA256)
    assert not failed and not result["changed"] and not result["uploaded"]


def test_an_object_without_the_metadata_is_compared_by_content(moto, s3):
    key = URL.split("/", 3)[3]
    s3.put_object(Bucket="scripts", Key=key, Body=SCRIPT.read_bytes())
    assert not run(moto)[1]["changed"]
    s3.put_object(Bucket="scripts", Key=key, Body=b"#!/bin/sh\nexit 1\n")
    _failed, result = run(moto, check_mode=True)
    assert result["changed"] and not result["uploaded"]
    assert s3.get_object(Bucket="scripts", Key=key)["Body"].read() == b"#!/bin/sh\nexit 1\n"
    assert run(moto)[1]["uploaded"]
    assert s3.get_object(Bucket="scripts", Key=key)["Body"].read() == SCRIPT.read_bytes()


def test_a_script_other_than_the_config_was_built_with_is_refused(moto, s3):
    failed, result = run(moto, sha256="0" * 64)
    assert failed and "not the 0000" in result["msg"] and "cluster_config" in result["msg"]
    assert s3.list_objects_v2(Bucket="scripts").get("KeyCount") == 0


def test_a_missing_bucket_and_a_bad_url_say_what_to_do(moto, s3):
    failed, result = run(moto, url="s3://no-such-bucket/x.sh")
    assert failed and result["error_code"] == "NoSuchBucket"
    assert "cluster_config_node_setup_script_location" in result["msg"]
    failed, result = run(moto, url="https://example.com/x.sh")
    assert failed and "is not an s3://<bucket>/<key> URL" in result["msg"]
