"""The bundle's runner (roles/node_setup/files/run.py) and the boot script, run for real on this machine.

The bundles here hold a stand-in collection whose node_local.yml only touches a temporary directory; the
real ansible-playbook of the project's virtualenv runs it, with the collection's result callback.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[4]
FILES = ROOT / "roles" / "node_setup" / "files"
BOOT_SCRIPT = FILES / "hpc-pcluster-node-setup.sh"
VENV = ROOT / ".venv"

spec = importlib.util.spec_from_file_location("node_setup_run", FILES / "run.py")
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
    - name: Record the mount points given and the boot-time entries, as node_local.yml does
      ansible.builtin.copy:
        dest: "{{ boot_record }}"
        content: "{{ {'mount_points': enroot_mount_points | default({}), 'tmpfiles': boot_tmpfiles | default([])} | to_json }}"
        mode: "0600"
      when: boot_record is defined
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
    (bundle / "run.py").write_bytes((FILES / "run.py").read_bytes())
    (bundle / "run.py").chmod(0o755)
    current = top / "current"
    if current.is_symlink():
        current.unlink()
    current.symlink_to("bundles/%s" % bundle_id)
    return top


# A stand-in for scontrol's reservation commands (Slurm itself holds nodes in the e2e tests): it keeps the
# reservations as files and logs every call.
SCONTROL = """#!/bin/bash
echo "$*" >> "$FAKE_SLURM/calls"
case "$1 $2" in
  "create reservation")
    name=${3#ReservationName=}
    [ -e "$FAKE_SLURM/$name" ] && { echo "Error creating the reservation: Duplicate reservation name"; exit 1; }
    echo "$*" > "$FAKE_SLURM/$name"; echo "Reservation created: $name" ;;
  "delete reservation="*)
    name=${2#reservation=}
    [ -e "$FAKE_SLURM/$name" ] || { echo "delete_reservation $2: Requested reservation is invalid"; exit 1; }
    rm "$FAKE_SLURM/$name" ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"""


def with_scontrol_stand_in(tmp_path, env):
    """env with the stand-in scontrol first on PATH (its reservations and calls under <tmp>/slurm)."""
    fake = tmp_path / "slurm"
    (fake / "bin").mkdir(parents=True, exist_ok=True)
    (fake / "bin" / "scontrol").write_text(SCONTROL)
    (fake / "bin" / "scontrol").chmod(0o755)
    return dict(env, FAKE_SLURM=str(fake), PATH="%s:%s" % (fake / "bin", env["PATH"]))


@pytest.fixture()
def node_env(tmp_path):
    env = dict(os.environ, HPC_PCLUSTER_NODE_SETUP_STATE_DIR=str(tmp_path / "state"),
               HPC_PCLUSTER_NODE_SETUP_LOG=str(tmp_path / "log" / "node-setup.log"), SLURMD_NODENAME="node-7")
    env.pop("ANSIBLE_CONFIG", None)
    return with_scontrol_stand_in(tmp_path, env)


def scontrol_calls(env):
    calls = pathlib.Path(env["FAKE_SLURM"]) / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def held(env, node="node-7"):
    return (pathlib.Path(env["FAKE_SLURM"]) / ("hpc-pcluster-node-setup-" + node)).exists()


@pytest.fixture()
def trusted_tmp():
    """A directory only root can write, all the way up (/tmp, which holds tmp_path, can be written by anyone, so
    the loader refuses to run anything from there)."""
    if os.geteuid() != 0:
        pytest.skip("the bundle's ownership checks need root")
    path = pathlib.Path(tempfile.mkdtemp(prefix="hpc-pcluster-test-", dir="/run"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


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
                          text=True, timeout=180, check=False)


def test_boot_script_without_a_bundle_holds_a_static_node_and_lets_it_boot(tmp_path, node_env):
    # A cluster's first create: the static nodes boot before the playbook can stage the bundle. Their bootstrap
    # must succeed (the head node waits for them before the create completes), and no job may land on them.
    proc = boot_script(tmp_path / "nothing-here", node_env, "--wait", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no node-setup bundle in" in proc.stdout and "node-7 is held (hpc-pcluster-node-setup-node-7)" in proc.stdout
    result = json.loads((tmp_path / "state" / "result.json").read_text())
    assert result["status"] == "pending" and result["hold"] == "hpc-pcluster-node-setup-node-7"
    assert scontrol_calls(node_env) == [
        "create reservation ReservationName=hpc-pcluster-node-setup-node-7 Nodes=node-7 StartTime=now "
        "Duration=UNLIMITED Users=root Flags=MAINT,IGNORE_JOBS"]
    # Booting again without a bundle: held already, and that is fine.
    assert boot_script(tmp_path / "nothing-here", node_env).returncode == 0 and held(node_env)


def test_boot_script_without_a_bundle_fails_a_dynamic_node(tmp_path, node_env):
    # Powered up for a job, which a hold would not keep off it: ParallelCluster powers it down and finds another.
    env = dict(node_env, SLURMD_NODENAME="gpu-dy-g5-3")
    proc = boot_script(tmp_path / "nothing-here", env)
    assert proc.returncode == 1 and "failing its bootstrap" in proc.stdout
    assert scontrol_calls(env) == [] and json.loads((tmp_path / "state" / "result.json").read_text())["status"] == "failed"


def test_boot_script_waits_for_a_bundle_that_appears_and_a_successful_boot_releases_the_hold(trusted_tmp, node_env):
    marker = trusted_tmp / "marker"
    assert boot_script(trusted_tmp / "node-setup", node_env).returncode == 0 and held(node_env)
    timer = threading.Timer(2.0, make_bundle, args=(trusted_tmp, {"marker": str(marker)}))
    timer.start()
    started = time.monotonic()
    proc = boot_script(trusted_tmp / "node-setup", node_env, "--wait", "60")
    timer.join()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert marker.read_text() == "boot" and time.monotonic() - started >= 2.0
    assert not held(node_env) and scontrol_calls(node_env)[-1] == "delete reservation=hpc-pcluster-node-setup-node-7"
    assert json.loads((pathlib.Path(node_env["HPC_PCLUSTER_NODE_SETUP_STATE_DIR"]) / "result.json").read_text())[
        "hold"] == {"released": True}


def test_boot_script_fails_the_node_when_the_setup_fails(trusted_tmp, node_env):
    top = make_bundle(trusted_tmp, {"marker": str(trusted_tmp / "marker"), "fail_here": True})
    proc = boot_script(top, node_env)
    assert proc.returncode == 1
    assert "failed task: Fail when asked: asked to fail on node-7" in proc.stdout


def plant(path, how):
    """Make path writable by others than root, the way a careless setup or a user would."""
    if how == "group-writable":
        path.chmod(path.stat().st_mode | 0o020)
    elif how == "user-owned":
        os.chown(path, 65534, 65534)
    elif how == "world-writable file":
        (path / "planted.yml").write_text("- hosts: all\n")
        (path / "planted.yml").chmod(0o666)


@pytest.mark.parametrize("where, how", [
    ("", "group-writable"), ("node-setup", "user-owned"), ("node-setup/bundles", "group-writable"),
    ("node-setup/current/collections/ansible_collections/hpc/pcluster/playbooks", "world-writable file")])
def test_a_bundle_others_than_root_can_write_is_not_run_and_the_node_is_held(trusted_tmp, node_env, where, how):
    marker = trusted_tmp / "marker"
    top = make_bundle(trusted_tmp, {"marker": str(marker)})
    plant(trusted_tmp / where, how)
    proc = boot_script(top, node_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the node-setup bundle is not trusted, nothing of it was run" in proc.stdout, proc.stdout
    assert not marker.exists() and held(node_env)
    # The staging check refuses the same place, and the fleet job's task too.
    check = boot_script(top, node_env, "--check")
    assert check.returncode == 3 and "is not trusted" in check.stdout
    fleet = boot_script(top, node_env, "--fleet")
    assert fleet.returncode == 1 and not marker.exists()
    assert printed(fleet.stdout)["failed_task"] == "trust check"


def test_the_staging_check_accepts_root_s_directories_and_one_not_made_yet(trusted_tmp, node_env):
    assert boot_script(trusted_tmp / "not" / "made" / "yet", node_env, "--check").returncode == 0
    top = make_bundle(trusted_tmp, {"marker": str(trusted_tmp / "marker")})
    proc = boot_script(top, node_env, "--check")
    assert proc.returncode == 0 and "is root's alone" in proc.stdout
    assert boot_script(pathlib.Path("/tmp/node-setup"), node_env, "--check").returncode == 3


def test_the_fleet_task_runs_a_trusted_bundle(trusted_tmp, node_env):
    marker = trusted_tmp / "marker"
    top = make_bundle(trusted_tmp, {"marker": str(marker)})
    proc = boot_script(top, node_env, "--fleet")
    assert proc.returncode == 0 and printed(proc.stdout)["status"] == "ok" and marker.read_text() == "fleet"


def test_the_lock_and_the_record_are_root_s_alone(trusted_tmp, node_env):
    # An older release left the state directory open to everyone (0755, the lock 0644): a user could open the lock
    # and hold it, stalling every run on the node.
    state = trusted_tmp / "state"
    state.mkdir(mode=0o755)
    (state / "lock").write_text("")
    (state / "lock").chmod(0o644)
    env = dict(node_env, HPC_PCLUSTER_NODE_SETUP_STATE_DIR=str(state))
    top = make_bundle(trusted_tmp, {"marker": str(trusted_tmp / "marker")})
    assert runner(top, env, "boot").returncode == 0
    modes = {name: oct((state / name).stat().st_mode & 0o777) for name in (".", "lock", "result.json")}
    assert modes == {".": "0o700", "lock": "0o600", "result.json": "0o600"}
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", str(state / "lock")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr


def test_a_run_killed_half_way_leaves_running_not_ok(tmp_path, node_env):
    marker = tmp_path / "marker"
    top = make_bundle(tmp_path, {"marker": str(marker)})
    assert runner(top, node_env, "boot").returncode == 0
    result_file = tmp_path / "state" / "result.json"
    assert json.loads(result_file.read_text())["status"] == "ok"
    proc = subprocess.Popen([str(VENV / "bin" / "python"), str(top / "current" / "run.py"), "fleet", "--force"],
                            env=node_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while json.loads(result_file.read_text())["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, 9)
    proc.wait()
    assert json.loads(result_file.read_text())["status"] == "running"


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
    ast.parse((FILES / "run.py").read_text(), feature_version=(3, 9))
