# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readers of all-reduce benchmark output: the nccl-tests table and NCCL's transport lines.

``all_reduce_perf`` (NVIDIA nccl-tests) prints, on rank 0, a header (``# nThread ... minBytes ...``),
one ``#  Rank N Group G Pid P on HOST device D [BUS] NAME`` line per rank, a two-line column header,
one row per message size and a footer (``# Out of bounds values``, ``# Avg bus bandwidth``, and from
version 2.14 ``# Collective test concluded``). The MPI all-reduce program of this collection
(``allreduce/program.py``) prints the same shape, so both are read here.

Lines may carry a launcher prefix (``0: `` from ``srun -l``, ``[1,0]<stdout>:`` from
``mpirun --tag-output``); NCCL's own lines look like ``host:pid:tid [dev] NCCL INFO ...``.
"""

from __future__ import annotations

import re

_PREFIX_RE = re.compile(r"^(?:\d+:\s?|\[\d+,\d+\]<std(?:out|err)>:\s?)")
_ROW_RE = re.compile(r"^\s*(\d+)\s+(\d+)\s+([A-Za-z0-9_]+)\s+([A-Za-z0-9_]+)\s+(-?\d+)\s+(\S.*)$")
_OLD_ROW_RE = re.compile(r"^\s*(\d+)\s+(\d+)\s+([A-Za-z0-9_]+)\s+([A-Za-z0-9_]+)\s+(\S.*)$")
_RANK_RE = re.compile(r"^#\s+Rank\s+(\d+)\s+Group\s+(\d+)\s+Pid\s+(\d+)\s+on\s+(\S+)\s+device\s+(\d+)\s+"
                      r"\[([^\]]*)\]\s*(.*)$")
_HEADER_RE = re.compile(r"^#\s*(?:nThread|nranks)\b.*\bminBytes\s+(\d+)\s+maxBytes\s+(\d+)")
_WRONG_COLUMNS = ("#wrong", "error")
# NCCL's network choice (NCCL_DEBUG=INFO), in the order they help to explain a run.
_PROVIDER_RE = re.compile(r"NET/OFI Selected [Pp]rovider is ([A-Za-z0-9_;-]+)(?:, fabric is (\S+))?"
                          r"(?: \(found (\d+) nics\))?")
_NETWORK_RE = re.compile(r"NCCL INFO Using network (.+?)\s*$")
_SOCKET_RE = re.compile(r"NCCL INFO NET/Socket : Using (.+?)\s*$")
_OFI_INIT_RE = re.compile(r"NET/OFI Initializing (aws-ofi-nccl \S+)")
_PLUGIN_MISSING_RE = re.compile(r"NET/Plugin ?:.*(?:[Cc]ould not find|dlerror|No plugin found|load returned|internal "
                                r"(?:network plugin|implementation))")
_NCCL_VERSION_RE = re.compile(r"NCCL INFO NCCL version (\S+)")
_ERROR_RE = re.compile(r"(NCCL WARN|Test NCCL failure|Test failure|NCCL error|Traceback|Error|error:|\*\*\* .*CANCELLED|"
                       r"DUE TO TIME LIMIT|ModuleNotFoundError|(?:srun|salloc): (?:error|unrecognized)|"
                       r"unrecognized option|mpirun (?:noticed|was unable)|command not found)")
_TIME_LIMIT_RE = re.compile(r"CANCELLED AT \S+ DUE TO TIME LIMIT|DUE TO TIME LIMIT|timed out after")


def strip_prefix(line):
    """A line without the ``0: `` (srun -l) or ``[1,0]<stdout>:`` (mpirun --tag-output) prefix."""
    return _PREFIX_RE.sub("", line.rstrip("\r\n\x00"), count=1)


def _number(text):
    """A table cell as a float; None for ``N/A`` and anything else that is not a number."""
    try:
        return float(text)
    except ValueError:
        return None


def _columns(header_line):
    """Column names after ``root`` (or ``redop`` in old versions), from ``# size count type redop root time ...``."""
    names = header_line.lstrip("#").split()
    for anchor in ("root", "redop"):
        if anchor in names:
            return names[names.index(anchor) + 1:]
    return []


def _halves(columns):
    """Split the column names into the out-of-place and the in-place half (each starts with time)."""
    starts = [i for i, name in enumerate(columns) if name in ("time", "cputime")]
    if len(starts) >= 2:
        return columns[starts[0]:starts[1]], columns[starts[1]:]
    return ["time", "algbw", "busbw", "#wrong"], ["time", "algbw", "busbw", "#wrong"]


def _side(names, values):
    """{time, algbw, busbw, wrong} of one half of a row; wrong is None when not reported (N/A)."""
    cells = dict(zip(names, values))
    wrong = None
    for column in _WRONG_COLUMNS:
        if column in cells:
            number = _number(cells[column])
            wrong = None if number is None else (int(number) if column == "#wrong" else int(number != 0))
    return {"time_us": _number(cells.get("time", cells.get("cputime", ""))), "algbw": _number(cells.get("algbw", "")),
            "busbw": _number(cells.get("busbw", "")), "wrong": wrong}


def parse_row(line, out_names, in_names):
    """One table row -> {size, count, type, redop, root, out_of_place, in_place}; None when it is not a row."""
    match = _ROW_RE.match(line)
    root = None
    if match:
        root, rest = int(match.group(5)), match.group(6).split()
    else:
        match = _OLD_ROW_RE.match(line)
        if not match:
            return None
        rest = match.group(5).split()
    if len(rest) < len(out_names) + 1:
        # A row cut off by a timeout or a crash: only what was printed.
        return None
    row = {"size": int(match.group(1)), "count": int(match.group(2)), "type": match.group(3),
           "redop": match.group(4), "root": root,
           "out_of_place": _side(out_names, rest[:len(out_names)]),
           "in_place": _side(in_names, rest[len(out_names):len(out_names) + len(in_names)])}
    if row["out_of_place"]["busbw"] is None:
        return None
    return row


def _footer_value(line, label):
    if not line.startswith("#") or label not in line:
        return None
    value = line.split(":", 1)[1].split() if ":" in line else []
    return _number(value[0]) if value else None


def parse_allreduce(text):
    """Everything the table output says; see the module docstring for the format.

    Returns {ranks: [{rank, host, device, device_name}], hosts: [..], min_bytes, max_bytes, rows: [...],
    out_of_bounds, avg_busbw, concluded (the footer was printed), nccl: see nccl_transport,
    errors: first lines that look like errors, library}.
    """
    out_names, in_names = _halves([])
    result = {"ranks": [], "hosts": [], "min_bytes": None, "max_bytes": None, "rows": [], "out_of_bounds": None,
              "avg_busbw": None, "concluded": False, "errors": [], "library": ""}
    for raw in (text or "").splitlines():
        line = strip_prefix(raw)
        stripped = line.strip()
        rank = _RANK_RE.match(stripped)
        header = _HEADER_RE.match(stripped)
        if rank:
            result["ranks"].append({"rank": int(rank.group(1)), "host": rank.group(4), "device": int(rank.group(5)),
                                    "device_name": rank.group(7).strip()})
        elif header:
            result["min_bytes"], result["max_bytes"] = int(header.group(1)), int(header.group(2))
        elif stripped.startswith("#") and " size " in " %s " % stripped.lstrip("#") and "busbw" in stripped:
            out_names, in_names = _halves(_columns(stripped))
        elif stripped.startswith("# MPI library:"):
            result["library"] = stripped.split(":", 1)[1].strip()
        elif stripped.startswith("#"):
            _read_footer(result, stripped)
        else:
            row = parse_row(stripped, out_names, in_names)
            if row is not None:
                result["rows"].append(row)
            elif _ERROR_RE.search(stripped) and len(result["errors"]) < 8:
                result["errors"].append(stripped[:300])
    hosts = []
    for item in result["ranks"]:
        if item["host"] not in hosts:
            hosts.append(item["host"])
    result["hosts"] = hosts
    result["nccl"] = nccl_transport(text)
    return result


def _read_footer(result, line):
    bounds = _footer_value(line, "Out of bounds values")
    if bounds is not None:
        result["out_of_bounds"] = int(bounds)
    average = _footer_value(line, "Avg bus bandwidth")
    if average is not None:
        result["avg_busbw"] = average
        result["concluded"] = True
    if line.startswith("# Collective test concluded"):
        result["concluded"] = True


def nccl_transport(text):
    """Which network NCCL used, from its NCCL_DEBUG=INFO lines.

    Returns {debug (any NCCL INFO line seen), nccl_version, ofi_plugin (aws-ofi-nccl version initialised),
    providers [names], fabric, nics, networks ['AWS Libfabric', 'Socket', ...], socket (NET/Socket chosen),
    plugin_missing, transport ('efa', 'ofi:<provider>', 'socket', 'unknown'), evidence [lines]}.
    """
    info = {"debug": False, "nccl_version": "", "ofi_plugin": "", "providers": [], "fabric": "", "nics": None,
            "networks": [], "socket": False, "plugin_missing": False, "evidence": []}
    for raw in (text or "").splitlines():
        line = strip_prefix(raw).strip()
        if "NCCL INFO" in line or "NCCL WARN" in line:
            info["debug"] = True
        found = _scan_nccl_line(info, line)
        if found and len(info["evidence"]) < 6 and line not in info["evidence"]:
            info["evidence"].append(line[:300])
    if "efa" in info["providers"] or any("efa" in p.split(";") for p in info["providers"]):
        transport = "efa"
    elif info["providers"]:
        transport = "ofi:" + info["providers"][0]
    elif info["socket"] or "Socket" in info["networks"]:
        transport = "socket"
    elif any("IB" == n or n.startswith("IB") for n in info["networks"]):
        transport = "ib"
    else:
        transport = "unknown"
    info["transport"] = transport
    return info


def _scan_nccl_line(info, line):
    """Record what one line says about the network; True when it is evidence worth showing."""
    version = _NCCL_VERSION_RE.search(line)
    if version and not info["nccl_version"]:
        info["nccl_version"] = version.group(1)
    ofi = _OFI_INIT_RE.search(line)
    if ofi:
        info["ofi_plugin"] = ofi.group(1)
        return True
    provider = _PROVIDER_RE.search(line)
    if provider:
        if provider.group(1) not in info["providers"]:
            info["providers"].append(provider.group(1))
        info["fabric"] = provider.group(2) or info["fabric"]
        if provider.group(3):
            info["nics"] = int(provider.group(3))
        return True
    network = _NETWORK_RE.search(line)
    if network:
        if network.group(1) not in info["networks"]:
            info["networks"].append(network.group(1))
        return True
    if _SOCKET_RE.search(line):
        info["socket"] = True
        return True
    if _PLUGIN_MISSING_RE.search(line):
        info["plugin_missing"] = True
        return True
    return False


def timed_out(text):
    """Whether Slurm or the launcher says the run hit its time limit."""
    return bool(_TIME_LIMIT_RE.search(text or ""))
