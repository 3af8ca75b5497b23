"""The all-reduce output parsers and judges, on recorded nccl-tests outputs and on the real MPI program."""

import os
import pathlib
import shutil
import socket
import subprocess

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.allreduce import judge
from ansible_collections.hpc.pcluster.plugins.module_utils.allreduce import output as out
from ansible_collections.hpc.pcluster.plugins.module_utils.allreduce.program import PROGRAM, program_argv

FIXTURES = pathlib.Path(__file__).parents[3] / "fixtures" / "allreduce"


def fixture(name):
    return (FIXTURES / name).read_text()


def spec(backend="nccl", nodes=("n-1", "n-2"), gpus=8, efa=True, busbw=50.0, fraction=0.5, **extra):
    result = {"backend": backend, "label": "group", "partition": "gpu", "nodes": list(nodes), "excluded": [],
              "instance_type": "p4de.24xlarge", "gpus_per_node": gpus, "efa": efa, "expected_busbw": busbw,
              "expected_source": "EC2 DescribeInstanceTypes", "min_fraction": fraction}
    result.update(extra)
    return result


def statuses(spec_, text, rc=0, killed=False, not_available=None):
    checks, summary = judge.judge_run(spec_, text, rc, 30.0, killed=killed)
    done = judge.finish_checks(checks, not_available or {}, (spec_["backend"], "distributed"))
    return {c["check"]: c for c in done}, summary


# --- the four recorded nccl-tests runs -------------------------------------------------------------------------

P4DE = ["gpu-st-p4de-1", "gpu-st-p4de-2"]
P5 = ["gpu-st-p5-1", "gpu-st-p5-2"]
G5 = ["compute-gpu-st-distributed-ml-1", "compute-gpu-st-distributed-ml-2"]
P4D = ["gpu-st-p4d-%d" % i for i in range(1, 5)]


def test_efa_run_that_passed():
    parsed = out.parse_allreduce(fixture("nccl_efa_passed.txt"))
    assert len(parsed["ranks"]) == 16 and parsed["hosts"] == P4DE
    assert (parsed["min_bytes"], parsed["max_bytes"]) == (8, 2147483648)
    assert len(parsed["rows"]) == 29 and parsed["rows"][-1]["size"] == 2147483648
    assert parsed["rows"][-1]["out_of_place"] == {"time_us": 51406.0, "algbw": 41.78, "busbw": 78.33, "wrong": 0}
    assert parsed["out_of_bounds"] == 0 and parsed["concluded"]
    assert parsed["nccl"]["transport"] == "efa" and parsed["nccl"]["nics"] == 4
    assert parsed["nccl"]["ofi_plugin"] == "aws-ofi-nccl 1.7.4-aws"
    checks, summary = statuses(spec(nodes=P4DE), fixture("nccl_efa_passed.txt"))
    assert {c["status"] for c in checks.values()} == {"passed"}
    assert set(checks) == {"nccl_allreduce_run", "nccl_allreduce_correct", "nccl_allreduce_bandwidth",
                           "nccl_transport"}
    assert checks["nccl_allreduce_bandwidth"]["seen"].startswith("78.33 GB/s at 2 GiB")
    assert "25.00 GB/s" in checks["nccl_allreduce_bandwidth"]["expected"]
    assert "EC2 DescribeInstanceTypes" in checks["nccl_allreduce_bandwidth"]["expected"]
    assert "2 GiB" in checks["nccl_allreduce_bandwidth"]["detail"]
    assert summary["busbw_at_largest"] == 78.33 and summary["expected"]["threshold"] == 25.0
    assert [r["size"] for r in summary["sizes"]][:2] == [8, 16]


def test_run_with_wrong_elements_fails_correctness_only():
    checks, summary = statuses(spec(nodes=P5, busbw=400.0), fixture("nccl_wrong.txt"))
    assert checks["nccl_allreduce_correct"]["status"] == "failed"
    seen = checks["nccl_allreduce_correct"]["seen"]
    assert "256 MiB out-of-place: 3" in seen and "512 MiB in-place: 4096" in seen and "1 GiB in-place: 12" in seen
    assert "faulty GPU, NIC or driver" in checks["nccl_allreduce_correct"]["hint"]
    for name in ("nccl_allreduce_run", "nccl_allreduce_bandwidth", "nccl_transport"):
        assert checks[name]["status"] == "passed", checks[name]
    assert summary["transport"]["fabric"] == "efa-direct" and summary["transport"]["nics"] == 32
    assert out.parse_allreduce(fixture("nccl_wrong.txt"))["out_of_bounds"] == 8207


def test_run_that_fell_back_to_sockets_fails_transport_with_the_hint():
    checks, _summary = statuses(spec(nodes=G5, gpus=1, busbw=3.125), fixture("nccl_sockets.txt"))
    transport = checks["nccl_transport"]
    assert transport["status"] == "failed"
    assert transport["seen"].startswith("TCP sockets (NET/Socket)")
    assert "fell back to TCP sockets" in transport["hint"]
    assert "aws-ofi-nccl plugin was not found" in transport["hint"]
    # Bandwidth alone would not have caught it.
    assert checks["nccl_allreduce_bandwidth"]["status"] == "passed"
    assert checks["nccl_allreduce_run"]["status"] == "passed"


def test_run_that_timed_out():
    text = fixture("nccl_timeout.txt")
    assert out.timed_out(text)
    checks, summary = statuses(spec(nodes=P4D), text, rc=143)
    run = checks["nccl_allreduce_run"]
    assert run["status"] == "failed"
    assert "timed out" in run["seen"] and "24 size(s) done (last 64 MiB)" in run["seen"]
    assert "verify_distributed_timeout" in run["hint"]
    assert checks["nccl_allreduce_bandwidth"]["status"] == "failed"
    assert checks["nccl_allreduce_bandwidth"]["seen"] == "not measured: the run did not finish"
    assert "before the run stopped" in checks["nccl_allreduce_correct"]["seen"]
    assert summary["timed_out"] and not summary["finished"] and summary["busbw_at_largest"] is None
    assert any("DUE TO TIME LIMIT" in e for e in summary["errors"])


def test_a_killed_run_is_a_timeout_even_without_slurms_message():
    text = "\n".join(fixture("nccl_efa_passed.txt").splitlines()[:40])
    checks, summary = statuses(spec(nodes=P4DE), text, rc=124, killed=True)
    assert summary["timed_out"] and "timed out" in checks["nccl_allreduce_run"]["seen"]


# --- parser details ----------------------------------------------------------------------------------------------

def test_launcher_prefixes_are_removed():
    assert out.strip_prefix("0: #  Rank  0 Group") == "#  Rank  0 Group"
    assert out.strip_prefix("[1,0]<stdout>:        8   2") == "       8   2"
    assert out.strip_prefix("   8   2") == "   8   2"


def test_per_iteration_and_timestamp_columns_and_unvalidated_rows():
    text = "\n".join([
        "# %10s  %12s  %8s  %6s  %6s  time  algbw  busbw  #wrong  i_min  i_max  i_p99  i_cv%%  time  algbw  busbw  "
        "#wrong  i_min  i_max  i_p99  i_cv%%  timestamp" % ("size", "count", "type", "redop", "root"),
        "    1048576   262144   float   sum   -1   100.0  10.49  19.66   N/A   90.0  120.0  119.0  3.10   101.0  10.38  "
        "19.47   N/A  91.0  118.0  117.0  2.90  2025-01-01 10:00:00",
        "# Avg bus bandwidth    : 19.56 ",
    ])
    parsed = out.parse_allreduce(text)
    row = parsed["rows"][0]
    assert row["out_of_place"] == {"time_us": 100.0, "algbw": 10.49, "busbw": 19.66, "wrong": None}
    assert row["in_place"]["busbw"] == 19.47
    checks, _summary = statuses(spec(nodes=["a"]), text)
    assert checks["nccl_allreduce_correct"]["status"] == "failed"
    assert "not reported" in checks["nccl_allreduce_correct"]["seen"]
    assert "-c 1" in checks["nccl_allreduce_correct"]["hint"]


def test_old_format_without_root_column_and_with_error_column():
    text = ("#       size         count      type   redop     time   algbw   busbw  error     time   algbw   busbw  error\n"
            "     4194304       1048576     float     sum    530.3    7.91   14.83  0e+00    529.1    7.93   14.86  2e-03\n")
    row = out.parse_allreduce(text)["rows"][0]
    assert row["root"] is None and row["out_of_place"]["wrong"] == 0 and row["in_place"]["wrong"] == 1


def test_a_row_cut_short_is_not_read():
    parsed = out.parse_allreduce("        8388608       2097152     float     sum      -1    762.8   11.00\n")
    assert parsed["rows"] == []


@pytest.mark.parametrize("line,transport", [
    ("h:1:2 [0] NCCL INFO NET/OFI Selected Provider is efa (found 4 nics)", "efa"),
    ("h:1:2 [0] NCCL INFO NET/OFI Selected provider is efa, fabric is efa-direct (found 32 nics)", "efa"),
    ("h:1:2 [0] NCCL INFO NET/OFI Selected Provider is tcp (found 1 nics)", "ofi:tcp"),
    ("h:1:2 [0] NCCL INFO Using network Socket", "socket"),
    ("h:1:2 [0] NCCL INFO Using network IB", "ib"),
    ("nothing from NCCL", "unknown"),
])
def test_nccl_transport(line, transport):
    assert out.nccl_transport(line)["transport"] == transport


def test_transport_hints_name_the_cause():
    tcp = judge.transport_check(spec(), out.nccl_transport("x NCCL INFO NET/OFI Selected Provider is tcp (found 1 nics)"))
    assert not tcp["ok"] and "provider tcp instead of efa" in tcp["hint"]
    silent = judge.transport_check(spec(), out.nccl_transport("# Avg bus bandwidth : 1"))
    assert not silent["ok"] and "NCCL_DEBUG=INFO" in silent["hint"]
    no_efa = judge.transport_check(spec(efa=False), out.nccl_transport("x NCCL INFO Using network Socket"))
    assert no_efa["ok"] and "EFA is not enabled" in no_efa["expected"]


# --- judges ------------------------------------------------------------------------------------------------------

def test_left_out_and_missing_nodes_fail_the_run():
    text = fixture("nccl_efa_passed.txt")
    left_out = [{"name": "gpu-st-p4de-3", "reason": "node_state did not pass"}]
    checks, _summary = statuses(spec(nodes=P4DE, excluded=left_out), text)
    assert checks["nccl_allreduce_run"]["status"] == "failed"
    assert "left out (not usable, see node_state): gpu-st-p4de-3" in checks["nccl_allreduce_run"]["seen"]
    checks, _summary = statuses(spec(nodes=P4DE + ["gpu-st-p4de-9"]), text)
    assert "no rank on gpu-st-p4de-9" in checks["nccl_allreduce_run"]["seen"]


def test_failures_get_hints_by_cause():
    missing = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'mpi4py'\n"
    checks, _summary = statuses(spec(backend="mpi", gpus=0), missing, rc=1)
    assert checks["mpi_allreduce_run"]["status"] == "failed"
    assert "python3-mpi4py" in checks["mpi_allreduce_run"]["hint"]
    assert "nccl_transport" not in checks
    pyxis = "srun: unrecognized option '--container-image=x'\n"
    checks, _summary = statuses(spec(), pyxis, rc=1)
    assert "Pyxis is not loaded" in checks["nccl_allreduce_run"]["hint"]


def test_bandwidth_below_the_fraction_fails_and_unknown_expectation_says_what_to_set():
    text = fixture("nccl_efa_passed.txt")
    checks, _summary = statuses(spec(nodes=P4DE, busbw=400.0), text)
    assert checks["nccl_allreduce_bandwidth"]["status"] == "failed"
    assert "placement group" in checks["nccl_allreduce_bandwidth"]["hint"]
    checks, _summary = statuses(spec(nodes=P4DE, busbw=None, expected_source="no network bandwidth known for x9.large"), text)
    assert checks["nccl_allreduce_bandwidth"]["status"] == "failed"
    assert "verify_distributed_network_gbps" in checks["nccl_allreduce_bandwidth"]["hint"]


def test_not_available_by_family_and_by_check():
    text = fixture("nccl_efa_passed.txt")
    checks, _summary = statuses(spec(nodes=P4DE), text, not_available={"nccl": "no GPU here"})
    assert {c["status"] for c in checks.values()} == {"not_available"}
    assert {c["hint"] for c in checks.values()} == {"no GPU here"}
    checks, _summary = statuses(spec(nodes=P4DE), text, not_available={"nccl_transport": "no EFA here"})
    assert checks["nccl_transport"]["status"] == "not_available"
    assert checks["nccl_allreduce_run"]["status"] == "passed"


def test_a_group_that_did_not_run_is_one_check_never_passed():
    checks = judge.finish_checks(judge.not_run_checks(spec(), "not run in check mode", True), {}, ("nccl",))
    assert [(c["check"], c["status"], c["hint"]) for c in checks] == [
        ("nccl_allreduce_run", "not_available", "not run in check mode")]
    checks = judge.finish_checks(judge.not_run_checks(spec(backend="mpi"), "fewer than 2 usable nodes", False), {},
                                 ("mpi",))
    assert [(c["check"], c["status"]) for c in checks] == [("mpi_allreduce_run", "failed")]


def test_every_judge_is_planned():
    assert [c["check"] for c in judge.planned_checks(spec())] == [
        "nccl_allreduce_run", "nccl_allreduce_correct", "nccl_allreduce_bandwidth", "nccl_transport"]
    assert len(judge.planned_checks(spec(backend="mpi"))) == 3


def test_human_sizes():
    sizes = (8, 1024, 3 << 20, 2 << 30, 1000)
    assert [judge.human_size(s) for s in sizes] == ["8 B", "1 KiB", "3 MiB", "2 GiB", "1000 B"]


# --- the MPI program, run for real -----------------------------------------------------------------------------

SYSTEM_PYTHON = "/usr/bin/python3"


def _has_mpi4py():
    return os.path.exists(SYSTEM_PYTHON) and subprocess.run(
        [SYSTEM_PYTHON, "-c", "import mpi4py"], capture_output=True, check=False).returncode == 0


needs_mpi = pytest.mark.skipif(not (_has_mpi4py() and shutil.which("mpirun")),
                               reason="needs Open MPI and Debian's python3-mpi4py (scripts/setup.sh installs them)")


@needs_mpi
def test_mpi_program_output_is_read_like_nccl_tests():
    argv = ["mpirun", "--oversubscribe", "-np", "3", "--mca", "btl", "self,vader", "--mca", "mpi_yield_when_idle", "1"]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run(argv + program_argv(SYSTEM_PYTHON, 1024, 1 << 20, 4, 2, 1), capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    parsed = out.parse_allreduce(proc.stdout)
    assert len(parsed["ranks"]) == 3 and parsed["hosts"] == [socket.gethostname()]
    assert [r["size"] for r in parsed["rows"]] == [1024, 4096, 16384, 65536, 262144, 1048576]
    assert parsed["concluded"] and parsed["out_of_bounds"] == 0
    assert parsed["library"].startswith("Open MPI")
    # busbw = algbw * 2 (n - 1) / n for n = 3.
    row = parsed["rows"][-1]["out_of_place"]
    assert abs(row["busbw"] - row["algbw"] * 4 / 3) < 0.002
    checks, summary = statuses(spec(backend="mpi", nodes=[socket.gethostname()], gpus=0, busbw=1e-6), proc.stdout)
    assert {c["status"] for c in checks.values()} == {"passed"}
    assert summary["ranks"] == 3


@needs_mpi
def test_mpi_program_counts_wrong_elements():
    # The program's own helpers, without MPI_Init's side: its pattern and its count of differing elements.
    body = PROGRAM.replace("sys.exit(main(sys.argv))", "")
    check = body + (
        "\nwant = pattern(3.0, 2.0, 200)\ngot = pattern(3.0, 2.0, 200)\nassert wrong(got, want) == 0\n"
        "got[5] = -1.0\ngot[199] = 0.0\nassert wrong(got, want) == 2, wrong(got, want)\n"
        "assert want[64] == 3.0 and want[65] == 5.0\nprint('ok')\n")
    proc = subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.strip() == "ok", proc.stderr
