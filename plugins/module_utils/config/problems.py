# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Problem records for cluster configs (path, value, what is wrong, the fix), their paths and their report."""

from __future__ import annotations

import re


def format_path(parts):
    """('SharedStorage', 1, 'FsxLustreSettings') -> 'SharedStorage[1].FsxLustreSettings'."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += "[%d]" % part
        else:
            text += ("." if text else "") + str(part)
    return text


def parse_path(text):
    """The inverse of format_path."""
    parts = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", text or ""):
        parts.append(int(index) if index else name)
    return tuple(parts)


def value_at(data, path):
    """The value at a path (tuple of keys and indexes) of nested mappings and lists; None when absent."""
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
            data = data[key]
        else:
            return None
    return data


# The most characters of a value a problem shows.
MAX_SHOWN_VALUE = 300


def shown_value(value, limit=MAX_SHOWN_VALUE):
    """A value as a problem shows it: strings cut to limit characters (saying how long they were), mappings and
    lists whose text is longer as a cut text; anything else as it is."""
    if isinstance(value, str):
        return value if len(value) <= limit else "%s... (%d characters)" % (value[:limit], len(value))
    if isinstance(value, (dict, list, tuple)):
        text = repr(value)
        return value if len(text) <= limit else "%s... (%d characters)" % (text[:limit], len(text))
    return value


def problem(path, value, message, fix, variable=None):
    """One problem: where, what was there (cut to MAX_SHOWN_VALUE characters), what is wrong, how to fix it."""
    item = {
        "path": format_path(path) if isinstance(path, (tuple, list)) else path,
        "value": shown_value(value),
        "message": message,
        "fix": fix,
    }
    if variable:
        item["variable"] = variable
    return item


def short_repr(value, limit=120):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def merge_problems(first, second):
    """first + the problems of second at paths (or below paths) first does not already cover."""
    covered = {parse_path(item["path"]) for item in first if item["path"]}
    merged = list(first)
    seen = {(item["path"], item["message"]) for item in first}
    for item in second:
        path = parse_path(item["path"])
        if any(path[: len(c)] == c for c in covered) or (item["path"], item["message"]) in seen:
            continue
        seen.add((item["path"], item["message"]))
        merged.append(item)
    return merged


def variable_for(path, sources):
    """The variable behind a config path: the longest recorded prefix in sources ({path: variable})."""
    parts = parse_path(path)
    for length in range(len(parts), 0, -1):
        key = format_path(parts[:length])
        if key in sources:
            return sources[key]
    return None


def name_variables(problems, sources):
    """Set each problem's variable from sources where it has none; returns the problems."""
    for item in problems:
        if not item.get("variable"):
            variable = variable_for(item.get("path") or "", sources or {})
            if variable:
                item["variable"] = variable
    return problems


def format_problems(problems, sources=None, cluster_name=None, what="cluster configuration"):
    """A human-readable multi-line report of problems, naming variables where known (``what``: whose config)."""
    lines = ["The %s%s has %d problem%s:" % (
        what, " of '%s'" % cluster_name if cluster_name else "", len(problems), "" if len(problems) == 1 else "s")]
    for item in problems:
        variable = item.get("variable") or (variable_for(item["path"], sources) if sources else None)
        where = item["path"] or "(config)"
        if variable and item["path"]:
            where = "%s (from %s)" % (item["path"], variable)
        elif variable:
            where = variable
        value = "" if item.get("value") in (None, "") else " [value: %s]" % short_repr(item["value"], 80)
        lines.append("- %s: %s%s. Fix: %s" % (where, item["message"].rstrip("."), value, item["fix"]))
    return "\n".join(lines)


def walk(data, path=()):
    """Yield (path, key, value) for every mapping key (value None) and every scalar value (key None) of a config."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield path, key, None
            yield from walk(value, path + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from walk(value, path + (index,))
    else:
        yield path, None, data
