# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsers of what Slurm and a node print (scontrol -o, scontrol show config, /proc/mounts, ...): pure functions."""

from __future__ import annotations

import re
from collections import namedtuple

Mount = namedtuple("Mount", "fstype options")

_KEY_RE = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/.\-]*)=")
# sinfo's one-character state suffixes, as flags of scontrol's long form.
_STATE_SUFFIXES = {"*": "NOT_RESPONDING", "~": "POWERED_DOWN", "#": "POWERING_UP", "%": "POWERING_DOWN",
                   "!": "POWER_DOWN", "$": "MAINTENANCE", "@": "REBOOT_REQUESTED", "^": "REBOOT_ISSUED",
                   "-": "PLANNED"}
# sinfo's short base states, and the drain states that are an allocation state plus the DRAIN flag.
_STATE_ALIASES = {"ALLOC": "ALLOCATED", "MIX": "MIXED", "COMP": "COMPLETING", "DRAIN": "IDLE", "DRNG": "ALLOCATED",
                  "DRAINED": "IDLE", "DRAINING": "ALLOCATED"}
_UINT32 = 2 ** 32


def parse_scontrol_record(line):
    """Parse one ``scontrol -o show ...`` line into a dict.

    Values may hold spaces (``Reason=node lost [root@...]``, ``OS=Linux 6.1 #1 SMP``): a value runs
    until the next ``Key=`` token.
    """
    record = {}
    matches = list(_KEY_RE.finditer(line))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(line)
        record[match.group(1)] = line[match.end():end].strip()
    return record


def parse_scontrol_records(text, key):
    """``scontrol -o show node|partition`` output -> {record[key]: record}."""
    records = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line.startswith(key + "="):
            continue
        record = parse_scontrol_record(line)
        records[record.get(key, "")] = record
    return records


def parse_node_state(state):
    """Split a Slurm node state such as ``IDLE*+CLOUD+POWERED_DOWN`` into (base, flags).

    A trailing ``*`` on the base state means the node is not responding; it becomes the
    ``NOT_RESPONDING`` flag. sinfo's short suffixes (``~``, ``#``, ``%``, ``!``) become flags too.
    """
    parts = [p for p in (state or "").strip().split("+") if p]
    if not parts:
        return "UNKNOWN", set()
    base = parts[0].upper()
    flags = set(p.upper() for p in parts[1:])
    while base and base[-1] in _STATE_SUFFIXES:
        flags.add(_STATE_SUFFIXES[base[-1]])
        base = base[:-1]
    if base in ("DRAIN", "DRAINED", "DRAINING", "DRNG"):
        flags.add("DRAIN")
    return _STATE_ALIASES.get(base, base), flags


def parse_gres_gpus(gres):
    """GPU count in a Slurm Gres string: ``gpu:a10g:1(S:0),gpu:2`` -> 3; ``(null)`` -> 0."""
    total = 0
    for item in re.split(r",(?![^()]*\))", gres or ""):
        item = re.sub(r"\(.*\)$", "", item.strip())
        fields = item.split(":")
        if not fields or fields[0] != "gpu":
            continue
        count = fields[-1] if len(fields) > 1 else "1"
        if count.isdigit():
            total += int(count)
        elif len(fields) == 2:
            total += 1
    return total


def parse_os_release(text):
    """``/etc/os-release`` -> dict of its keys with quotes removed."""
    data = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        data[key.strip()] = value.strip().strip("'\"")
    return data


def parse_mounts(text):
    """``/proc/mounts`` -> {mount point: Mount(fstype, options)} (octal escapes such as ``\\040`` decoded)."""
    mounts = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        mounts[point] = Mount(fields[2], fields[3].split(",") if len(fields) > 3 else [])
    return mounts


def parse_scontrol_ping(text):
    """``scontrol ping`` -> list of (role, host, 'UP'|'DOWN')."""
    return re.findall(r"Slurmctld\((\w+)\) at (\S+) is (UP|DOWN)", text or "")


def parse_scontrol_config(text):
    """``scontrol show config`` (``Key = value`` lines) -> dict."""
    config = {}
    for line in (text or "").splitlines():
        match = re.match(r"^([A-Za-z][A-Za-z0-9_]*)\s+= ?(.*)$", line)
        if match:
            config[match.group(1)] = match.group(2).strip()
    return config


def setting_value(name, value):
    """The comparable form of a Slurm setting, as slurm.conf states it or scontrol shows it.

    ``1000 sec`` and ``1000`` are the same number (scontrol shows the unit slurm.conf implies: sec, min,
    MB); plugin names and keywords compare without case, paths with it.
    ``SuspendTime`` is ``off`` when power saving is off: NONE or INFINITE, or a negative time (which
    ParallelCluster writes for ``ScaledownIdletime: -1`` and Slurm 22.05 shows as an unsigned 32-bit number).
    """
    text = str(value if value is not None else "").strip()
    text = re.sub(r"\s+(sec|min|MB)$", "", text)
    number = int(text) if re.match(r"^-?[0-9]+$", text) else None
    if name.lower() == "suspendtime":
        if text.upper() in ("NONE", "INFINITE") or (number is not None and (number < 0 or number >= _UINT32 // 2)):
            return "off"
    if number is not None:
        return str(number)
    return text if text.startswith("/") else text.lower()


def parse_version(text, pattern):
    match = re.search(pattern, text or "")
    return match.group(1) if match else ""


def docker_version(text):
    """``Docker version 24.0.7, build afdd53b`` -> ``24.0.7``."""
    return parse_version(text, r"[Vv]ersion\s+v?([0-9][0-9A-Za-z.\-+~]*)")


def enroot_version(text):
    """``enroot version`` output -> its version."""
    return parse_version(text, r"([0-9]+\.[0-9]+(?:\.[0-9]+)?[0-9A-Za-z.\-+~]*)")


def count_visible_devices(value):
    """Devices in ``CUDA_VISIBLE_DEVICES`` (``0,1`` -> 2; empty or ``NoDevFiles`` -> 0)."""
    value = (value or "").strip()
    if not value or value.lower() in ("nodevfiles", "none", "void"):
        return 0
    return len([v for v in value.split(",") if v.strip()])


def plugstack_includes(text):
    """The path patterns of the ``include`` lines of a plugstack.conf."""
    patterns = []
    for line in (text or "").splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) == 2 and fields[0] == "include":
            patterns.append(fields[1])
    return patterns


def plugstack_references(text, plugin_path):
    """Whether plugstack text has a non-comment ``required|optional <plugin_path>`` line."""
    for line in (text or "").splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] in ("required", "optional") and fields[1] == plugin_path:
            return True
    return False
