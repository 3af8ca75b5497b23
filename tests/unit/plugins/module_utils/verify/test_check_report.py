"""The check record, its collector and the command runner every check module uses."""

from ansible_collections.hpc.pcluster.plugins.module_utils.verify.check_report import CheckReport, CommandRunner


def test_not_available_is_never_passed():
    report = CheckReport({"efa": "not available in the sandbox"})
    report.add("efa", "n1", "x", "y", True)
    report.add("docker", "n1", "x", "y", False, "install it")
    report.add("nvidia_smi", "n1", "x", "y", False, "h", unavailable_reason="nvidia-smi not found on the node")
    assert [c["status"] for c in report.checks] == ["not_available", "failed", "not_available"]
    assert report.checks[0]["hint"] == "not available in the sandbox"
    assert [c["check"] for c in report.failed] == ["docker"]


def test_not_available_names_a_check_a_node_a_family_or_an_alias():
    report = CheckReport({"storage_type:/fsx": "tmpfs", "srun:n2": "drained on purpose", "gpu": "no GPU",
                          "fsx_lustre": "tmpfs too"})
    report.add("storage_type", "n1", "x", "y", False, aliases=("storage_type:/fsx",))
    report.add("srun", "n2", "x", "y", False)
    report.add("srun", "n1", "x", "y", False, "h")
    report.add("gpu_count", "n1", "x", "y", False)
    report.add("storage_type", "n1", "x", "y", False, aliases=("storage_type:/lustre", "fsx_lustre"))
    assert [(c["status"], c["hint"]) for c in report.checks] == [
        ("not_available", "tmpfs"), ("not_available", "drained on purpose"), ("failed", "h"),
        ("not_available", "no GPU"), ("not_available", "tmpfs too")]


def test_a_passed_check_carries_no_hint():
    report = CheckReport({})
    report.add("squeue", "head", "answers", "0 jobs", True, "squeue cannot reach slurmctld")
    assert report.checks == [{"check": "squeue", "node": "head", "expected": "answers", "seen": "0 jobs",
                              "status": "passed", "hint": ""}]


class FakeModule:
    def __init__(self, answer):
        self.answer = answer
        self.commands = []

    def run_command(self, argv, check_rc=False):
        self.commands.append(argv)
        return self.answer


def test_runner_kills_after_the_timeout_and_names_what_is_missing():
    module = FakeModule((124, "", ""))
    runner = CommandRunner(module, "/opt/slurm/bin")
    assert runner.slurm("sinfo") == "/opt/slurm/bin/sinfo"
    rc, dummy, err = runner.run([runner.slurm("srun"), "true"], timeout=30)
    assert module.commands == [["timeout", "--kill-after=10", "30", "/opt/slurm/bin/srun", "true"]]
    assert rc == 124 and err.startswith("timed out after 30s")
    module.answer = (127, "", "")
    assert CommandRunner(module).run(["enroot", "version"])[2] == "enroot: command not found"
