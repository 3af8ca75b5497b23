"""config_file: the one loader (duplicate keys, non-UTF-8, alias bombs), comparison, the stored config over https."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.config import file as config_file
from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import (
    config_differences,
    fetch_stored_config,
    load_config_file,
    normalise_config,
    stored_config_url_problem,
)
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import StoredConfigServer, stored_config_url, stored_endpoint

COLLECTIONS = pathlib.Path(__file__).resolve().parents[5] / "collections"
# 356 bytes, shaped like a config; Tags stands for 9**8 (43 million) strings.
ALIAS_BOMB = """Region: us-west-2
Image: {Os: rocky9}
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
Tags: [*h]
"""
# What a module does with a loaded config: load it, then compare it (normalise walks every node).
LOAD_AND_COMPARE = """
import sys
from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import load_config_file, normalise_config
config, problems = load_config_file(sys.argv[1])
if config is not None:
    normalise_config(config)
print("; ".join(p["message"] for p in problems))
"""


def test_config_normalisation_ignores_form_not_content():
    stored = {"Scheduling": {"SlurmQueues": [{"ComputeResources": [{"MaxCount": 2, "Efa": {"Enabled": True}}]}]}, "Tags": None}
    desired = {"Scheduling": {"SlurmQueues": [{"ComputeResources": [{"MaxCount": "2", "Efa": {"Enabled": "True"}}]}]}}
    assert normalise_config(stored) == normalise_config(desired)

    desired["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MaxCount"] = 4
    changes = config_differences(normalise_config(stored), normalise_config(desired))
    assert changes == ["Scheduling.SlurmQueues[0].ComputeResources[0].MaxCount: 2 -> 4"]


def test_duplicate_keys_are_problems_with_their_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("Region: us-east-1\nImage:\n  Os: ubuntu2204\n  Os: alinux2023\n")

    config, problems = load_config_file(str(path))

    assert config["Image"]["Os"] == "alinux2023"
    assert [p["message"] for p in problems] == ["The key 'Os' appears twice in one mapping (line 4); YAML keeps only the last one"]


def test_bytes_that_are_not_utf8_are_one_clear_problem(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("Region: us-east-1\nTags:\n  - Key: owner\n    Value: Jos\xe9\n".encode("latin-1"))

    config, problems = load_config_file(str(path))

    assert config is None
    assert problems[0]["message"].startswith("config_file %s is not UTF-8 text (byte 53:" % path)
    assert problems[0]["fix"] == "Save the file as UTF-8."


def test_unreadable_file_and_non_mapping(tmp_path):
    assert load_config_file(str(tmp_path / "nope.yaml"))[1][0]["message"].startswith("Cannot read config_file")
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    assert "must hold a YAML mapping" in load_config_file(str(path))[1][0]["message"]


def test_an_alias_bomb_fails_fast_with_a_clear_message(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB.encode()) == 356
    started = time.monotonic()

    # In a process of its own with a timeout: an uncapped loader takes minutes of CPU here.
    proc = subprocess.run([sys.executable, "-c", LOAD_AND_COMPARE, str(path)], env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)),
                          capture_output=True, text=True, timeout=30, check=True)

    assert time.monotonic() - started < 30
    assert "YAML aliases (at line 8) expand to more than %d nodes" % config_file.MAX_EXPANDED_NODES in proc.stdout


def test_a_few_aliases_in_a_real_config_are_fine(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text("Region: us-east-1\nQueue: &q {Name: a, ComputeResources: [{Name: x, MinCount: 1}]}\nOther: *q\n")

    config, problems = load_config_file(str(path))

    assert problems == [] and config["Other"] == config["Queue"]


def test_a_long_plain_list_is_not_an_alias_bomb(tmp_path):
    path = tmp_path / "list.yaml"
    count = config_file.MAX_EXPANDED_NODES + 10
    path.write_text("Region: us-east-1\nAdditionalPackages:\n" + "- x\n" * count)
    assert path.stat().st_size < config_file.MAX_CONFIG_BYTES

    config, problems = load_config_file(str(path))

    assert problems == [] and len(config["AdditionalPackages"]) == count


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    path = tmp_path / "big.yaml"
    path.write_text("Region: us-east-1\n" + "# padding\n" * 120000)
    parsed = []
    monkeypatch.setattr(config_file, "load_config_text", lambda *args: parsed.append(args))

    config, problems = load_config_file(str(path))

    assert config is None and parsed == []
    assert problems[0]["message"] == "config_file %s is %d bytes, more than the 1048576 a cluster config may have" % (
        path, path.stat().st_size)


def test_a_fifo_or_a_device_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        # In a process of its own with a timeout: opening a FIFO for reading blocks until someone writes.
        proc = subprocess.run([sys.executable, "-c", LOAD_AND_COMPARE, path], env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)),
                              capture_output=True, text=True, timeout=20, check=True)
        assert proc.stdout.strip() == "config_file %s is not a regular file" % path


SHADOW = ("root:$6$saltsalt$SECRETHASHOFROOT0123456789:19700:0:99999:7:::\n"
          "daemon:*:19700:0:99999:7:::\n"
          "alice:$6$pepper$SECRETHASHOFALICE987654321:19700:0:99999:7:::\n")


def test_a_link_to_a_file_that_is_no_config_shows_none_of_its_content(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.write_text(SHADOW)
    link = tmp_path / "cluster-config.yaml"
    link.symlink_to(shadow)

    config, problems = load_config_file(str(link))

    assert config is None and len(problems) == 1
    assert problems[0]["message"] == ("%s is not a ParallelCluster cluster config: none of its top-level keys is one "
                                      "ParallelCluster knows (its content is not shown)" % link)
    assert "SECRET" not in repr(problems) and "alice" not in repr(problems)


def test_an_image_config_is_read_as_one_and_is_no_cluster_config():
    text = "Build:\n  InstanceType: c5.2xlarge\n  ParentImage: ami-0a9c3a1e5c16f0b01\n"

    image, image_problems = config_file.load_config_text(text, "the stored config", kind="image")
    cluster, cluster_problems = config_file.load_config_text(text, "the stored config")

    assert image == {"Build": {"InstanceType": "c5.2xlarge", "ParentImage": "ami-0a9c3a1e5c16f0b01"}}
    assert image_problems == []
    assert cluster is None
    assert [p["message"] for p in cluster_problems] == [
        "the stored config is not a ParallelCluster cluster config: none of its top-level keys is one ParallelCluster "
        "knows (its content is not shown)"]


def test_keys_no_config_has_are_named_by_line_only_and_left_out(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("Region: us-east-1\nImage:\n  Os: ubuntu2204\n  alice:$6$pepper$SECRET: x\n")

    config, problems = load_config_file(str(path))

    assert config == {"Region": "us-east-1", "Image": {"Os": "ubuntu2204"}}
    assert [p["message"] for p in problems] == [
        "%s, line 4: a key no ParallelCluster config has (text of 22 characters, not only letters, digits, - and _); "
        "it is not shown, and left out of the checks" % path]


def test_a_yaml_error_says_where_without_quoting_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("Region: us-east-1\nImage: {Os: ubuntu2204\nSECRETLINE: [x\n")

    config, problems = load_config_file(str(path))

    assert config is None and "SECRETLINE" not in problems[0]["message"]
    assert problems[0]["message"].startswith("%s is not valid YAML: " % path)
    assert "(line 3, column" in problems[0]["message"]


@pytest.mark.parametrize("url, endpoint, refused", [
    ("https://bucket.s3.amazonaws.com/k?X-Amz-Signature=1", None, False),
    ("https://bucket.s3.amazonaws.com/k", "http://127.0.0.1:5000", False),
    ("http://127.0.0.1:5000/bucket/k", "http://127.0.0.1:5000", False),
    ("http://bucket.s3.amazonaws.com/k", None, True),
    ("http://evil.example/k", "http://127.0.0.1:5000", True),
    ("http://127.0.0.1:5000/bucket/k", "https://127.0.0.1:5000", True),
    ("file:///etc/shadow", None, True),
    ("file:///etc/shadow", "http://127.0.0.1:5000", True),
    ("ftp://127.0.0.1/k", "http://127.0.0.1:5000", True),
])
def test_stored_config_is_read_over_https_only(url, endpoint, refused):
    assert (stored_config_url_problem(url, endpoint) is not None) is refused


def test_stored_config_from_file_url_is_refused_without_reading(tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text("Region: us-east-1\n")

    config, reason = fetch_stored_config({"clusterConfiguration": {"url": secret.as_uri()}}, endpoint_url="http://127.0.0.1:1")

    assert config is None and reason.startswith("describe-cluster gave a file:// URL for the stored config; only https")


def test_stored_config_over_http_from_the_endpoint_and_errors_without_the_url():
    url = stored_config_url(config={"Region": "us-east-1", "HeadNode": {"InstanceType": "m5.xlarge"}})

    config, reason = fetch_stored_config({"clusterConfiguration": {"url": url}}, endpoint_url=stored_endpoint())
    assert reason is None and config["HeadNode"] == {"InstanceType": "m5.xlarge"}

    missing = url.replace("cluster-config-", "gone-")
    config, reason = fetch_stored_config({"clusterConfiguration": {"url": missing}}, endpoint_url=stored_endpoint())
    assert config is None and reason == "could not download the stored config (404)"
    assert "X-Amz-Security-Token" not in reason


def test_stored_config_goes_through_the_one_loader():
    bomb = StoredConfigServer.get().put(ALIAS_BOMB)

    config, reason = fetch_stored_config({"clusterConfiguration": {"url": bomb}}, endpoint_url=stored_endpoint())

    assert config is None and "expand to more than" in reason
