"""The cluster_config role's filters (plugins/filter/config.py)."""

from __future__ import annotations

import sys

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hpc.pcluster.plugins.filter import config as config_filters
from ansible_collections.hpc.pcluster.plugins.module_utils.config import rules as config_rules
from ansible_collections.hpc.pcluster.tests.unit.fixtures.guide.guide import GUIDE_BEHAVIOUR, ROLE_SPEC, role_variables


class Warnings:
    def __init__(self):
        self.shown = []

    def warning(self, message):
        self.shown.append(message)


@pytest.fixture()
def shown(monkeypatch):
    display = Warnings()
    monkeypatch.setattr(config_filters, "display", display)
    return display.shown


def test_build_checks_offline_and_names_the_variable_of_each_problem(shown):
    built = config_filters.cluster_config_build(role_variables(cluster_config_compute_min_count=5,
                                                               cluster_config_os="centos7"), ROLE_SPEC)
    assert built["schema_checked"] is True and shown == []
    assert {(p["path"], p["variable"]) for p in built["problems"]} == {
        ("Scheduling.SlurmQueues[0].ComputeResources[0].MinCount", "cluster_config_compute_min_count"),
        ("Image.Os", "cluster_config_os"),
    }


def test_build_shows_its_warnings_as_ansible_warnings(shown):
    built = config_filters.cluster_config_build(role_variables(**GUIDE_BEHAVIOUR), ROLE_SPEC)
    assert built["problems"] == [] and shown == built["warnings"] and len(shown) == 3


def test_build_says_when_the_schema_did_not_run(shown, monkeypatch):
    def refuse(config, cluster_name, use_schema=True):
        del use_schema
        return config_rules.check_rules(config, cluster_name), False, "aws-parallelcluster is not installed"

    monkeypatch.setattr(config_filters, "validate_config", refuse)
    monkeypatch.setattr(config_filters, "HAS_PCLUSTER_SCHEMA", False)
    built = config_filters.cluster_config_build(role_variables(), ROLE_SPEC)
    assert built["schema_checked"] is False
    assert shown == ["aws-parallelcluster is not installed for the controller's Python (%s): install "
                     "requirements.txt there." % sys.executable]


def test_report_merges_the_checks_against_aws_and_names_their_variables(shown):
    built = config_filters.cluster_config_build(role_variables(), ROLE_SPEC)
    validation = {"errors": [{"path": "HeadNode.Networking.SubnetId", "value": "subnet-0123456789abcdef0",
                              "message": "The subnet subnet-0123456789abcdef0 does not exist in us-east-1",
                              "fix": "Use the id of an existing subnet."}]}
    report = config_filters.cluster_config_report(built, validation, "ml")
    assert report["problems"][0]["variable"] == "cluster_config_public_subnet_id"
    assert report["msg"].splitlines()[1].startswith(
        "- HeadNode.Networking.SubnetId (from cluster_config_public_subnet_id): The subnet")
    assert config_filters.cluster_config_report(built, {"skipped": True}) == {"problems": [], "msg": ""}


def test_bad_input():
    for call in (lambda: config_filters.cluster_config_build("x", ROLE_SPEC),
                 lambda: config_filters.cluster_config_build(role_variables(), {"argument_specs": {}}),
                 lambda: config_filters.cluster_config_report([])):
        with pytest.raises(AnsibleFilterError):
            call()
