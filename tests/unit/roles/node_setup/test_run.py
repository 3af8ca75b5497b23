"""The bundle's runner (roles/node_setup/files/node_setup_run.py) and the boot script, run for real on this machine.

The bundles here hold a stand-in collection whose node_local.yml only touches a temporary directory; the
real ansible-playbook of the project's virtualenv runs it, with the collection's result callback.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[4]
FILES = ROOT / "roles" / "node_setup" / "files"
BOOT_SCRIPT = FILES / "hpc-pcluster-node-setup.sh"
VENV = ROOT / ".venv"

spec = importlib.util.spec_from_file_location("node_setup_run", FILES / "node_setup_run.py")
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)

PLAY = """\
- name: Stand-in node setup
  hosts: all
  gather_facts: false
  vars_files:
    - "{{ node_setup_bundle_vars }}"
  tasks:
    - name: Write the marker
      ansible.builtin.copy:
        dest: "{{ marker }}"
        content: "{{ node_setup_mode }}"
        mode: "0644"
    - name: Fail when asked
      ansible.builtin.fail:
        msg: "asked to fail on {{ inventory_hostname }}"
      when: fail_here | default(false)
"""


def make_bundle(tmp_path, variables, bundle_id="b1"):
    """<tmp>/node-setup/bundles/<id> with a stand-in collection, the project's virtualenv and run.py; current -> it."""
    top = tmp_path / "node-setup"
    bundle = top / "bundles" / bundle_id
    collection = bundle / "collections" / "ansible_collections" / "hpc" / "pcluster"
    (collection / "playbooks").mkdir(parents=True)
    (collection / "plugins" / "callback").mkdir(parents=True)
    (collection / "galaxy.yml").write_text("namespace: hpc\nname: pcluster\nversion: 0.1.0\n")
    (collection / "plugins" / "callback" / "node_setup_result.py").symlink_to(
        ROOT / "plugins" / "callback" / "node_setup_result.py")
    (collection / "playbooks" / "node_local.yml").write_text(PLAY)
    (bundle / "venv").symlink_to(VENV)
    (bundle / "vars.yml").write_text(json.dumps(variables))
    (bundle / "ansible.cfg").write_text("[defaults]\ncallbacks_enabled = hpc.pcluster.node_setup_result\n"
                                        "retry_files_enabled = false\n")
    (bundle / "manifest.json").write_text(json.dumps({"id": bundle_id}))
    (bundle / "run.py").write_bytes((FILES / "node_setup_run.py").read_bytes())
    (bundle / "run.py").chmod(0o755)
    current = top / "current"
    if current.is_symlink():
        current.unlink()
    current.symlink_to("bundles/%s" % bundle_id)
    return top


@pytest.fixture()
def node_env(tmp_path, monkeypatch):
    env = dict(os.environ, HPC_PCLUSTER_NODE_SETUP_STATE_DIR=str(tmp_path / "state"),
               HPC_PCLUSTER_NODE_SETUP_LOG=str(tmp_path / "log" / "node-setup.log"), SLURMD_NODENAME="node-7")
    env.pop("ANSIBLE_CONFIG", None)
    return env


def runner(top, env, *args):
    return subprocess.run([str(VENV / "bin" / "python"), str(top / "current" / "run.py"), *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def printed(stdout):
    """The result a fleet run printed: its numbered lines, each of at most 1000 bytes, put together."""
    lines = [line for line in stdout.splitlines() if line.startswith(run.RESULT_MARK + " ")]
    assert lines and all(len(line.encode()) + 1 <= run.RESULT_LINE_BYTES for line in lines), lines
    parts = [line.split(" ", 3) for line in lines]
    assert [part[2] for part in parts] == ["%d/%d" % (k, len(parts)) for k in range(1, len(parts) + 1)], parts
    return json.loads("".join(part[3] for part in parts))


# --------------------------------------------------------------------------- the play and its record


def test_boot_applies_the_bundle_and_records_the_outcome(tmp_path, node_env):
    marker = tmp_path / "marker"
    top = make_bundle(tmp_path, {"marker": str(marker)})
    proc = runner(top, node_env, "boot")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert marker.read_text() == "boot"
    result = json.loads((tmp_path / "state" / "result.json").read_text())
    assert result["status"] == "ok" and result["node"] == "node-7" and result["bundle"] == "b1"
    assert result["changed"] == 1 and result["failed"] == 0 and result["changed_tasks"] == ["Write the marker"]
    assert result["cpu_seconds"] > 0.5  # the play's processes: ansible-playbook and its modules
    assert "hpc-pcluster-node-setup: boot on node-7: ok (ok=1 changed=1 failed=0)" in proc.stdout
    assert "TASK [Write the marker]" in (tmp_path / "log" / "node-setup.log").read_text()


def test_fleet_leaves_a_node_that_applied_this_bundle_since_it_booted_and_says_so(tmp_path, node_env):
    marker = tmp_path / "marker"
    top = make_bundle(tmp_path, {"marker": str(marker)})
    assert runner(top, node_env, "boot").returncode == 0
    marker.unlink()
    proc = runner(top, node_env, "fleet")
    assert proc.returncode == 0, proc.stderr
    result = printed(proc.stdout)
    assert result["status"] == "up-to-date" and result["changed"] == 0 and not marker.exists()
    assert result["slurmd"] == {"restarted": False, "reason": "no SPANK configuration managed on this node"}
    # --force applies it anyway; a new bundle is applied too.
    assert printed(runner(top, node_env, "fleet", "--force").stdout)["status"] == "ok"
    assert marker.read_text() == "fleet"
    marker.unlink()
    make_bundle(tmp_path / "next", {"marker": str(marker)}, bundle_id="b2")
    proc = runner(tmp_path / "next" / "node-setup", node_env, "fleet")
    assert printed(proc.stdout)["status"] == "ok" and marker.exists()


def test_a_failed_task_fails_the_node_with_its_name_and_message(tmp_path, node_env):
    top = make_bundle(tmp_path, {"marker": str(tmp_path / "marker"), "fail_here": True})
    proc = runner(top, node_env, "fleet")
    assert proc.returncode == 1
    result = printed(proc.stdout)
    assert result["status"] == "failed" and result["failed"] == 1
    assert result["failed_task"] == "Fail when asked" and result["message"] == "asked to fail on node-7"
    # A failed node is not up to date: the next run applies the bundle again.
    assert printed(runner(top, node_env, "fleet").stdout)["status"] == "failed"


def test_a_play_that_cannot_start_is_a_failure_with_the_log_tail(tmp_path, node_env):
    top = make_bundle(tmp_path, {"marker": str(tmp_path / "marker")})
    (top / "current" / "collections" / "ansible_collections" / "hpc" / "pcluster" / "playbooks" /
     "node_local.yml").write_text("- hosts: all\n  tasks: [ {name: x, no_such_module: {}} ]\n")
    proc = runner(top, node_env, "boot")
    assert proc.returncode == 1
    result = json.loads((tmp_path / "state" / "result.json").read_text())
    assert result["status"] == "failed" and result["failed_task"].startswith("ansible-playbook (exit status")
    assert "no_such_module" in result["message"]
    # In the fleet job the same failure, with the log's tail, is printed over several lines that each fit
    # a Slurm I/O message (1024 bytes): whole lines are never cut by another node's output.
    proc = runner(top, node_env, "fleet")
    lines = [line for line in proc.stdout.splitlines() if line.startswith(run.RESULT_MARK + " ")]
    result = printed(proc.stdout)
    assert len(lines) > 1 and result["status"] == "failed" and "no_such_module" in result["message"], lines


def test_result_lines_fit_and_put_back_give_the_result():
    result = {"node": "compute-gpu-st-distributed-ml-12", "status": "failed", "message": "\u00e9chec " * 700,
              "changed_tasks": ["task %d" % k for k in range(300)]}
    lines = run.result_lines(result)
    assert len(lines) > 5 and printed("\n".join(lines) + "\n") == result
    assert all(line.startswith("%s %s " % (run.RESULT_MARK, result["node"])) for line in lines)
    assert run.result_lines({"node": "n", "status": "ok"}) == ['%s n 1/1 {"node": "n", "status": "ok"}' % run.RESULT_MARK]


# --------------------------------------------------------------------------- the boot script


def boot_script(top, env, *args):
    return subprocess.run(["bash", str(BOOT_SCRIPT), "--dir", str(top), *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_boot_script_without_a_bundle_records_pending_and_lets_the_node_boot(tmp_path, node_env):
    proc = boot_script(tmp_path / "nothing-here", node_env, "--wait", "0")
    assert proc.returncode == 0
    assert "no node-setup bundle in" in proc.stdout and "fleet-wide run" in proc.stdout
    assert json.loads((tmp_path / "state" / "result.json").read_text())["status"] == "pending"


def test_boot_script_waits_for_a_bundle_that_appears(tmp_path, node_env):
    marker = tmp_path / "marker"
    timer = threading.Timer(2.0, make_bundle, args=(tmp_path, {"marker": str(marker)}))
    timer.start()
    started = time.monotonic()
    proc = boot_script(tmp_path / "node-setup", node_env, "--wait", "60")
    timer.join()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert marker.read_text() == "boot" and time.monotonic() - started >= 2.0


def test_boot_script_fails_the_node_when_the_setup_fails(tmp_path, node_env):
    top = make_bundle(tmp_path, {"marker": str(tmp_path / "marker"), "fail_here": True})
    proc = boot_script(top, node_env)
    assert proc.returncode == 1
    assert "failed task: Fail when asked: asked to fail on node-7" in proc.stdout


@pytest.mark.parametrize("args,message", [(["--wait", "soon"], "is not a number"), (["--bogus"], "unknown argument")])
def test_boot_script_refuses_bad_arguments(tmp_path, node_env, args, message):
    proc = boot_script(tmp_path, node_env, *args)
    assert proc.returncode == 2 and message in proc.stderr


# --------------------------------------------------------------------------- slurmd and its SPANK configuration


def test_up_to_date_means_this_bundle_applied_since_this_boot():
    done = {"status": "ok", "bundle": "b1", "boot_id": "boot-1"}
    assert run.up_to_date(done, "b1", "boot-1")
    assert run.up_to_date(dict(done, status="up-to-date"), "b1", "boot-1")
    assert not run.up_to_date(done, "b2", "boot-1")
    assert not run.up_to_date(done, "b1", "boot-2")
    assert not run.up_to_date(dict(done, status="failed"), "b1", "boot-1")
    assert not run.up_to_date(dict(done, status="pending"), "b1", "boot-1")
    assert not run.up_to_date(None, "b1", "boot-1")


def spank_tree(tmp_path):
    etc = tmp_path / "etc"
    (etc / "plugstack.conf.d").mkdir(parents=True)
    (etc / "pyxis").mkdir()
    plugin = tmp_path / "spank_pyxis.so"
    plugin.write_bytes(b"\x7fELF")
    (etc / "pyxis" / "pyxis.conf").write_text("required %s runtime_path=/run/pyxis\n" % plugin)
    (etc / "plugstack.conf.d" / "pyxis.conf").symlink_to(etc / "pyxis" / "pyxis.conf")
    (etc / "plugstack.conf.d" / "pyxis.conf.1234~").write_text("required /nowhere.so\n")
    (etc / "plugstack.conf").write_text("# comment\ninclude %s/plugstack.conf.d/*.conf\noptional /opt/x.so # y\n" % etc)
    return etc, plugin


def test_spank_files_follow_includes_and_name_the_plugins(tmp_path):
    etc, plugin = spank_tree(tmp_path)
    assert run.spank_files(str(etc / "plugstack.conf")) == [
        str(etc / "plugstack.conf"), "/opt/x.so", str(etc / "plugstack.conf.d" / "pyxis.conf"), str(plugin)]


def test_newest_change_counts_the_target_of_a_link(tmp_path):
    target, link = tmp_path / "target", tmp_path / "link"
    target.write_text("x")
    link.symlink_to(target)
    os.utime(link, (1000, 1000), follow_symlinks=False)
    os.utime(target, (5000, 5000))
    assert run.newest_change([str(link), str(tmp_path / "missing")]) == 5000


@pytest.fixture()
def slurmd(tmp_path):
    """A stand-in slurmd: a process of its own and its pid file."""
    proc = subprocess.Popen(["sleep", "300"])
    pid_file = tmp_path / "slurmd.pid"
    pid_file.write_text("%d\n" % proc.pid)
    time.sleep(0.05)
    yield proc, pid_file
    proc.kill()
    proc.wait()


def test_slurmd_is_restarted_only_when_its_spank_configuration_changed_after_it_started(tmp_path, slurmd):
    proc, pid_file = slurmd
    etc, plugin = spank_tree(tmp_path)
    restarted = tmp_path / "restarted"
    record = {"plugstack_conf": str(etc / "plugstack.conf"), "pid_file": str(pid_file),
              "restart_command": [sys.executable, "-c", "open(%r, 'a').write('x')" % str(restarted)]}
    started = run.process_start(proc.pid)
    assert abs(started - time.time()) < 30
    for path in run.spank_files(record["plugstack_conf"]):
        if os.path.exists(path):
            os.utime(path, (started - 60, started - 60), follow_symlinks=False)
            os.utime(path, (started - 60, started - 60))
    assert run.reload_slurmd(record) == {"restarted": False,
                                         "reason": "slurmd started after its SPANK configuration last changed"}
    os.utime(plugin, (started + 5, started + 5))
    done = run.reload_slurmd(record)
    assert done["restarted"] is True and done["rc"] == 0 and restarted.read_text() == "x"
    failing = dict(record, restart_command=[sys.executable, "-c", "import sys; print('no'); sys.exit(3)"])
    assert run.reload_slurmd(failing)["rc"] == 3
    assert "no restart command" in run.reload_slurmd(dict(record, restart_command=[]))["reason"]


def test_no_slurmd_or_no_spank_configuration_means_no_restart(tmp_path):
    etc, _plugin = spank_tree(tmp_path)
    assert run.reload_slurmd({"plugstack_conf": str(etc / "plugstack.conf"), "pid_file": str(tmp_path / "none"),
                              "restart_command": ["false"]}) == {"restarted": False,
                                                                 "reason": "slurmd is not running"}
    assert run.reload_slurmd(None)["restarted"] is False


def test_runner_parses_as_python_3_9():
    ast.parse((FILES / "node_setup_run.py").read_text(), feature_version=(3, 9))
