# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Judges of one all-reduce run across nodes, and its summary for the verify report.

A run is described by a spec (what the role expects: backend ``nccl`` or ``mpi``, the nodes, GPUs
per node, whether EFA is enabled, the expected bus bandwidth and where that figure comes from) and
by what the run printed (``allreduce.output.parse_allreduce``). ``judge_run`` turns both into the
checks of the ``distributed`` group, each ``{check, node, expected, seen, ok, hint, detail}``:

- ``<backend>_allreduce_run``        the run finished on every node of the group;
- ``<backend>_allreduce_correct``    ``#wrong`` is 0 for every size, out of place and in place;
- ``<backend>_allreduce_bandwidth``  bus bandwidth at the largest message >= fraction x expected;
- ``nccl_transport``                 NCCL used EFA (``NET/OFI ... provider is efa``), when EFA is enabled.

``finish_checks`` gives each its status (passed, failed, not_available) the way the verify role's
other checks get theirs.
"""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.module_utils.allreduce.output import parse_allreduce, timed_out
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.check_report import CheckReport
BACKEND_LABEL = {"nccl": "nccl-tests all_reduce_perf", "mpi": "MPI all-reduce (mpi4py)"}


def human_size(size):
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return "%d %s" % (size // factor, unit)
    return "%d B" % size


def _gbs(value):
    return "n/a" if value is None else ("%.3f GB/s" % value if value < 10 else "%.2f GB/s" % value)


def size_rows(parsed):
    """Per message size: the bus bandwidth and #wrong of both halves (what the report shows)."""
    rows = []
    for row in parsed["rows"]:
        oop, inplace = row["out_of_place"], row["in_place"]
        rows.append({"size": row["size"], "count": row["count"], "type": row["type"],
                     "time_us_oop": oop["time_us"], "algbw_oop": oop["algbw"], "busbw_oop": oop["busbw"],
                     "wrong_oop": oop["wrong"], "time_us_ip": inplace["time_us"], "algbw_ip": inplace["algbw"],
                     "busbw_ip": inplace["busbw"], "wrong_ip": inplace["wrong"]})
    return rows


def _best(row):
    values = [v for v in (row["busbw_oop"], row["busbw_ip"]) if v is not None]
    return max(values) if values else None


def table_text(rows):
    """The size/bandwidth table as fixed-width text (JUnit system-out, the check's detail)."""
    lines = ["%10s  %14s  %14s  %8s" % ("size", "busbw oop GB/s", "busbw ip GB/s", "#wrong")]
    for row in rows:
        wrong = "/".join("n/a" if w is None else str(w) for w in (row["wrong_oop"], row["wrong_ip"]))
        lines.append("%10s  %14s  %14s  %8s" % (human_size(row["size"]), row["busbw_oop"], row["busbw_ip"], wrong))
    return "\n".join(lines)


def summarize(spec, parsed, rc, elapsed, stopped):
    """What the report keeps of one run."""
    rows = size_rows(parsed)
    largest = rows[-1] if rows else None
    fraction = float(spec.get("min_fraction") or 0)
    expected = spec.get("expected_busbw")
    bests = [b for b in (_best(r) for r in rows) if b is not None]
    return {
        "backend": spec["backend"], "label": spec["label"], "partition": spec.get("partition", ""),
        "instance_type": spec.get("instance_type", ""), "nodes": list(spec["nodes"]),
        "excluded": list(spec.get("excluded") or []), "gpus_per_node": spec.get("gpus_per_node", 0),
        "efa": bool(spec.get("efa")), "ranks": len(parsed["ranks"]), "hosts_seen": parsed["hosts"], "rc": rc, "elapsed": elapsed,
        "timed_out": stopped, "finished": parsed["concluded"], "sizes": rows,
        "avg_busbw": parsed["avg_busbw"], "largest_size": largest["size"] if largest else None,
        "busbw_at_largest": _best(largest) if largest and parsed["concluded"] else None,
        "peak_busbw": max(bests) if bests else None,
        "expected": {"busbw": expected, "fraction": fraction,
                     "threshold": round(expected * fraction, 4) if expected else None,
                     "source": spec.get("expected_source", "")},
        "transport": parsed["nccl"] if spec["backend"] == "nccl" else {},
        "library": parsed.get("library", ""), "errors": parsed["errors"],
    }


def judge_run(spec, text, rc, elapsed, killed=False):
    """(checks, summary) of one run: spec as described above, text = what it printed, rc its exit code,
    killed = it was stopped at the time limit of the check."""
    parsed = parse_allreduce(text)
    stopped = bool(killed or timed_out(text))
    summary = summarize(spec, parsed, rc, elapsed, stopped)
    checks = [_run_check(spec, parsed, summary)]
    if parsed["rows"]:
        checks.append(_correct_check(spec, summary))
    checks.append(_bandwidth_check(spec, summary))
    if spec["backend"] == "nccl":
        checks.append(transport_check(spec, parsed["nccl"]))
    return checks, summary


def _check(spec, name, expected, seen, ok, hint="", detail=""):
    return {"check": "%s_%s" % (spec["backend"], name) if not name.startswith("nccl_") else name,
            "node": spec["label"], "expected": expected, "seen": seen, "ok": bool(ok), "hint": hint, "detail": detail}


def expected_run(spec):
    nodes = len(spec["nodes"]) + len(spec.get("excluded") or [])
    if spec["backend"] == "nccl":
        gpus = int(spec.get("gpus_per_node") or 0)
        return "%s completes on all %d static nodes (%d ranks, one per GPU)" % (
            BACKEND_LABEL["nccl"], nodes, nodes * gpus)
    return "%s completes on all %d static nodes (one rank per node)" % (BACKEND_LABEL["mpi"], nodes)


def _run_check(spec, parsed, summary):
    missing = [n for n in spec["nodes"] if n not in parsed["hosts"]]
    excluded = spec.get("excluded") or []
    telling = [e for e in parsed["errors"] if not e.startswith("Traceback")]
    first_error = (telling or parsed["errors"] or [""])[0]
    if summary["timed_out"]:
        done = len(parsed["rows"])
        last = human_size(parsed["rows"][-1]["size"]) if done else "none"
        seen = "timed out after %.0f s: %d size(s) done (last %s)" % (summary["elapsed"] or 0, done, last)
        return _check(spec, "allreduce_run", expected_run(spec), seen, False, _timeout_hint(spec))
    if summary["rc"] != 0 or not parsed["concluded"]:
        seen = "rc %s%s" % (summary["rc"], ": " + first_error if first_error else ", no result table")
        return _check(spec, "allreduce_run", expected_run(spec), seen, False,
                      _failure_hint(spec, "\n".join(parsed["errors"])))
    if missing or excluded:
        parts = []
        if excluded:
            parts.append("left out (not usable, see node_state): %s" % ", ".join(e["name"] for e in excluded))
        if missing:
            parts.append("no rank on %s" % ", ".join(missing))
        return _check(spec, "allreduce_run", expected_run(spec), "; ".join(parts), False,
                      "every static node must take part: fix the nodes named, then run verify again")
    rows = parsed["rows"]
    seen = "rc 0 in %.1f s: %d ranks on %d nodes, %d sizes %s to %s" % (
        summary["elapsed"] or 0, len(parsed["ranks"]), len(parsed["hosts"]), len(rows), human_size(rows[0]["size"]),
        human_size(rows[-1]["size"]))
    return _check(spec, "allreduce_run", expected_run(spec), seen, True)


def _timeout_hint(spec):
    if spec["backend"] == "nccl":
        return ("the run did not finish in verify_distributed_timeout: a first pull of the image can take minutes "
                "(import it once to shared storage and set verify_distributed_nccl_image to the .sqsh), or a rank "
                "hangs waiting for a node it cannot reach (security group, EFA)")
    return ("the run did not finish in verify_distributed_timeout: a rank hangs waiting for a node it cannot reach "
            "(security group, the interfaces in verify_distributed_mpirun_args)")


def _failure_hint(spec, error):
    if "mpi4py" in error:
        return ("mpi4py is missing on the compute nodes: install python3-mpi4py (Debian/Ubuntu) or set "
                "verify_distributed_mpi_python to a Python that has it")
    if "container-image" in error or "unrecognized option" in error:
        return "srun does not know --container-image: Pyxis is not loaded (see pyxis_loaded)"
    if "not found" in error.lower() and "mpirun" in error:
        return "mpirun is missing on the head node: install Open MPI or set verify_distributed_mpirun"
    if spec["backend"] == "nccl":
        return "all_reduce_perf failed: see the errors in report.json (groups.distributed.runs) and the NCCL WARN lines"
    return "the MPI all-reduce failed: see the errors in report.json (groups.distributed.runs)"


def _correct_check(spec, summary):
    rows = summary["sizes"]
    bad, unknown = [], 0
    for row in rows:
        for side, label in (("oop", "out-of-place"), ("ip", "in-place")):
            value = row["wrong_" + side]
            if value is None:
                unknown += 1
            elif value:
                bad.append("%s %s: %d" % (human_size(row["size"]), label, value))
    partial = "" if summary["finished"] else " done before the run stopped"
    expected = "#wrong = 0 at every size, out of place and in place"
    if bad:
        return _check(spec, "allreduce_correct", expected, "wrong elements at %s%s" % ("; ".join(bad[:6]), partial),
                      False, "the all-reduce returned wrong sums: a faulty GPU, NIC or driver on one of the nodes; "
                             "run it on pairs of nodes to find which", table_text(rows))
    if unknown:
        return _check(spec, "allreduce_correct", expected, "#wrong not reported for %d half-rows" % unknown, False,
                      "the results were not validated: keep -c 1 in verify_distributed_nccl_command", table_text(rows))
    return _check(spec, "allreduce_correct", expected, "0 wrong elements in the %d sizes%s" % (len(rows), partial),
                  True, "", table_text(rows))


def _bandwidth_check(spec, summary):
    exp = summary["expected"]
    if exp["busbw"]:
        expected = ">= %g x %s = %s bus bandwidth at the largest message (%s)" % (
            exp["fraction"], _gbs(exp["busbw"]), _gbs(exp["threshold"]), exp["source"])
    else:
        expected = "a known figure (%s)" % (exp["source"] or "none")
    measured = summary["busbw_at_largest"]
    if measured is None:
        return _check(spec, "allreduce_bandwidth", expected, "not measured: the run did not finish", False,
                      "see %s_allreduce_run" % spec["backend"], table_text(summary["sizes"]))
    seen = "%s at %s (peak %s; average over %d sizes %s)" % (
        _gbs(measured), human_size(summary["largest_size"]), _gbs(summary["peak_busbw"]), len(summary["sizes"]),
        _gbs(summary["avg_busbw"]))
    if not exp["busbw"]:
        return _check(spec, "allreduce_bandwidth", expected, seen, False,
                      "no expected bandwidth for %s: set verify_distributed_network_gbps {%s: <Gbps>} or "
                      "verify_distributed_expected" % (spec.get("instance_type") or "this group",
                                                       spec.get("instance_type") or "type"),
                      table_text(summary["sizes"]))
    if spec["backend"] == "nccl":
        hint = ("below the expected bus bandwidth: check that NCCL used EFA (nccl_transport), that the nodes share "
                "a placement group, and that no other job ran on them")
    else:
        hint = ("below the expected bus bandwidth: check the MPI transport (verify_distributed_mpirun_args), that the "
                "nodes share a placement group, and that no other job ran on them")
    return _check(spec, "allreduce_bandwidth", expected, seen, measured >= exp["threshold"], hint,
                  table_text(summary["sizes"]))


def transport_check(spec, nccl):
    """NCCL's network: EFA through aws-ofi-nccl when the compute resource has EFA enabled."""
    transport = nccl["transport"]
    names = {"efa": "EFA (NET/OFI, provider efa%s)" % (", %d NICs" % nccl["nics"] if nccl.get("nics") else ""),
             "socket": "TCP sockets (NET/Socket)", "ib": "InfiniBand verbs (NET/IB)",
             "unknown": "unknown: no NCCL INFO line names a network"}
    seen = names.get(transport, "libfabric provider %s (NET/OFI)" % transport[4:])
    if nccl.get("ofi_plugin"):
        seen += "; %s" % nccl["ofi_plugin"]
    if nccl.get("networks"):
        seen += "; NCCL network: %s" % ", ".join(nccl["networks"])
    if not spec.get("efa"):
        return _check(spec, "nccl_transport", "any (EFA is not enabled for this compute resource)", seen, True)
    expected = "NCCL over EFA: NET/OFI Selected provider is efa"
    if transport == "efa":
        return _check(spec, "nccl_transport", expected, seen, True)
    if transport == "unknown":
        hint = "NCCL printed nothing about its network: keep NCCL_DEBUG=INFO in verify_distributed_nccl_env"
    elif transport == "socket":
        hint = ("NCCL fell back to TCP sockets, so training runs far below the EFA bandwidth: %s; use an image with "
                "the aws-ofi-nccl plugin (verify_distributed_nccl_image), keep FI_PROVIDER=efa, and check that "
                "fi_info -p efa works on the nodes (efa check)" % (
                    "the aws-ofi-nccl plugin was not found (NET/Plugin)" if nccl.get("plugin_missing")
                    else "aws-ofi-nccl found no EFA device"))
    else:
        hint = ("aws-ofi-nccl chose libfabric provider %s instead of efa: set FI_PROVIDER=efa and check that the EFA "
                "device is visible in the container (/dev/infiniband)" % transport[4:])
    return _check(spec, "nccl_transport", expected, seen, False, hint, "\n".join(nccl.get("evidence") or []))


def planned_checks(spec):
    """Every check a run of this spec is judged by, not judged yet (to ask which of them are not available)."""
    names = ["allreduce_run", "allreduce_correct", "allreduce_bandwidth"] + (
        ["nccl_transport"] if spec["backend"] == "nccl" else [])
    return [_check(spec, name, "", "", False) for name in names]


def not_run_checks(spec, reason, unavailable):
    """The one check of a group that did not run: ``<backend>_allreduce_run``, not_available with the reason,
    or failed. Correctness, bandwidth and transport are judged only from a run's output, so a group that did
    not run counts once, not once per judge."""
    item = _check(spec, "allreduce_run", expected_run(spec), "not run", False, reason)
    if unavailable:
        item["unavailable"] = reason
    return [item]


def finish_checks(checks, not_available, families):
    """Statuses, as every verify check gets them (verify.check_report.CheckReport): a name in not_available
    (check, check:node, or a family) makes a check not_available."""
    report = CheckReport(not_available, families={})
    for item in checks:
        report.add(item["check"], item["node"], item["expected"], item["seen"], item["ok"], item["hint"],
                   unavailable_reason=item.get("unavailable"), aliases=families)
        if item.get("detail"):
            report.checks[-1]["detail"] = item["detail"]
    return report.checks
