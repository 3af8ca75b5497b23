"""hpc.pcluster.image_info run in-process against recorded pcluster response shapes."""

from __future__ import annotations

import pytest

from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster import fake_pcluster

NAME = "ml-training-cluster-nodes-3f2a9c01b7de"


@pytest.fixture(name="fake")
def fake_fixture(monkeypatch):
    return fake_pcluster.install(monkeypatch)


def run(args, **kwargs):
    return fake_pcluster.run_module(fake_pcluster.plugin("modules.image_info"), dict(
        {"region": "us-east-1", "endpoint_url": fake_pcluster.stored_endpoint()}, **args), **kwargs)


def test_a_built_image_gives_its_ami_and_its_stored_config(fake):
    config = {"Build": {"InstanceType": "c5.2xlarge", "ParentImage": "ami-0a9c3a1e5c16f0b01"}}
    fake.add_image(NAME, fake_pcluster.load("describe_image_available_moto"),
                   stored_config_url=fake_pcluster.stored_config_url(config=config))

    result = run({"name": NAME, "stored_config": True})

    assert result["exists"] is True and result["status"] == "BUILD_COMPLETE"
    assert result["ami_id"] == "ami-97072f37f2f87fb29" and result["ami_name"].startswith("nodes-image ")
    assert result["stored_config"] == config
    assert "url" not in result["image"]["imageConfiguration"]


def test_a_missing_image_is_not_an_error(fake):
    result = run({"name": NAME, "stored_config": True})

    assert result["exists"] is False and result["ami_id"] is None and "stored_config" not in result


def test_a_build_under_way_gives_its_stack_progress(fake):
    fake.add_image_timeline(NAME, "build_image_complete_timeline", start=-600)

    result = run({"name": NAME, "stack_progress": True})

    assert result["status"] == "BUILD_IN_PROGRESS" and result["imagebuilder_status"] == "BUILDING"
    progress = result["stack_progress"]
    assert progress["operation"] == "CREATE" and progress["resources_total"] == 14
    assert progress["resources_complete"] == 13 and progress["resources_in_progress"] == 1


def test_a_failed_build_gives_its_failure_report(fake):
    fake.add_image_timeline(NAME, "build_image_failed_timeline", start=-2000)

    result = run({"name": NAME, "failure_details": True})

    assert result["status"] == "BUILD_FAILED"
    assert result["failure"]["hint"].startswith("Build.Components[0] (a script) exited non-zero")
    assert "Stdout: ERROR - Script execution failure. Exit code != 0" in result["failure"]["build_log"]


def test_lists_images_of_one_status(fake):
    fake.add_image(NAME, fake_pcluster.load("describe_image_available_moto"))
    fake.add_image_timeline("building", "build_image_complete_timeline", start=-600)

    assert [i["imageId"] for i in run({})["images"]] == [NAME]
    assert [i["imageId"] for i in run({"image_status": "PENDING"})["images"]] == ["building"]
    assert [op for op, _kw in fake.calls] == ["list_images", "list_images"]


def test_official_images_for_an_os(fake):
    result = run({"official": True, "os": "ubuntu2204", "architecture": "x86_64"})

    assert [i["amiId"] for i in result["images"]] == ["ami-0a9c3a1e5c16f0b01"]
    assert fake.calls == [("list_official_images", {"os": "ubuntu2204", "architecture": "x86_64"})]


def test_options_that_do_not_go_together_are_named_all_at_once(fake):
    result = run({"os": "ubuntu2204", "stored_config": True})

    assert result["failed"] is True
    assert "Options stored_config need 'name'" in result["msg"] and "set 'official: true' too" in result["msg"]
    assert fake.calls == []
