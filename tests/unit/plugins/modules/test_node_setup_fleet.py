"""hpc.pcluster.node_setup_fleet: which nodes it runs on, the jobs it starts, how it reads their results.

The jobs themselves run against the sandbox's real Slurm (tests/e2e/test_node_setup.py)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.hpc.pcluster.plugins.modules import node_setup_fleet as fleet


@pytest.mark.parametrize("state,kind", [
    ("idle", "target"), ("mix", "target"), ("alloc", "busy"), ("comp", "busy"), ("drng", "busy"),
    ("idle~", "powered_down"), ("idle#", "powered_down"), ("alloc#", "powered_down"), ("idle%", "powered_down"),
    ("idle!", "powered_down"), ("down~", "powered_down"), ("pow_up", "powered_down"),
    ("down", "unavailable"), ("down*", "unavailable"), ("idle*", "unavailable"), ("drain", "unavailable"),
    ("fail", "unavailable"), ("idle@", "unavailable"), ("maint", "unavailable"), ("unk*", "unavailable"),
])
def test_sinfo_states_are_classified(state, kind):
    assert fleet.classify(state) == kind


SINFO = """\
compute-gpu-st-distributed-ml-1|compute-gpu*|idle
compute-gpu-st-distributed-ml-2|compute-gpu*|alloc
compute-gpu-dy-distributed-ml-1|compute-gpu*|idle~
compute-gpu-dy-distributed-ml-2|compute-gpu*|mix
cpu-st-c5-1|cpu|idle
cpu-st-c5-1|compute-gpu*|idle
cpu-st-c5-2|cpu|down*
garbage line
"""


def test_free_nodes_are_grouped_by_partition_and_the_others_are_named_with_their_state():
    targets, left_out = fleet.plan(SINFO.splitlines())
    assert targets == {"compute-gpu": ["compute-gpu-dy-distributed-ml-2", "compute-gpu-st-distributed-ml-1"],
                       "cpu": ["cpu-st-c5-1"]}
    assert left_out == {"busy": {"compute-gpu-st-distributed-ml-2": "alloc"},
                        "powered_down": {"compute-gpu-dy-distributed-ml-1": "idle~"},
                        "unavailable": {"cpu-st-c5-2": "down*"}}
    assert fleet.plan(SINFO.splitlines(), ["cpu"])[0] == {"cpu": ["cpu-st-c5-1"]}


def test_one_task_per_node_in_one_job_that_gives_up_on_nodes_it_cannot_get():
    params = {"bundle_dir": "/opt/slurm/hpc-pcluster/node-setup", "job_name": "setup", "time_limit_minutes": 30,
              "allocation_wait_seconds": 120, "force": True}
    assert fleet.srun_argv("/opt/slurm/bin/srun", "q", ["a", "b"], params) == [
        "/opt/slurm/bin/srun", "--partition=q", "--nodelist=a,b", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1",
        "--cpus-per-task=1", "--job-name=setup", "--time=30", "--immediate=120", "--kill-on-bad-exit=0", "--no-kill",
        "--quiet", "/opt/slurm/hpc-pcluster/node-setup/current/venv/bin/python",
        "/opt/slurm/hpc-pcluster/node-setup/current/run.py", "fleet", "--force"]


def test_results_are_read_from_marked_lines_only():
    ok = {"node": "a", "status": "ok", "ok": 20, "changed": 2, "failed": 0, "changed_tasks": ["Write enroot.conf"],
          "seconds": 9.5, "slurmd": {"restarted": True}}
    out = "\n".join(["noise", "%s %s" % (fleet.RESULT_MARK, json.dumps(ok)), "%s {broken" % fleet.RESULT_MARK,
                     "%s %s" % (fleet.RESULT_MARK, json.dumps({"status": "ok"}))])
    assert fleet.parse_results(out) == {"a": ok}
    assert fleet.summary_line(ok) == ("a: ok (ok=20 changed=2 failed=0, 9.5 s); changed: Write enroot.conf; "
                                      "slurmd restarted (its SPANK configuration changed)")
    failed = {"node": "b", "status": "failed", "failed": 1, "failed_task": "Write enroot.conf",
              "message": "Destination\n directory missing", "seconds": 3}
    assert fleet.summary_line(failed) == ("b: failed (ok=0 changed=0 failed=1, 3 s); failed task: Write enroot.conf: "
                                          "Destination directory missing")


def test_jobs_run_per_partition_and_a_node_without_a_result_fails_with_the_job_error():
    calls = []

    def run_command(argv):
        calls.append(argv)
        partition = argv[1].split("=", 1)[1]
        if partition == "cpu":
            return 1, "", "srun: error: Unable to allocate resources: Requested nodes are busy"
        line = json.dumps({"node": "a", "status": "ok", "ok": 3, "changed": 0, "failed": 0})
        return 1, "%s %s\n" % (fleet.RESULT_MARK, line), "srun: error: b: task 1: Exited with exit code 1"

    params = {"bundle_dir": "/b", "job_name": "j", "time_limit_minutes": 5, "allocation_wait_seconds": 10,
              "force": False}
    jobs, results = fleet.run_jobs(run_command, "srun", {"gpu": ["a", "b"], "cpu": ["c"]}, params)
    assert sorted(argv[1] for argv in calls) == ["--partition=cpu", "--partition=gpu"]
    assert [job["partition"] for job in jobs] == ["cpu", "gpu"] and all("stdout" not in job for job in jobs)
    assert results["a"]["status"] == "ok"
    assert results["b"]["status"] == "failed" and "task 1: Exited with exit code 1" in results["b"]["message"]
    assert results["c"]["failed_task"] == "srun" and "Requested nodes are busy" in results["c"]["message"]


def test_a_node_whose_line_the_job_output_lost_is_read_from_the_file_it_wrote(tmp_path):
    # slurmd restarted under a step can cost the job a node's output; run.py also wrote its result to shared storage.
    def run_command(argv):
        assert argv[argv.index("--results-dir") + 1] == str(tmp_path)
        for node in ("a", "b"):
            (tmp_path / ("%s.json" % node)).write_text(json.dumps({"node": node, "status": "ok", "ok": 5, "changed": 1,
                                                                   "failed": 0, "source": "file"}))
        line = json.dumps({"node": "a", "status": "ok", "ok": 5, "changed": 1, "failed": 0, "source": "line"})
        return 0, "%s %s\n" % (fleet.RESULT_MARK, line), ""

    params = {"bundle_dir": "/b", "job_name": "j", "time_limit_minutes": 5, "allocation_wait_seconds": 10,
              "force": False}
    jobs, results = fleet.run_jobs(run_command, "srun", {"gpu": ["a", "b", "c"]}, params, str(tmp_path))
    assert results["a"]["source"] == "line" and results["b"]["source"] == "file"
    assert results["c"]["status"] == "failed" and results["c"]["failed_task"] == "srun"
    # Said, so that a lost line is seen: the job names the nodes and keeps the end of its output.
    assert "result_from" not in results["a"] and results["b"]["result_from"] == "file"
    assert jobs[0]["lines_missing"] == ["b", "c"] and '"source": "line"' in jobs[0]["stdout_tail"]
    assert fleet.summary_line(results["b"]).endswith("; result read from shared storage (the job's output had no "
                                                     "line for it)")
    assert "shared storage" not in fleet.summary_line(results["a"])
