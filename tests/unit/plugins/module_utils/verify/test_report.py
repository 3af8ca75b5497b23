"""The report's formats (module_utils/verify/report.py, shared by the verify role's filters and the slurm_verify_report
module): the summary, the failure message, Markdown and JUnit, with the distributed checks' sections and details."""

import xml.etree.ElementTree as ET

from ansible_collections.hpc.pcluster.plugins.module_utils.verify import report as vr

CHECKS = [{"check": "mpi_allreduce_bandwidth", "node": "c-[1-2]", "expected": ">= 0.05 GB/s", "seen": "0.2 GB/s",
           "status": "passed", "hint": "", "detail": "      size  busbw oop GB/s\n    16 MiB  0.2"},
          {"check": "squeue", "node": "head", "expected": "answers", "seen": "0 jobs", "status": "passed", "hint": ""}]


def test_sections_follow_the_table_and_empty_ones_are_left_out():
    text = vr.verify_markdown(CHECKS, "T", {"cluster": "c"}, ["## Distributed all-reduce\n\nrows\n", "", "  \n"])
    table_end = text.index("| passed | squeue |")
    assert text.index("## Distributed all-reduce") > table_end
    assert text.endswith("rows\n") and text.count("## ") == 1
    assert vr.verify_markdown(CHECKS, "T") == vr.verify_markdown(CHECKS, "T", None, [])


def test_junit_system_out_carries_the_detail():
    root = ET.fromstring(vr.verify_junit(CHECKS, "suite").split("\n", 1)[1])
    outs = [case.find("system-out").text for case in root.iter("testcase")]
    assert "16 MiB  0.2" in outs[0] and outs[0].startswith("expected: >= 0.05 GB/s\nseen: 0.2 GB/s")
    assert outs[1] == "expected: answers\nseen: 0 jobs"


STATUS_CHECKS = [
    {"check": "node_state", "node": "q-st-a-1", "expected": "idle", "seen": "DOWN Reason=test", "status": "failed",
     "hint": "resume | it"},
    {"check": "gpu_count", "node": "q-st-a-1", "expected": "1", "seen": "1", "status": "passed", "hint": ""},
    {"check": "efa", "node": "q-st-a-1", "expected": "EFA", "seen": "absent", "status": "not_available",
     "hint": "not available in the sandbox"},
]


def test_summary_failure_message_and_not_available_lines():
    message = vr.verify_failure_message(STATUS_CHECKS)
    assert message.startswith("1 check(s) failed:")
    assert "node_state on q-st-a-1: expected idle, seen DOWN Reason=test" in message
    assert vr.verify_failure_message(STATUS_CHECKS[1:]) == ""
    checks = STATUS_CHECKS + [dict(STATUS_CHECKS[2], node="q-st-a-2")]
    assert vr.verify_not_available_lines(checks) == [
        "not available: efa on q-st-a-1, q-st-a-2 (not available in the sandbox)"]
    assert vr.verify_summary_line(checks) == "1 passed, 1 failed, 2 not available (of 4 checks)"


def test_summary_counts_each_status():
    assert vr.verify_summary(STATUS_CHECKS) == {"passed": 1, "failed": 1, "not_available": 1, "total": 3}


def test_junit_is_valid_xml_with_failures_and_skips():
    root = ET.fromstring(vr.verify_junit(STATUS_CHECKS, "suite", "2026-01-01T00:00:00Z").split("\n", 1)[1])
    suite = root.find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    cases = suite.findall("testcase")
    assert cases[0].find("failure") is not None
    assert cases[1].find("failure") is None and cases[1].find("skipped") is None
    assert "not available in the sandbox" in cases[2].find("skipped").get("message")


def test_markdown_escapes_cells_and_lists_failures_first():
    text = vr.verify_markdown(list(reversed(STATUS_CHECKS)), "T", {"cluster": "c"})
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows[0].startswith("| **FAILED** | node_state | q-st-a-1 |")
    assert "resume \\| it" in rows[0]
    assert "- result: 1 passed, 1 failed, 1 not available (of 3)" in text
