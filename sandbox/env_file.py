"""Reading a sandbox's env.sh and state, for the tests and benchmarks that drive the sandbox from Python."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

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


def running_state(state_dir) -> dict:
    """state.json of the sandbox in state_dir; exits with a message when `sandbox.py status` says it is not up."""
    state_dir = pathlib.Path(state_dir)
    status = subprocess.run([sys.executable, str(ROOT / "sandbox" / "sandbox.py"), "status", "--state-dir",
                             str(state_dir)], capture_output=True, text=True, check=False)
    if status.returncode != 0:
        raise SystemExit("the sandbox in %s is not up (make sandbox-up): %s"
                         % (state_dir, (status.stdout + status.stderr).strip()))
    return json.loads((state_dir / "state.json").read_text())
