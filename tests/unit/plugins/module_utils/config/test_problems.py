"""Problem records, config paths and the problem report (plugins/module_utils/config/problems.py)."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.module_utils.config import problems as cp


def test_paths_format_and_parse_both_ways():
    parts = ("SharedStorage", 1, "FsxLustreSettings", "DeploymentType")
    assert cp.format_path(parts) == "SharedStorage[1].FsxLustreSettings.DeploymentType"
    assert cp.parse_path("SharedStorage[1].FsxLustreSettings.DeploymentType") == parts
    assert cp.parse_path("") == ()


def test_value_at_follows_keys_and_indexes_and_is_none_when_absent():
    config = {"Scheduling": {"SlurmQueues": [{"Name": "q"}]}}
    assert cp.value_at(config, ("Scheduling", "SlurmQueues", 0, "Name")) == "q"
    assert cp.value_at(config, ("Scheduling", "SlurmQueues", 3, "Name")) is None
    assert cp.value_at(config, ("Scheduling", "Nope", "Deeper")) is None


def test_walk_yields_keys_and_scalars_with_their_paths():
    walked = list(cp.walk({"A": [{"B": 1}]}))
    assert walked == [((), "A", None), (("A", 0), "B", None), (("A", 0, "B"), None, 1)]


def test_merge_keeps_the_first_problem_of_a_path_and_of_paths_below_it():
    first = [cp.problem(("HeadNode", "Networking"), None, "ours", "fix")]
    second = [cp.problem(("HeadNode", "Networking", "SubnetId"), "x", "theirs", "fix"),
              cp.problem(("Image", "Os"), "y", "other", "fix")]
    merged = cp.merge_problems(first, second)
    assert [p["message"] for p in merged] == ["ours", "other"]


def test_variables_are_named_by_the_longest_recorded_path():
    sources = {"Scheduling.SlurmQueues[0]": "cluster_config_queues[0]",
               "Scheduling.SlurmQueues[0].ComputeResources[0].MinCount": "cluster_config_compute_min_count"}
    assert cp.variable_for("Scheduling.SlurmQueues[0].ComputeResources[0].MinCount", sources) == \
        "cluster_config_compute_min_count"
    assert cp.variable_for("Scheduling.SlurmQueues[0].Name", sources) == "cluster_config_queues[0]"
    assert cp.variable_for("Image.Os", sources) is None
    problems = cp.name_variables([cp.problem("Scheduling.SlurmQueues[0].Name", "Q", "bad", "fix")], sources)
    assert problems[0]["variable"] == "cluster_config_queues[0]"


def test_report_names_path_variable_value_and_fix_one_line_each():
    problems = [cp.problem("HeadNode.Networking.SubnetId", "subnet-xyz", "'subnet-xyz' is not a subnet id.",
                           "Use a subnet id.", "cluster_config_public_subnet_id"),
                cp.problem("", None, "Unknown variable x", "Remove it.", "x")]
    report = cp.format_problems(problems, cluster_name="ml")
    assert report.splitlines() == [
        "The cluster configuration of 'ml' has 2 problems:",
        "- HeadNode.Networking.SubnetId (from cluster_config_public_subnet_id): 'subnet-xyz' is not a subnet id "
        "[value: 'subnet-xyz']. Fix: Use a subnet id.",
        "- x: Unknown variable x. Fix: Remove it.",
    ]
