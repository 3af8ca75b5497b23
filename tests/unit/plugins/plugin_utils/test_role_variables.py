"""The role's variables as argument_specs.yml declares them (plugins/plugin_utils/role_variables.py)."""

from __future__ import annotations

import pathlib

import yaml

import pytest

from ansible_collections.hpc.pcluster.plugins.plugin_utils import role_variables as rv
from ansible_collections.hpc.pcluster.tests.unit.fixtures.guide.guide import ROLE_OPTIONS, ROLE_SPEC

ROLE = pathlib.Path(__file__).resolve().parents[4] / "roles" / "cluster_config"


def test_the_declaration_is_the_roles_argument_specs_as_the_role_hands_it_over():
    options = rv.role_options(ROLE_SPEC)
    assert all(name.startswith(rv.PREFIX) for name in options)
    assert options["cluster_config_queues"]["options"]["compute_resources"]["options"]["max_count"]["default"] == 1


def test_role_defaults_file_sets_only_the_defaults_that_come_from_other_variables():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults == {"cluster_config_region": "{{ pcluster_region | default('') }}",
                        "cluster_config_node_setup_dir":
                            "{{ pcluster_node_setup_dir | default('/opt/slurm/hpc-pcluster/node-setup') }}",
                        "cluster_config_node_setup_enabled": "{{ pcluster_containers_enabled | default(True) }}"}
    assert set(defaults) <= set(ROLE_OPTIONS)


def test_unset_variables_take_their_declared_default_and_set_ones_are_converted():
    variables = rv.RoleVariables({"cluster_config_compute_max_count": "4", "cluster_config_efa_enabled": "no",
                                  "cluster_config_extra_iam_policies": "a,b"}, ROLE_OPTIONS)
    assert variables.get("compute_max_count") == 4
    assert variables.get("efa_enabled") is False
    assert variables.get("extra_iam_policies") == ["a", "b"]
    assert variables.get("compute_min_count") == 2 and variables.get("queue_name") == "compute-gpu"
    assert variables.problems == []


def test_a_value_of_the_wrong_type_is_a_problem_naming_the_variable():
    variables = rv.RoleVariables({"cluster_config_tags": "not a mapping", "cluster_config_efa_enabled": "maybe"}, ROLE_OPTIONS)
    assert variables.get("tags") is None and variables.get("efa_enabled") is None
    assert [(p["variable"], p["message"]) for p in variables.problems] == [
        ("cluster_config_tags", "cluster_config_tags must be a mapping, not str"),
        ("cluster_config_efa_enabled", "cluster_config_efa_enabled must be a boolean, not str"),
    ]


def test_required_values_say_what_to_set_from_their_description():
    variables = rv.RoleVariables({"cluster_config_region": ""}, ROLE_OPTIONS)
    assert variables.required("region", ("Region",)) is None
    (only,) = variables.problems
    assert only["message"] == "cluster_config_region is required and not set"
    assert only["fix"] == ("Set cluster_config_region: the AWS region, e.g. us-east-1 (or set pcluster_region, "
                           "which it defaults to).")


def test_items_report_unknown_keys_and_take_declared_defaults():
    variables = rv.RoleVariables({}, ROLE_OPTIONS)
    options = ROLE_OPTIONS["cluster_config_queues"]["options"]["compute_resources"]["options"]
    settings = variables.item({"name": "c", "max_cuont": 3}, "cluster_config_queues[0].compute_resources[0]",
                              options)
    assert settings == {"name": "c", "min_count": 0, "max_count": 1}
    (only,) = variables.problems
    assert "unknown key 'max_cuont'" in only["message"] and only["fix"].startswith("Did you mean max_count?")
    assert variables.item("c5.large", "cluster_config_queues[0]", options) is None


def test_unknown_variables_are_problems_and_outputs_are_not():
    variables = rv.RoleVariables({"cluster_config_fsx_lustre_enable": True, "cluster_config_file": "/x",
                                  "pcluster_cluster_name": "ml"}, ROLE_OPTIONS)
    variables.unknown_variables()
    assert [p["variable"] for p in variables.problems] == ["cluster_config_fsx_lustre_enable"]
    assert "Did you mean cluster_config_fsx_lustre_enabled?" in variables.problems[0]["fix"]


def test_descriptions_lose_their_markup():
    assert rv.plain_description({"description": ["Use C(x) or O(y=1), V(z).", "More."]}) == "Use x or y=1, z."


def test_what_is_not_a_role_spec_is_refused():
    for spec in (None, {}, {"argument_specs": {"main": {}}}, {"argument_specs": {"main": {"options": []}}}):
        with pytest.raises(ValueError, match="argument_specs.main.options"):
            rv.role_options(spec)
