# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Report formats of the verify role: summary, Markdown table, JUnit XML, failure message.

Used by the ``hpc.pcluster.verify*`` filters and the ``hpc.pcluster.slurm_verify_report`` module.
A check is a dict {check, node, expected, seen, status, hint}; status is passed, failed or not_available.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

STATUSES = ("passed", "failed", "not_available")


# ---------------------------------------------------------------------------


def verify_summary(checks):
    counts = dict((s, 0) for s in STATUSES)
    for check in checks or []:
        counts[check.get("status", "failed")] = counts.get(check.get("status", "failed"), 0) + 1
    counts["total"] = len(checks or [])
    return counts


def _cell(value):
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ").strip()


def verify_markdown(checks, title="Cluster verification", meta=None, sections=None):
    """The report as Markdown; sections (Markdown text each) follow the table of checks."""
    summary = verify_summary(checks)
    icon = {"passed": "passed", "failed": "**FAILED**", "not_available": "not available"}
    lines = ["# %s" % title, ""]
    for key, value in (meta or {}).items():
        lines.append("- %s: %s" % (key, _cell(value)))
    lines += ["- result: %d passed, %d failed, %d not available (of %d)" % (
        summary["passed"], summary["failed"], summary["not_available"], summary["total"]), "",
        "| Status | Check | Node | Expected | Seen | Hint |", "|---|---|---|---|---|---|"]
    order = {"failed": 0, "not_available": 1, "passed": 2}
    for check in sorted(checks or [], key=lambda c: order.get(c.get("status"), 0)):
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            icon.get(check.get("status"), check.get("status")), _cell(check.get("check")), _cell(check.get("node")),
            _cell(check.get("expected")), _cell(check.get("seen")), _cell(check.get("hint"))))
    for section in sections or []:
        if section and section.strip():
            lines += ["", section.rstrip("\n")]
    return "\n".join(lines) + "\n"


def verify_junit(checks, suite="hpc.pcluster.verify", timestamp=""):
    summary = verify_summary(checks)
    root = ET.Element("testsuites", name=suite, tests=str(summary["total"]), failures=str(summary["failed"]),
                      skipped=str(summary["not_available"]), errors="0")
    attrs = dict(name=suite, tests=str(summary["total"]), failures=str(summary["failed"]),
                 skipped=str(summary["not_available"]), errors="0")
    if timestamp:
        attrs["timestamp"] = timestamp
    testsuite = ET.SubElement(root, "testsuite", **attrs)
    for check in checks or []:
        case = ET.SubElement(testsuite, "testcase", classname="verify.%s" % check.get("check", ""),
                             name="%s[%s]" % (check.get("check", ""), check.get("node", "")))
        detail = "expected: %s\nseen: %s" % (check.get("expected", ""), check.get("seen", ""))
        if check.get("status") == "failed":
            failure = ET.SubElement(case, "failure", message="%s on %s: expected %s, seen %s" % (
                check.get("check"), check.get("node"), check.get("expected"), check.get("seen")), type="failed")
            failure.text = detail + ("\nhint: %s" % check["hint"] if check.get("hint") else "")
        elif check.get("status") == "not_available":
            ET.SubElement(case, "skipped", message="not available: %s" % check.get("hint", ""))
        out = ET.SubElement(case, "system-out")
        out.text = detail + ("\n\n%s" % check["detail"] if check.get("detail") else "")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def verify_failure_message(checks):
    failed = [c for c in checks or [] if c.get("status") == "failed"]
    if not failed:
        return ""
    lines = ["%d check(s) failed:" % len(failed)]
    for check in failed:
        line = "- %s on %s: expected %s, seen %s" % (
            check.get("check"), check.get("node"), check.get("expected"), check.get("seen"))
        if check.get("hint"):
            line += " -> %s" % check["hint"]
        lines.append(line)
    return "\n".join(lines)


def verify_summary_line(checks):
    summary = verify_summary(checks)
    return "%d passed, %d failed, %d not available (of %d checks)" % (
        summary["passed"], summary["failed"], summary["not_available"], summary["total"])


def verify_check_line(check):
    line = "%s %s on %s: expected %s, seen %s" % (
        check.get("status", "?").upper(), check.get("check"), check.get("node"), check.get("expected"), check.get("seen"))
    if check.get("hint"):
        line += " (%s)" % check["hint"]
    return line


def verify_not_available_lines(checks):
    """One line per check (and subject, e.g. a storage check's mount) that was not available: its nodes and why."""
    grouped = {}
    for check in checks or []:
        if check.get("status") == "not_available":
            name = " ".join(str(part) for part in (check.get("check"), check.get("subject")) if part)
            grouped.setdefault((name, check.get("hint", "")), []).append(str(check.get("node")))
    return ["not available: %s on %s (%s)" % (name, ", ".join(nodes), reason)
            for (name, reason), nodes in grouped.items()]
