"""Running ansible-playbook for the role tests: this checkout's ansible.cfg (the collection as Ansible finds it),
the virtualenv's tools first on PATH, no colour."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(sys.executable).parent


def ansible_playbook(playbook, inventory, *args, extra=None, env=None):
    """ansible-playbook -i inventory playbook [-e extra] args: the CompletedProcess, output as text."""
    env = dict(os.environ if env is None else env)
    env.update(PATH="%s:%s" % (BIN, env.get("PATH", "/usr/bin:/bin")),
               ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)]
    if extra is not None:
        argv += ["-e", json.dumps(extra)]
    argv += list(args)
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def recap(result, key, host="localhost"):
    """The number the play recap gives host for key (ok, changed, failed, ...)."""
    match = re.search(r"^%s\s*:.*\b%s=(\d+)" % (re.escape(host), key), result.stdout, re.M)
    assert match, result.stdout + result.stderr
    return int(match.group(1))
