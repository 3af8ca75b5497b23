"""Reading a sandbox's env.sh, for the tests and benchmarks that drive the sandbox from Python."""

from __future__ import annotations

import json
import os
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPORT = re.compile(r"^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def read_env_sh(path) -> dict:
    """The variables env.sh exports (sandbox.py writes each value JSON-quoted)."""
    out = {}
    for line in pathlib.Path(path).read_text().splitlines():
        match = EXPORT.match(line)
        if match:
            out[match.group(1)] = json.loads(match.group(2))
    return out


def controller_env(state_dir) -> dict:
    """This process's environment plus the sandbox's env.sh, the venv first on PATH and the project's ansible.cfg."""
    env = dict(os.environ)
    env.update(read_env_sh(pathlib.Path(state_dir) / "env.sh"))
    env["PATH"] = "%s:%s" % (ROOT / ".venv" / "bin", env.get("PATH", ""))
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    return env
