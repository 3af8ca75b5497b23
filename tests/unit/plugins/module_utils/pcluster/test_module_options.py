"""The options the cluster and image modules share, and those of cluster_info and image_info: one declaration each,
and one main for the two lifecycle modules (every problem of the options at once, before any call)."""

from __future__ import annotations

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster import module_options
from ansible_collections.hpc.pcluster.plugins.modules import cluster, cluster_info, image, image_info
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster import fake_pcluster
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.cluster_cases import CONFIG

SHARED = ("name", "state", "config", "config_file", "wait", "wait_timeout", "rollback_on_failure",
          "suppress_validators", "validation_failure_level")


@pytest.fixture(name="fake")
def fake_fixture(monkeypatch):
    return fake_pcluster.install(monkeypatch)


def test_the_lifecycle_modules_share_their_options_and_keep_their_own_defaults():
    cluster_spec, image_spec = cluster.argument_spec(), image.argument_spec()
    for option in SHARED:
        differs = {"aliases", "default"} if option in ("name", "wait_timeout", "rollback_on_failure") else set()
        assert ({k: v for k, v in cluster_spec[option].items() if k not in differs}
                == {k: v for k, v in image_spec[option].items() if k not in differs}), option
    assert (cluster_spec["name"]["aliases"], image_spec["name"]["aliases"]) == (["cluster_name"], ["image_id"])
    assert (cluster_spec["wait_timeout"]["default"], image_spec["wait_timeout"]["default"]) == (3600, 7200)
    assert (cluster_spec["rollback_on_failure"]["default"], image_spec["rollback_on_failure"]["default"]) == (True, False)
    assert "unfinished_jobs" in cluster_spec and "replace" in image_spec


def test_the_info_modules_share_what_they_return_beside_the_describe():
    for spec, alias in ((cluster_info.argument_spec(), "cluster_name"), (image_info.argument_spec(), "image_id")):
        assert spec["name"] == {"type": "str", "aliases": [alias]}
        for option in ("stack_progress", "failure_details", "stored_config"):
            assert spec[option] == {"type": "bool", "default": False}


@pytest.mark.parametrize("module, args, found", [
    ("modules.cluster", {"name": "ml", "unfinished_jobs": -1, "wait_timeout": 0},
     "unfinished_jobs must be 0 or more, got -1; wait_timeout must be a positive number of seconds, got 0."),
    ("modules.image", {"name": "1st_image", "wait_timeout": -5},
     "name='1st_image' must start with a letter and hold only letters, digits and hyphens (at most 128): it names the "
     "image and its CloudFormation stack; wait_timeout must be a positive number of seconds, got -5."),
])
def test_every_problem_of_the_options_at_once_before_any_call(fake, module, args, found):
    result = fake_pcluster.run_module(fake_pcluster.plugin(module), dict(args, config=CONFIG, region="us-east-1"))
    assert result["failed"] is True and result["msg"] == found and fake.calls == []


def test_the_lifecycle_modules_state_how_their_options_go_together():
    assert module_options.LIFECYCLE_MODULE_KWARGS["mutually_exclusive"] == [("config", "config_file")]
    assert module_options.LIFECYCLE_MODULE_KWARGS["required_if"] == [("state", "present", ("config", "config_file"), True)]
