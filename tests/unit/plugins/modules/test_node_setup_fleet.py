"""hpc.pcluster.node_setup_fleet: which nodes it runs on, the jobs it starts, how it reads their results.

The jobs themselves run against the sandbox's real Slurm (tests/e2e/test_node_setup.py)."""

from __future__ import annotations

import json
import pathlib
import random

from ansible_collections.hpc.pcluster.plugins.modules import node_setup_fleet as fleet
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import run_module

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "slurm"
# Which state is a target, busy, powered down or unavailable: slurm/node_states.node_setup_kind (its tests).
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
    assert targets == {"compute-gpu": ["compute-gpu-st-distributed-ml-1"], "cpu": ["cpu-st-c5-1"]}
    assert left_out == {"busy": {"compute-gpu-st-distributed-ml-2": "alloc", "compute-gpu-dy-distributed-ml-2": "mix"},
                        "powered_down": {"compute-gpu-dy-distributed-ml-1": "idle~"},
                        "unavailable": {"cpu-st-c5-2": "down*"}}
    assert fleet.plan(SINFO.splitlines(), ["cpu"])[0] == {"cpu": ["cpu-st-c5-1"]}


def test_one_task_per_node_in_one_job_in_the_reservation_running_the_controller_s_loader():
    params = {"bundle_dir": "/opt/slurm/hpc-pcluster/node-setup", "job_name": "setup", "time_limit_minutes": 30,
              "allocation_wait_seconds": 120, "force": True, "loader": "#!/bin/bash\necho loader\n"}
    assert fleet.srun_argv("/opt/slurm/bin/srun", "q", ["a", "b"], params, "hpc-pcluster-setup-job-1-2") == [
        "/opt/slurm/bin/srun", "--partition=q", "--nodelist=a,b", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1",
        "--cpus-per-task=1", "--job-name=setup", "--time=30", "--immediate=120",
        "--reservation=hpc-pcluster-setup-job-1-2", "--kill-on-bad-exit=0", "--no-kill", "--quiet",
        "/bin/bash", "-c", "#!/bin/bash\necho loader\n", "hpc-pcluster-node-setup",
        "--dir", "/opt/slurm/hpc-pcluster/node-setup", "--fleet", "--force"]


def lines(result, size=40):
    """run.py's printing of a result (result_lines), in parts of size characters."""
    text = json.dumps(result)
    parts = [text[i:i + size] for i in range(0, len(text), size)]
    return ["%s %s %d/%d %s" % (fleet.RESULT_MARK, result["node"], k, len(parts), part)
            for k, part in enumerate(parts, start=1)]


def test_results_are_put_back_together_from_marked_lines_only():
    ok = {"node": "a", "status": "ok", "ok": 20, "changed": 2, "failed": 0, "changed_tasks": ["Write enroot.conf"],
          "seconds": 9.5, "slurmd": {"restarted": True}}
    broken = ["%s b 1/1 {broken" % fleet.RESULT_MARK, "%s c 1/1 %s" % (fleet.RESULT_MARK, json.dumps({"status": "ok"}))]
    out = "\n".join(["noise"] + lines(ok) + broken)
    assert fleet.parse_results(out) == {"a": ok}
    assert fleet.summary_line(ok) == ("a: ok (ok=20 changed=2 failed=0, 9.5 s); changed: Write enroot.conf; "
                                      "slurmd restarted (its SPANK configuration changed)")
    failed = {"node": "b", "status": "failed", "failed": 1, "failed_task": "Write enroot.conf",
              "message": "Destination\n directory missing", "seconds": 3}
    assert fleet.summary_line(failed) == ("b: failed (ok=0 changed=0 failed=1, 3 s); failed task: Write enroot.conf: "
                                          "Destination directory missing")


def test_the_lines_of_many_nodes_in_any_order_give_each_node_its_result_and_a_part_missing_gives_none():
    results = {"n%d" % k: {"node": "n%d" % k, "status": "failed", "failed_task": "t", "message": "log " * (50 + k)}
               for k in range(6)}
    mixed = [line for result in results.values() for line in lines(result)]
    random.Random(7).shuffle(mixed)
    assert fleet.parse_results("\n".join(mixed)) == results
    [first, *rest] = lines(results["n1"])
    assert fleet.parse_results("\n".join(rest)) == {}
    assert fleet.parse_results("\n".join([first] + rest)) == {"n1": results["n1"]}


def test_srun_cuts_long_lines_of_tasks_printing_at_once_and_numbered_lines_that_fit_arrive_whole():
    # Recorded on the sandbox's Slurm (fixtures/slurm/README.md): four tasks, a first run's result each.
    one_line = (FIXTURES / "srun_fleet_one_line_per_task.txt").read_text()
    whole = []
    for line in one_line.splitlines():
        try:
            whole.append(json.loads(line.split(" ", 1)[1]))
        except (IndexError, ValueError):
            continue
    assert len(whole) < 4 and max(len(line) for line in one_line.splitlines()) > 1024
    numbered = (FIXTURES / "srun_fleet_result_lines.txt").read_text()
    assert max(len(line) + 1 for line in numbered.splitlines()) <= 1000
    results = fleet.parse_results(numbered)
    assert sorted(results) == ["compute-gpu-st-distributed-ml-%d-t%d" % (n, t) for n, t in ((1, 0), (1, 1), (2, 2),
                                                                                            (2, 3))]
    assert all(r["status"] == "ok" and len(r["changed_tasks"]) == 18 for r in results.values())


def test_jobs_run_per_partition_and_a_node_without_a_result_fails_with_the_job_error():
    calls = []

    def run_command(argv):
        calls.append(argv)
        partition = argv[1].split("=", 1)[1]
        if partition == "cpu":
            return 1, "", "srun: error: Unable to allocate resources: Requested nodes are busy"
        out = "\n".join(lines({"node": "a", "status": "ok", "ok": 3, "changed": 0, "failed": 0}))
        return 1, out + "\n", "srun: error: b: task 1: Exited with exit code 1"

    params = {"bundle_dir": "/b", "job_name": "j", "time_limit_minutes": 5, "allocation_wait_seconds": 10,
              "force": False, "loader": "true"}
    jobs, results = fleet.run_jobs(run_command, "srun", {"gpu": ["a", "b"], "cpu": ["c"]}, params, "r")
    assert sorted(argv[1] for argv in calls) == ["--partition=cpu", "--partition=gpu"]
    assert [job["partition"] for job in jobs] == ["cpu", "gpu"] and all("stdout" not in job for job in jobs)
    assert results["a"]["status"] == "ok"
    assert results["b"]["status"] == "failed" and "task 1: Exited with exit code 1" in results["b"]["message"]
    assert results["c"]["failed_task"] == "srun" and "Requested nodes are busy" in results["c"]["message"]
    # Said, so that a node without a result is seen: the job names it and keeps the end of its output.
    assert jobs[1]["lines_missing"] == ["b"] and '"node": "a"' in jobs[1]["stdout_tail"]


class FakeSlurm:
    """Slurm as the module sees it (sinfo, scontrol's reservations, srun): states, reservations and what each node's
    task prints. The real one runs in tests/e2e/test_node_setup.py."""

    def __init__(self, states, holds=(), outcome=None, busy_on_first_reserve=()):
        self.states = dict(states)
        self.reservations = {"hpc-pcluster-node-setup-" + node: node for node in holds}
        self.outcome = outcome or {}
        self.busy_on_first_reserve = list(busy_on_first_reserve)
        self.calls = []

    def sinfo(self):
        return "".join("%s|q|%s\n" % item for item in sorted(self.states.items()))

    def scontrol(self, argv):
        if argv[:2] == ["show", "reservation"]:
            return 0, "".join("ReservationName=%s StartTime=now Nodes=%s Flags=MAINT\n" % item
                              for item in sorted(self.reservations.items())), ""
        if argv[:2] == ["create", "reservation"]:
            fields = dict(arg.split("=", 1) for arg in argv[2:])
            nodes = fields["Nodes"].split(",")
            if self.busy_on_first_reserve and fields["ReservationName"].startswith("hpc-pcluster-setup-job-"):
                for node in self.busy_on_first_reserve:
                    self.states[node] = "alloc"  # the job that took it since sinfo was read
                self.busy_on_first_reserve = []
                return 1, "", "Error creating the reservation: Requested nodes are busy"
            self.reservations[fields["ReservationName"]] = ",".join(nodes)
            return 0, "Reservation created: %s" % fields["ReservationName"], ""
        if argv[0] == "delete":
            name = argv[1].split("=", 1)[1]
            if self.reservations.pop(name, None) is None:
                return 1, "", "delete_reservation %s: Requested reservation is invalid" % argv[1]
            return 0, "", ""
        raise AssertionError(argv)

    def srun(self, argv):
        nodes = argv[2].split("=", 1)[1].split(",")
        assert argv[10].startswith("--reservation=hpc-pcluster-setup-job-") and argv[10].split("=", 1)[1] in self.reservations
        out = []
        for node in nodes:
            status = self.outcome.get(node, "ok")
            if status != "silent":
                out.extend(lines({"node": node, "status": status, "ok": 3, "changed": 1 if status == "ok" else 0,
                                  "failed": int(status == "failed"), "failed_task": "t" if status == "failed" else None}))
        return 0, "\n".join(out) + "\n", ""

    def run_command(self, argv, **_kwargs):
        self.calls.append(argv)
        tool = argv[0].rsplit("/", 1)[-1]
        if tool == "sinfo":
            return 0, self.sinfo(), ""
        return self.scontrol(argv[1:]) if tool == "scontrol" else self.srun(argv)


def run_fleet(monkeypatch, slurm, tmp_path, check_mode=False):
    from ansible.module_utils import basic

    (tmp_path / "current").mkdir()
    (tmp_path / "current" / "run.py").write_text("")
    monkeypatch.setattr(basic.AnsibleModule, "run_command", slurm.run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda _self, name, **_kw: "/opt/slurm/bin/" + name)
    return run_module(fleet, {"bundle_dir": str(tmp_path), "loader": "true"}, check_mode=check_mode)


def test_a_node_allocated_between_sinfo_and_the_reservation_leaves_the_rest_to_be_set_up(monkeypatch, tmp_path):
    slurm = FakeSlurm({"n1": "idle", "n2": "idle", "n3": "idle"}, busy_on_first_reserve=["n2"])
    result = run_fleet(monkeypatch, slurm, tmp_path)
    assert not result.get("failed"), result
    assert [r["node"] for r in result["nodes"]] == ["n1", "n3"] and result["failed_nodes"] == []
    assert result["left_out"]["busy"] == {"n2": "alloc"}
    # Reserved twice (the second time without n2), one srun, and the job's reservation gone afterwards.
    reserves = [argv for argv in slurm.calls if argv[1:3] == ["create", "reservation"]]
    assert [a[4] for a in reserves] == ["Nodes=n1,n2,n3", "Nodes=n1,n3"] and "Flags=MAINT" in reserves[-1]
    assert sum(1 for argv in slurm.calls if argv[0].endswith("srun")) == 1 and slurm.reservations == {}


def test_holds_are_released_when_set_up_or_powered_down_and_placed_when_the_setup_failed(monkeypatch, tmp_path):
    slurm = FakeSlurm({"held-ok": "maint", "free-failed": "idle", "free-silent": "idle", "held-off": "idle~",
                       "busy": "mix", "other-maint": "maint"}, holds=["held-ok", "held-off"],
                      outcome={"free-failed": "failed", "free-silent": "silent"})
    result = run_fleet(monkeypatch, slurm, tmp_path)
    assert result["targets"] == {"q": ["free-failed", "free-silent", "held-ok"]}
    assert result["released"] == ["held-off", "held-ok"]
    assert result["held"] == {"free-failed": "t", "free-silent": "srun"}
    assert sorted(slurm.reservations) == ["hpc-pcluster-node-setup-free-failed", "hpc-pcluster-node-setup-free-silent"]
    assert result["failed_nodes"] == ["free-failed", "free-silent"] and result["changed"]
    assert result["left_out"] == {"busy": {"busy": "mix"}, "powered_down": {"held-off": "idle~"},
                                  "unavailable": {"other-maint": "maint"}}
    assert ("free-failed: held out of scheduling until its setup succeeds (Slurm reservation "
            "hpc-pcluster-node-setup-free-failed; failed: t)") in result["summary"]


def test_check_mode_reserves_holds_and_releases_nothing(monkeypatch, tmp_path):
    slurm = FakeSlurm({"n1": "idle", "n2": "maint", "n3": "idle~"}, holds=["n2", "n3"])
    result = run_fleet(monkeypatch, slurm, tmp_path, check_mode=True)
    assert result["targets"] == {"q": ["n1", "n2"]} and not result["changed"]
    assert [argv[1:3] for argv in slurm.calls if argv[0].endswith("scontrol")] == [["show", "reservation"]]
