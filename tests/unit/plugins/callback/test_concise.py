"""callback/concise: at verbosity 0 what changed, what failed and the playbooks' messages; -v is the default callback.

The playbook runs for real with ansible-playbook on localhost, through the checkout's ansible.cfg (which makes the
callback the default), so what is asserted is what a user sees.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[3]
BIN = pathlib.Path(sys.executable).parent


def run(*args):
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ.get("PATH", "")), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(HERE / "concise.yml"),
            "-e", "ansible_python_interpreter=%s" % sys.executable, *args]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_quiet_output_shows_changes_messages_and_failures_only():
    out = run()
    lines = out.splitlines()
    # Plays and tasks that print nothing leave no banner; an unchanged or skipped task no line.
    assert "A play that prints nothing" not in out and "An unchanged task" not in out and "A skipped task" not in out
    assert "PLAY [A play with every kind of result]" in out
    assert "TASK [A task that changes something]" in out and "changed: [localhost]" in out
    # A debug message is its text; a list comes one item a line under the task's name.
    assert "one line of news" in lines
    start = lines.index("A list of lines:")
    assert lines[start + 1:start + 3] == ["  - node-1: ok", "  - node-2: up-to-date"]
    assert "chatter" not in out
    # A failure: its short values, and the names of the long ones (-v prints them).
    failure = lines.index("fatal: [localhost]: FAILED! => ")
    assert "    rc: 1" in lines[failure + 1:failure + 8], lines[failure:]
    assert "(-v shows cmd)" in lines[failure:], lines[failure:]
    assert "...ignoring" in out
    assert lines[-1] == "Changed: localhost 1 (tasks per host)."


def test_a_run_that_changes_nothing_ends_saying_so():
    out = run("-e", "concise_change=false", "-e", "concise_fail=false")
    assert out.splitlines()[-1] == "Nothing changed: every host was already as configured (changed=0)."
    out = run("-e", "concise_change=false", "-e", "concise_fail=false", "--check")
    assert out.splitlines()[-1] == "Check mode: nothing would change (changed=0 on every host)."


def test_verbose_output_is_the_default_callbacks():
    out = run("-v")
    for banner in ("PLAY [A play that prints nothing when nothing changes]", "TASK [An unchanged task]",
                   "TASK [A skipped task]", "TASK [A message only -v shows]"):
        assert banner in out, banner
    assert "chatter" in out and "skipping: [localhost]" in out and "ok: [localhost]" in out
