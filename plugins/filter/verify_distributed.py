# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the verify role's distributed checks (all-reduce across nodes), run on the controller.

- ``verify_usable_nodes``        nodes whose ``node_state`` check passed
- ``verify_network_bandwidth``   EC2 DescribeInstanceTypes answer (+ built-in table) -> expected bandwidth
- ``verify_distributed_groups``  expected nodes -> one all-reduce run per compute resource (the module's runs)
- ``verify_distributed_markdown`` the runs -> the report's "Distributed all-reduce" section
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

from ansible_collections.hpc.pcluster.plugins.module_utils.allreduce.judge import human_size
from ansible_collections.hpc.pcluster.plugins.module_utils.instance_types import instance_network

_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def verify_usable_nodes(checks):
    """Names of the nodes whose node_state check passed (the test job may use them)."""
    return [c["node"] for c in checks or [] if c.get("check") == "node_state" and c.get("status") == "passed"]


def _positive(value):
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def verify_network_bandwidth(ec2_instance_types, wanted, overrides=None):
    bad = ["%s: %r" % (k, v) for k, v in (overrides or {}).items() if not _positive(v)]
    if bad:
        raise AnsibleFilterError("verify_distributed_network_gbps: each value must be a bandwidth in Gbps above 0, "
                                 "e.g. {p5.48xlarge: 3200}; got %s" % ", ".join(bad))
    return instance_network(ec2_instance_types, wanted, overrides)


def _settings_problems(nccl_min_fraction, mpi_min_fraction, expected):
    problems = []
    for name, value in (("verify_distributed_nccl_min_fraction", nccl_min_fraction),
                        ("verify_distributed_mpi_min_fraction", mpi_min_fraction)):
        if not _positive(value) or float(value) > 1:
            problems.append("%s is %r: give a fraction of the expected bandwidth above 0 and at most 1, e.g. 0.5"
                            % (name, value))
    if not isinstance(expected or {}, dict):
        return problems + ["verify_distributed_expected is %r: give {mpi: {busbw: <GB/s>, source: <text>}}" % (expected,)]
    for backend, figure in (expected or {}).items():
        if backend not in ("nccl", "mpi"):
            problems.append("verify_distributed_expected has key %r: the keys are the backends nccl and mpi, e.g. "
                            "{mpi: {busbw: 1.5, source: measured with osu_allreduce}}" % (backend,))
        elif not isinstance(figure, dict) or not _positive(figure.get("busbw")):
            problems.append("verify_distributed_expected.%s is %r: give {busbw: <GB/s above 0>, source: <where the "
                            "figure comes from>}" % (backend, figure))
    return problems


def verify_hostlist(names):
    """``[a-1, a-2, a-4, b]`` -> ``a-[1-2,4],b`` (the short form Slurm prints)."""
    groups = []
    for name in names or []:
        match = _NUMBERED.match(name)
        prefix, number = (match.group(1), match.group(2)) if match else (name, None)
        if groups and groups[-1][0] == prefix and number is not None and groups[-1][1]:
            groups[-1][1].append(number)
        else:
            groups.append((prefix, [number] if number is not None else []))
    parts = []
    for prefix, numbers in groups:
        if not numbers:
            parts.append(prefix)
        elif len(numbers) == 1:
            parts.append(prefix + numbers[0])
        else:
            parts.append("%s[%s]" % (prefix, _ranges(numbers)))
    return ",".join(parts)


def _ranges(numbers):
    values = sorted(set(int(n) for n in numbers))
    spans, start, last = [], values[0], values[0]
    for value in values[1:] + [None]:
        if value is not None and value == last + 1:
            last = value
            continue
        spans.append(str(start) if start == last else "%d-%d" % (start, last))
        if value is not None:
            start = last = value
    return ",".join(spans)


def _expected(instance_type, network, expected):
    """(busbw GB/s, source) for a group: the user's figure ({busbw, source}), else the instance type's network."""
    if expected and expected.get("busbw"):
        return float(expected["busbw"]), str(expected.get("source") or "verify_distributed_expected")
    figures = [(network or {}).get(t) or {} for t in (instance_type or "").split(",") if t]
    known = [f for f in figures if f.get("busbw_gbs")]
    if not figures or len(known) < len(figures):
        missing = [t for t, f in zip(instance_type.split(","), figures) if not f.get("busbw_gbs")]
        return None, "no network bandwidth known for %s" % (", ".join(missing) or "this group")
    slowest = min(known, key=lambda f: f["busbw_gbs"])
    return slowest["busbw_gbs"], "%s network %g Gbps = %g GB/s; %s" % (
        instance_type, slowest["gbps"], slowest["busbw_gbs"], slowest["source"])


def verify_distributed_groups(nodes, usable, network=None, enabled=None, mpi_on_gpu_nodes=False,
                              nccl_min_fraction=0.5, mpi_min_fraction=0.25, expected=None):
    """One all-reduce run per (partition, instance type) of static nodes, in the slurm_allreduce module's shape.

    enabled: None runs when the cluster has 2 or more static compute nodes; True/False force it.
    expected: {backend: {busbw (GB/s), source}} for the backends whose figure is not the network's.
    GPU nodes get an NCCL run (and an MPI run with mpi_on_gpu_nodes), the others an MPI run. A group of one
    node is listed with a skip_reason (nothing to reduce across).
    """
    problems = _settings_problems(nccl_min_fraction, mpi_min_fraction, expected)
    if problems:
        raise AnsibleFilterError("verify: %d problem(s) with the distributed settings:\n- %s"
                                 % (len(problems), "\n- ".join(problems)))
    static = [n for n in nodes or [] if n.get("static", True)]
    if enabled is False or (enabled is None and len(static) < 2):
        return []
    groups = {}
    for node in static:
        groups.setdefault((node["partition"], node.get("instance_type", "")), []).append(node)
    runs = []
    for (partition, itype), members in groups.items():
        names = [n["name"] for n in members]
        gpus = min(int(n.get("gpus", 0)) for n in members)
        backends = (["nccl"] + (["mpi"] if mpi_on_gpu_nodes else [])) if gpus != 0 else ["mpi"]
        for backend in backends:
            busbw, source = _expected(itype, network, (expected or {}).get(backend))
            spec = {"label": verify_hostlist(names), "backend": backend, "partition": partition,
                    "nodes": [n for n in names if n in (usable or [])],
                    "excluded": [{"name": n, "reason": "node_state did not pass"} for n in names
                                 if n not in (usable or [])],
                    "instance_type": itype, "gpus_per_node": max(gpus, 0),
                    "efa": any(n.get("efa") for n in members), "expected_busbw": busbw, "expected_source": source,
                    "min_fraction": float(nccl_min_fraction if backend == "nccl" else mpi_min_fraction),
                    "skip_reason": ""}
            if len(names) < 2:
                spec["skip_reason"] = "one static node in %s (%s): nothing to reduce across" % (partition, itype)
            elif backend == "nccl" and gpus < 0:
                spec["skip_reason"] = "GPU count of %s unknown: set verify_gpus_per_instance_type" % itype
            runs.append(spec)
    return runs


def _cell(value):
    if value is None:
        return "n/a"
    return "%.4g" % value if isinstance(value, float) else str(value)


def verify_distributed_markdown(runs, example=""):
    """The report's section on the all-reduce runs: nodes, expected figure and source, bandwidth per size."""
    if not runs:
        return ""
    lines = ["## Distributed all-reduce", ""]
    if example:
        lines += ["Multi-node training example written for this cluster: [%s](%s)" % (example, example), ""]
    for run in runs:
        title = {"nccl": "NCCL (nccl-tests all_reduce_perf)", "mpi": "MPI (mpi4py)"}.get(run["backend"], run["backend"])
        lines += ["### %s on %s" % (title, run["label"]), ""]
        lines.append("- partition %s, %s, nodes: %s" % (run.get("partition", ""), run.get("instance_type") or "?",
                                                        ", ".join(run.get("nodes") or []) or "none usable"))
        if run.get("excluded"):
            lines.append("- left out: %s" % ", ".join("%s (%s)" % (e.get("name"), e.get("reason")) for e in run["excluded"]))
        exp = run.get("expected") or {}
        lines.append("- expected: %s GB/s bus bandwidth x %s = %s GB/s at the largest message; figure from: %s" % (
            _cell(exp.get("busbw")), _cell(exp.get("fraction")), _cell(exp.get("threshold")), exp.get("source") or "none"))
        if run.get("not_run"):
            lines += ["- not run: %s" % run["not_run"], ""]
            continue
        lines.append("- measured: %s GB/s at %s (peak %s GB/s, average %s GB/s); %d ranks on %s; rc %s in %s s" % (
            _cell(run.get("busbw_at_largest")), human_size(run["largest_size"]) if run.get("largest_size") else "n/a",
            _cell(run.get("peak_busbw")), _cell(run.get("avg_busbw")), run.get("ranks", 0),
            ", ".join(run.get("hosts_seen") or []) or "no node", run.get("rc"), run.get("elapsed")))
        if run.get("transport", {}).get("transport"):
            lines.append("- NCCL network: %s" % run["transport"]["transport"])
        if run.get("library"):
            lines.append("- MPI library: %s" % run["library"])
        lines += ["", "| size | busbw out-of-place (GB/s) | busbw in-place (GB/s) | #wrong (oop/ip) |",
                  "|---:|---:|---:|---:|"]
        for row in run.get("sizes") or []:
            cells = (human_size(row["size"]), _cell(row["busbw_oop"]), _cell(row["busbw_ip"]), _cell(row["wrong_oop"]),
                     _cell(row["wrong_ip"]))
            lines.append("| %s | %s | %s | %s/%s |" % cells)
        lines.append("")
    return "\n".join(lines) + "\n"


class FilterModule:
    def filters(self):
        return {
            "verify_usable_nodes": verify_usable_nodes,
            "verify_network_bandwidth": verify_network_bandwidth,
            "verify_distributed_groups": verify_distributed_groups,
            "verify_distributed_markdown": verify_distributed_markdown,
        }
