# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Problem records for cluster configs: a path in the config, the value there, what is wrong and the fix."""

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


def problem(path, value, message, fix, variable=None):
    """One problem: where, what was there, what is wrong, how to fix it."""
    item = {
        "path": format_path(path) if isinstance(path, (tuple, list)) else path,
        "value": value,
        "message": message,
        "fix": fix,
    }
    if variable:
        item["variable"] = variable
    return item


def short_repr(value, limit=120):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
