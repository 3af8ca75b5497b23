"""The report writer's hooks for the distributed checks: extra Markdown sections, the check's detail in JUnit."""

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
