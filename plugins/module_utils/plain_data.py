# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain Python copies of the data Ansible hands over, for dumping and comparing configs."""

from __future__ import annotations


def to_plain(value):
    """dict/list/str/int/float/bool/None copies of Ansible's tagged and unsafe subclasses.

    Keys become strings; any other type is written as its string form, so a YAML
    dumper never meets a type it cannot represent.
    """
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)
