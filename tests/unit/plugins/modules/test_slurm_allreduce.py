"""The slurm_allreduce module: the commands it builds and what it reports, against a fake srun/salloc."""

import json
import os
import pathlib
import stat

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpc.pcluster.plugins.modules import slurm_allreduce as sa

FIXTURES = pathlib.Path(__file__).parents[2] / "fixtures" / "allreduce"

# srun / salloc: record the arguments and the environment the run gets, print $FAKE_OUTPUT, exit $FAKE_RC.
FAKE = """#!/bin/sh
printf '%s\\n' "$0" "$@" > "$FAKE_DIR/argv.$(basename "$0")"
env | sort > "$FAKE_DIR/env.$(basename "$0")"
if [ -t 0 ]; then echo terminal; else echo other; fi > "$FAKE_DIR/stdin.$(basename "$0")"
[ -n "$FAKE_SLEEP" ] && [ "$(basename "$0")" != scancel ] && sleep "$FAKE_SLEEP"
cat "$FAKE_OUTPUT"
exit "${FAKE_RC:-0}"
"""

G5 = ("compute-gpu-st-distributed-ml-1", "compute-gpu-st-distributed-ml-2")


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("srun", "salloc", "scancel"):
        path = bindir / name
        path.write_text(FAKE)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE_DIR", str(tmp_path))
    return tmp_path


def run_module(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            sa.main()
    return json.loads(capsys.readouterr().out)


def group(backend="nccl", nodes=G5, **extra):
    result = {"label": "compute-gpu-st-distributed-ml-[1-2]", "backend": backend, "partition": "compute-gpu",
              "nodes": list(nodes), "instance_type": "g5.8xlarge", "gpus_per_node": 1, "efa": True,
              "expected_busbw": 3.125, "expected_source": "EC2", "min_fraction": 0.5}
    result.update(extra)
    return result


def args_for(fake, runs, **extra):
    args = {"runs": runs, "slurm_bin_dir": str(fake / "bin"), "nccl_image": "public.ecr.aws#hpc-cloud/nccl-tests:t",
            "nccl_env": {"FI_PROVIDER": "efa", "NCCL_DEBUG": "INFO"}, "_ansible_check_mode": False}
    args.update(extra)
    return args


def by_check(result):
    return dict((c["check"], c) for c in result["checks"])


def test_nccl_run_through_pyxis_with_the_efa_environment(fake_slurm, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_OUTPUT", str(FIXTURES / "nccl_sockets.txt"))
    result = run_module(capsys, args_for(fake_slurm, [group()], extra_args=["--account=ml"]))
    argv = (fake_slurm / "argv.srun").read_text().splitlines()
    assert "--container-image=public.ecr.aws#hpc-cloud/nccl-tests:t" in argv
    for expected in ("--partition=compute-gpu", "--nodes=2", "--nodelist=%s" % ",".join(G5), "--ntasks-per-node=1",
                     "--gpus-per-node=1", "--mpi=pmix", "--account=ml", "/opt/nccl-tests/build/all_reduce_perf"):
        assert expected in argv
    assert argv[argv.index("-c") + 1] == "1"
    env = (fake_slurm / "env.srun").read_text().splitlines()
    assert "FI_PROVIDER=efa" in env and "NCCL_DEBUG=INFO" in env
    checks = by_check(result)
    assert checks["nccl_transport"]["status"] == "failed" and result["failed_checks"] == 1
    run = result["runs"][0]
    assert run["rc"] == 0 and run["busbw_at_largest"] == 2.18 and run["environment"]["FI_PROVIDER"] == "efa"
    assert run["output_tail"][-1].endswith("#")


def test_mpi_run_in_salloc_shows_the_program_by_name(fake_slurm, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_OUTPUT", str(FIXTURES / "nccl_efa_passed.txt"))
    run_module(capsys, args_for(fake_slurm, [group("mpi", nodes=["gpu-st-p4de-1", "gpu-st-p4de-2"])],
                                mpirun="/usr/bin/mpirun", mpirun_args=["--mca", "btl", "tcp,self"],
                                mpi_max_bytes=4194304))
    argv = (fake_slurm / "argv.salloc").read_text()
    lines = argv.splitlines()
    assert lines[lines.index("/usr/bin/mpirun") + 1:lines.index("/usr/bin/mpirun") + 4] == ["--mca", "btl", "tcp,self"]
    assert "from mpi4py import MPI" in argv
    assert "--ntasks-per-node=1" in lines
    # min, max, factor, iterations, warm-up after the program.
    assert lines[-5:] == ["1024", "4194304", "4", "5", "1"]


def test_shown_command_leaves_the_program_out(fake_slurm, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_OUTPUT", str(FIXTURES / "nccl_efa_passed.txt"))
    result = run_module(capsys, args_for(fake_slurm, [group("mpi", nodes=["gpu-st-p4de-1", "gpu-st-p4de-2"])]))
    assert "<mpi4py all-reduce program>" in result["runs"][0]["command"]
    assert not any("import" in part for part in result["runs"][0]["command"])
    assert {c["status"] for c in result["checks"]} == {"passed"}


def test_a_run_over_its_time_is_killed_and_reported(fake_slurm, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_OUTPUT", str(FIXTURES / "nccl_efa_passed.txt"))
    monkeypatch.setenv("FAKE_SLEEP", "5")
    result = run_module(capsys, args_for(fake_slurm, [group(nodes=["gpu-st-p4de-1", "gpu-st-p4de-2"])], timeout=1))
    run = by_check(result)["nccl_allreduce_run"]
    assert run["status"] == "failed" and run["seen"].startswith("timed out after")
    assert result["runs"][0]["timed_out"]
    # The job it left is cancelled by its own name.
    job_name = result["runs"][0]["job_name"]
    assert job_name.startswith("hpc-pcluster-verify-allreduce-")
    assert "--job-name=%s" % job_name in (fake_slurm / "argv.srun").read_text().splitlines()
    assert (fake_slurm / "argv.scancel").read_text().splitlines()[1:] == ["--name=%s" % job_name]


def test_not_available_groups_and_check_mode_run_nothing(fake_slurm, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_OUTPUT", str(FIXTURES / "nccl_efa_passed.txt"))
    result = run_module(capsys, args_for(fake_slurm, [group()], not_available={"nccl": "no GPU here"}))
    assert not (fake_slurm / "argv.srun").exists()
    assert {(c["status"], c["hint"]) for c in result["checks"]} == {("not_available", "no GPU here")}
    assert result["runs"][0]["not_run"] == "no GPU here"
    result = run_module(capsys, args_for(fake_slurm, [group("mpi")], _ansible_check_mode=True))
    assert not (fake_slurm / "argv.salloc").exists()
    assert {c["status"] for c in result["checks"]} == {"not_available"}


def test_fewer_than_two_usable_nodes_fail_without_running(fake_slurm, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_OUTPUT", str(FIXTURES / "nccl_efa_passed.txt"))
    result = run_module(capsys, args_for(fake_slurm, [group("mpi", nodes=G5[:1], excluded=[
        {"name": G5[1], "reason": "node_state did not pass"}])]))
    assert not (fake_slurm / "argv.salloc").exists()
    assert {c["status"] for c in result["checks"]} == {"failed"}
    assert "fewer than 2 usable nodes" in by_check(result)["mpi_allreduce_run"]["hint"]


def test_bad_arguments_are_named_together(fake_slurm, capsys):
    with patch_module_args(args_for(fake_slurm, [group()], nccl_image="", mpi_factor=1)):
        with pytest.raises(SystemExit):
            sa.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"]
    assert "mpi_factor must be 2 or more (got 1)" in result["msg"]
    assert "nccl_image is empty" in result["msg"]


def test_salloc_never_gets_a_terminal_on_stdin(fake_slurm, capsys, monkeypatch):
    # As under become with su: the module's stdin is a terminal. salloc must not see it (it would want to be the
    # terminal's foreground job and stop with "no controlling terminal").
    monkeypatch.setenv("FAKE_OUTPUT", str(FIXTURES / "nccl_efa_passed.txt"))
    leader, follower = os.openpty()
    saved = os.dup(0)
    try:
        os.dup2(follower, 0)
        run_module(capsys, args_for(fake_slurm, [group("mpi", nodes=["gpu-st-p4de-1", "gpu-st-p4de-2"])]))
    finally:
        os.dup2(saved, 0)
        for fd in (saved, leader, follower):
            os.close(fd)
    assert (fake_slurm / "stdin.salloc").read_text() == "other\n"
