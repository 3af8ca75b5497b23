# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress lines a waiting module appends to a file, for the collection's action plugins to print as they come."""

from __future__ import annotations

import os

# The option the action plugins set to receive the lines (plugin_utils/progress_relay.py).
PROGRESS_OPTION = dict(progress_file=dict(type="path"))


def write_progress(module, line):
    """Append a line to the module's progress_file; no-op without one. A failure warns once and stops writing."""
    path = module.params.get("progress_file")
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(line.replace("\n", " ") + "\n")
    except OSError as exc:
        module.warn("Cannot write progress to %s: %s" % (path, exc))
        module.params["progress_file"] = None
