"""pcluster_module: the module base (options, client, progress lines, clean results, one error path)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_base import (
    PclusterModule,
    cluster_summary,
    strip_presigned_urls,
)
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import install, load, run_module


class Probe:
    """A module built on PclusterModule: describes a cluster, writes progress, fails when asked."""

    note = None

    @staticmethod
    def main():
        module = PclusterModule(argument_spec=dict(name=dict(type="str"), fail=dict(type="bool", default=False)),
                                progress=True, supports_check_mode=True)
        module.fail_note = Probe.note
        api = module.client()
        module.progress("[probe] first\nsecond half")
        cluster = api.describe_cluster(module.params["name"])
        if module.params["fail"]:
            module.fail_json_pcluster(PclusterApiError("it broke: %s" % cluster["clusterConfiguration"]["url"], code=500),
                                      msg="Probe", cluster=cluster)
        module.exit_json(changed=False, cluster=cluster, clusters=[cluster])


@pytest.fixture(name="fake")
def fake_fixture(monkeypatch):
    fake = install(monkeypatch)
    fake.add_cluster("c1", load("describe_cluster_complete"))
    return fake


URL = load("describe_cluster_complete")["clusterConfiguration"]["url"]


def test_results_never_carry_the_presigned_url(fake, tmp_path):
    result = run_module(Probe, {"name": "c1", "region": "us-east-1"})

    assert result["cluster"]["clusterConfiguration"] == {} and result["clusters"][0]["clusterConfiguration"] == {}
    assert URL not in json.dumps(result) and "Signature=" not in json.dumps(result)


def test_failures_mask_the_url_in_messages_and_carry_the_note(fake, monkeypatch):
    monkeypatch.setattr(Probe, "note", staticmethod(lambda: "Note: the compute fleet is STOPPED."))

    result = run_module(Probe, {"name": "c1", "region": "us-east-1", "fail": True})

    assert result["failed"] is True and result["msg"].startswith("Probe: it broke: <presigned URL removed>")
    assert result["msg"].endswith("\nNote: the compute fleet is STOPPED.")
    assert result["error"]["code"] == 500 and URL not in json.dumps(result)


def test_progress_lines_go_to_a_private_file(fake, tmp_path):
    path = tmp_path / "progress"

    run_module(Probe, {"name": "c1", "region": "us-east-1", "progress_file": str(path)})

    assert path.read_text() == "[probe] first second half\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_no_region_is_one_clear_message(fake):
    result = run_module(Probe, {"name": "c1"})

    assert result["failed"] is True and result["msg"].startswith("No AWS region")


def test_strip_and_summary_leave_the_input_alone():
    describe = load("describe_cluster_complete")

    summary = cluster_summary(describe)

    assert describe["clusterConfiguration"]["url"] == URL
    assert summary["cluster"]["clusterConfiguration"] == {} and summary["head_node"]["instance_id"] == "i-549c884f957c8e56d"
    assert strip_presigned_urls([{"x": {"clusterConfiguration": {"url": URL, "other": 1}}}]) == [{"x": {"clusterConfiguration": {"other": 1}}}]
    assert cluster_summary(None)["exists"] is False
