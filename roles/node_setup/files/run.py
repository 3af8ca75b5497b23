# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a node-setup bundle to the node this runs on (the bundle's run.py).

A bundle, staged by role hpc.pcluster.node_setup on the head node's shared
storage, holds the collection, the variables the controller resolved for the
cluster's compute nodes, an ansible.cfg and (as ``venv``) a Python environment
with a pinned ansible-core. This script runs its local play
(``ansible-playbook -c local``) and records the outcome:

    run.py boot           at boot (the OnNodeConfigured step), before slurmd starts
    run.py fleet [--force]
                          in the fleet-wide Slurm job: a node that already applied
                          this bundle since it booted is left as it is (unless
                          --force); slurmd is restarted when the SPANK
                          configuration it reads changed after it started
    run.py bake           on the build instance of a custom image (role
                          hpc.pcluster.image_config): applies the roles and records
                          what it applied in /var/lib/hpc-pcluster/node-setup/image.json

A node started from such an image, on which nothing was applied since it booted,
answers up-to-date without running the play when the image's record names this
bundle's collection and variables and the node has the storage the image was baked
for (the image is a cache of the bundle, never a second source of truth: any
difference runs the play). The bake is told the mount points of the cluster's
compute nodes (the manifest's ``mount_points``, given to the roles as
``enroot_mount_points``), since a build instance has none of the cluster's storage;
the record keeps the ones the roles placed data by (``boot.json``, written by the
play) and the systemd-tmpfiles entries of the directories that live on storage
emptied at each boot (instance storage, /run), which run.py creates again before it
answers up-to-date.

The result - status (ok, up-to-date, failed), the play's counts, the first
failed task - is written to /var/lib/hpc-pcluster/node-setup/result.json (root's
only, as the lock beside it; "running" while the play runs, so that a run killed
half-way leaves no "ok" behind) and,
in fleet mode, printed for the job's caller as lines
``HPC_PCLUSTER_NODE_SETUP_RESULT <node> <k>/<n> <part k of the JSON text>`` of at
most 1000 bytes each (see result_lines). The play's own output goes to
/var/log/hpc-pcluster/node-setup.log. Exit status 0 unless the node failed.

A boot run that succeeds releases the node's hold for setup (the Slurm maintenance
reservation hpc-pcluster-node-setup-<node> the loader or the fleet job placed);
in the fleet job, the module on the head node does.

Standard library only; runs with the bundle's Python (3.9 or later).
"""

import argparse
import contextlib
import fcntl
import glob
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time

# The node's own record of its setup, and the play's log (another place, e.g. to try a bundle by hand: the
# environment variables HPC_PCLUSTER_NODE_SETUP_STATE_DIR and HPC_PCLUSTER_NODE_SETUP_LOG).
STATE_DIR = os.environ.get("HPC_PCLUSTER_NODE_SETUP_STATE_DIR") or "/var/lib/hpc-pcluster/node-setup"
LOG_FILE = os.environ.get("HPC_PCLUSTER_NODE_SETUP_LOG") or "/var/log/hpc-pcluster/node-setup.log"
RESULT_MARK = "HPC_PCLUSTER_NODE_SETUP_RESULT"
# Slurm carries a task's output to srun in messages of at most 1024 bytes, cut at a line's end when the line fits,
# and srun writes the messages of all tasks in the order they arrive: a longer line is cut, and another node's
# output can land in the middle of it. A result is therefore printed as numbered lines that each fit.
RESULT_LINE_BYTES = 1000
SLURM_NODENAME_FILE = "/etc/parallelcluster/slurm_plugin/slurm_nodename"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/slurm/bin"
HOLD_PREFIX = "hpc-pcluster-node-setup-"
# The record a baked image carries of the setup it holds (run.py bake writes it).
IMAGE_RECORD = os.path.join(STATE_DIR, "image.json")
# What the record and a bundle's manifest must agree on for the image to stand for the bundle.
IMAGE_IDENTITY = (("collection", "the collection"), ("vars_digest", "the variables"))
# What the play records of the node it set up (node_local.yml): the mount points the roles placed data by, and the
# systemd-tmpfiles entries of the directories that are gone at each boot.
BOOT_RECORD = os.path.join(STATE_DIR, "boot.json")
MOUNTINFO = "/proc/self/mountinfo"


def node_name():
    """The Slurm node name (the fleet job's, else the one ParallelCluster records at boot), else the host name."""
    name = os.environ.get("SLURMD_NODENAME")
    if name:
        return name
    try:
        with open(SLURM_NODENAME_FILE, encoding="utf-8") as handle:
            name = handle.read().strip()
    except OSError:
        name = ""
    return name or socket.gethostname().split(".")[0]


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def load_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_json(path, data, mode=0o600):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def up_to_date(previous, bundle_id, current_boot):
    """Whether the node applied this bundle successfully since it last booted."""
    return (isinstance(previous, dict) and previous.get("status") in ("ok", "up-to-date")
            and previous.get("bundle") == bundle_id and bool(current_boot)
            and previous.get("boot_id") == current_boot)


def image_differences(record, manifest):
    """What keeps a baked image's record from standing for the bundle (empty: it does)."""
    if not isinstance(record, dict):
        return ["the image carries no baked setup"]
    differs = ["%s (image %s, bundle %s)" % (what, record.get(key), manifest.get(key))
               for key, what in IMAGE_IDENTITY if not manifest.get(key) or record.get(key) != manifest.get(key)]
    if record.get("node_rendered"):
        differs.append("variables each node renders for itself (%s)" % ", ".join(record["node_rendered"]))
    return differs


def mount_points(mountinfo=MOUNTINFO):
    """The mount points of this node (as mountpoint(1) sees them: every entry of the mount table)."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return set()
    # Field 5 is the mount point, with space, tab, newline and backslash as octal escapes.
    return {re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), line.split()[4])
            for line in lines if len(line.split()) > 4}


def storage_differences(record, mounted):
    """Where the node's storage is not what the image was baked for (the roles placed data by it)."""
    wanted = (record or {}).get("mount_points") or {}
    return ["%s is %sa mount point here, %s on the nodes the image was baked for"
            % (path, "" if path in mounted else "not ", "one" if want else "not one")
            for path, want in sorted(wanted.items()) if (path in mounted) != bool(want)]


def recreate_boot_directories(record):
    """The directories the image's setup keeps on storage emptied at each boot, created again from the systemd-tmpfiles
    entries the roles wrote (as systemd does at boot, but after the instance storage is mounted). Returns
    (exit status, output); 0 and "" when there is nothing to create."""
    files = [path for path in (record or {}).get("tmpfiles") or [] if os.path.isfile(path)]
    if not files:
        return 0, ""
    command = shutil.which("systemd-tmpfiles", path=SYSTEM_PATH)
    if not command:
        return 127, "systemd-tmpfiles not found (on %s)" % SYSTEM_PATH
    proc = subprocess.run([command, "--create", *files], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          check=False)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def untouched_since_boot(previous, current_boot):
    """Whether nothing was applied to the node since it booted: only then does its image tell its setup."""
    return (not isinstance(previous, dict) or not current_boot or previous.get("boot_id") != current_boot
            or previous.get("status") == "pending" or previous.get("source") == "image")


# --------------------------------------------------------------------------- slurmd and its SPANK configuration


def spank_files(plugstack_conf):
    """plugstack.conf, the files it includes and the plugins they load (what slurmd reads when it starts)."""
    found, queue, seen = [], [plugstack_conf], set()
    while queue:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        found.append(path)
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split("#", 1)[0].split()
            if len(words) >= 2 and words[0] == "include":
                queue.extend(sorted(glob.glob(words[1])))
            elif len(words) >= 2 and words[0] in ("required", "optional"):
                found.append(words[1])
    return found


def newest_change(paths):
    """The latest modification time of the paths and, for symbolic links, of their targets (0 when none exists)."""
    newest = 0.0
    for path in paths:
        for stat in (os.lstat, os.stat):
            try:
                newest = max(newest, stat(path).st_mtime)
            except OSError:
                pass
    return newest


def process_start(pid):
    """When a process started (seconds since the epoch), from /proc; None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="utf-8") as handle:
            btime = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def slurmd_started(pid_file):
    """(pid, start time) of this node's slurmd from its pid file, or (None, None) when it does not run."""
    try:
        with open(pid_file, encoding="utf-8") as handle:
            pid = int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None, None
    started = process_start(pid)
    return (pid, started) if started is not None else (None, None)


def reload_slurmd(record):
    """Restart slurmd when its SPANK configuration changed after it started. Returns what was done."""
    if not isinstance(record, dict) or not record.get("plugstack_conf"):
        return {"restarted": False, "reason": "no SPANK configuration managed on this node"}
    pid, started = slurmd_started(record.get("pid_file") or "/run/slurmd.pid")
    if pid is None:
        return {"restarted": False, "reason": "slurmd is not running"}
    changed = newest_change(spank_files(record["plugstack_conf"]))
    if changed <= started:
        return {"restarted": False, "reason": "slurmd started after its SPANK configuration last changed"}
    command = record.get("restart_command") or []
    if not command:
        return {"restarted": False, "reason": "SPANK configuration changed after slurmd started, and no restart "
                "command is set (pyxis_slurmd_restart_command)"}
    proc = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=120, start_new_session=True, check=False)
    return {"restarted": proc.returncode == 0, "command": command, "rc": proc.returncode,
            "output": proc.stdout[-2000:], "reason": "SPANK configuration changed after slurmd started"}


def release_hold(node):
    """Delete the node's hold for setup, if it has one; returns what happened (None when there was none)."""
    scontrol = shutil.which("scontrol", path=(os.environ.get("PATH") or "") + ":/opt/slurm/bin")
    if not scontrol:
        return None
    proc = subprocess.run([scontrol, "delete", "reservation=%s%s" % (HOLD_PREFIX, node)], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=60,
                          check=False)
    if proc.returncode == 0:
        return {"released": True}
    if "reservation is invalid" in proc.stdout.lower():
        return None
    return {"released": False, "rc": proc.returncode, "output": proc.stdout[-1000:]}


# --------------------------------------------------------------------------- the local play


def play_env(bundle, callback_file):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": os.path.join(bundle, "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(bundle, "collections"),
        "ANSIBLE_HOME": os.path.join(STATE_DIR, "ansible"),
        "ANSIBLE_LOCAL_TEMP": os.path.join(STATE_DIR, "tmp"),
        "ANSIBLE_REMOTE_TEMP": os.path.join(STATE_DIR, "tmp"),
        "HPC_PCLUSTER_NODE_SETUP_RESULT": callback_file,
        "HOME": env.get("HOME") or "/root",
        # ansible-core refuses a non-UTF-8 locale; a node at boot may have none set.
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "PATH": SYSTEM_PATH + (":" + env["PATH"] if env.get("PATH") else ""),
    })
    return env


def run_play(bundle, mode, node, extra=None):
    """Run the bundle's local play (extra: more variables for it); returns (exit status, the result callback's
    record)."""
    callback_file = os.path.join(STATE_DIR, "play.json")
    try:
        os.unlink(callback_file)
    except FileNotFoundError:
        pass
    venv = os.path.join(bundle, "venv", "bin")
    playbook = os.path.join(bundle, "collections", "ansible_collections", "hpc", "pcluster", "playbooks",
                            "node_local.yml")
    argv = [os.path.join(venv, "python"), os.path.join(venv, "ansible-playbook"), "-i", node + ",",
            "-c", "local", playbook,
            "-e", json.dumps(dict(extra or {}, node_setup_mode=mode,
                                  node_setup_bundle_vars=os.path.join(bundle, "vars.yml"),
                                  ansible_python_interpreter=os.path.join(venv, "python")))]
    os.makedirs(os.path.dirname(LOG_FILE), mode=0o700, exist_ok=True)
    with open(LOG_FILE, "a", encoding="utf-8") as log:
        log.write("\n=== %s %s %s bundle %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S%z"), mode, node,
                                                  os.path.basename(bundle)))
        log.flush()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              env=play_env(bundle, callback_file), cwd=STATE_DIR, check=False)
    os.chmod(LOG_FILE, 0o600)
    return proc.returncode, load_json(callback_file)


def tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "\n".join(handle.read().splitlines()[-lines:])
    except OSError:
        return ""


def log_line(text):
    os.makedirs(os.path.dirname(LOG_FILE), mode=0o750, exist_ok=True)
    with open(LOG_FILE, "a", encoding="utf-8") as log:
        log.write("\n=== %s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S%z"), text))


def apply(bundle, manifest, mode, force):
    node, current_boot = node_name(), boot_id()
    result = {"node": node, "mode": mode, "bundle": manifest.get("id"), "boot_id": current_boot,
              "started": time.time(), "log": LOG_FILE}
    previous = load_json(os.path.join(STATE_DIR, "result.json"))
    record = load_json(IMAGE_RECORD) if mode != "bake" else None
    differs = image_differences(record, manifest) + storage_differences(record, mount_points()) if record else []
    from_image = record and not differs and not force and untouched_since_boot(previous, current_boot)
    if mode == "fleet" and not force and up_to_date(previous, manifest.get("id"), current_boot):
        result.update(status="up-to-date", ok=0, changed=0, failed=0, changed_tasks=[])
    elif from_image:
        if recreated(record, result, mode, node, manifest):
            result.update(status="up-to-date", source="image", image=record.get("id"), ok=0, changed=0, failed=0,
                          changed_tasks=[])
            log_line("%s %s bundle %s: up-to-date from the image (bake %s of %s): the roles did not run" % (
                mode, node, manifest.get("id"), record.get("id"), record.get("baked_at")))
        else:
            run_and_record(bundle, mode, node, result)
    else:
        if record and differs:
            result["image_differs"] = differs
            log_line("%s %s bundle %s: the image (bake %s) carries another setup - %s: the roles run" % (
                mode, node, manifest.get("id"), record.get("id"), "; ".join(differs)))
        run_and_record(bundle, mode, node, result)
    if mode == "boot" and result["status"] in ("ok", "up-to-date"):
        result["hold"] = release_hold(node)
        if result["hold"] and not result["hold"]["released"]:
            result.update(status="failed", failed=max(result["failed"], 1), failed_task="release the hold for setup",
                          message=result["hold"]["output"])
    if mode == "fleet":
        result["slurmd"] = reload_slurmd(load_json(os.path.join(STATE_DIR, "slurmd.json")))
        if result["slurmd"].get("rc") not in (None, 0):
            result.update(status="failed", failed=max(result["failed"], 1), failed_task="restart slurmd",
                          message=result["slurmd"].get("output", ""))
    result["seconds"] = round(time.time() - result["started"], 2)
    return result


def recreated(record, result, mode, node, manifest):
    """Whether the image's directories on storage emptied at boot are there again (else the roles run: they make
    them, and the log says why)."""
    rc, output = recreate_boot_directories(record)
    if rc == 0:
        return True
    result["image_differs"] = ["its directories on storage emptied at boot could not be created: %s" % output]
    log_line("%s %s bundle %s: the image (bake %s) stands for the bundle, but systemd-tmpfiles failed (exit status %d: "
             "%s): the roles run" % (mode, node, manifest.get("id"), record.get("id"), rc, output))
    return False


@contextlib.contextmanager
def state_lock():
    """The node's lock, held for the block. The state directory is root's alone (0700), so no user can open the lock
    and hold it to stall the runs (the directory is made so, whatever an older release left)."""
    os.makedirs(STATE_DIR, mode=0o700, exist_ok=True)
    os.chmod(STATE_DIR, 0o700)
    os.makedirs(os.path.join(STATE_DIR, "tmp"), mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(STATE_DIR, "lock"), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def run_and_record(bundle, mode, node, result, extra=None):
    """Run the play (extra: more variables for it) and put its outcome into result."""
    # Until the play ends: a run killed half-way leaves "running", never an earlier "ok".
    write_json(os.path.join(STATE_DIR, "result.json"), dict(result, status="running"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    rc, play = run_play(bundle, mode, node, extra)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu_seconds"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
    stats = (play or {}).get("stats") or {}
    result.update(rc=rc, ok=stats.get("ok", 0), changed=stats.get("changed", 0),
                  failed=stats.get("failures", 0) + stats.get("unreachable", 0),
                  changed_tasks=(play or {}).get("changed_tasks") or [])
    if rc == 0 and play is not None:
        result["status"] = "ok"
    else:
        result["status"] = "failed"
        result["failed"] = max(result["failed"], 1)
        failed_task = (play or {}).get("failed_task") or {}
        result["failed_task"] = failed_task.get("task") or "ansible-playbook (exit status %d)" % rc
        result["message"] = failed_task.get("msg") or tail(LOG_FILE)


def bake(bundle, manifest):
    """The roles applied on an image's build instance, and the image's record of it (nothing else of the run stays)."""
    result = {"node": node_name(), "mode": "bake", "bundle": manifest.get("id"), "started": time.time(), "log": LOG_FILE}
    # The build instance has none of the cluster's storage: the roles are told what the nodes will have.
    mounts = manifest.get("mount_points")
    run_and_record(bundle, "bake", result["node"], result,
                   {"enroot_mount_points": mounts} if isinstance(mounts, dict) and mounts else None)
    boot = load_json(BOOT_RECORD) or {}
    for leftover in ("result.json", "play.json", "boot.json"):
        try:
            os.unlink(os.path.join(STATE_DIR, leftover))
        except FileNotFoundError:
            pass
    if result["status"] == "ok":
        record = {key: manifest.get(key) for key in ("id", "collection", "vars_digest", "node_rendered", "python",
                                                     "python_version", "ansible_core")}
        record.update(baked_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), ok=result["ok"], changed=result["changed"],
                      mount_points=boot.get("mount_points") or {}, tmpfiles=boot.get("tmpfiles") or [])
        write_json(IMAGE_RECORD, record)
    result["seconds"] = round(time.time() - result["started"], 2)
    return result


def result_lines(result, limit=RESULT_LINE_BYTES):
    """The result as ``MARK <node> <k>/<n> <part>`` lines of at most limit bytes (newline included), parts of its
    JSON text in order (ASCII: json.dumps escapes the rest)."""
    text = json.dumps(result, sort_keys=True)
    node = str(result["node"]).replace(" ", "_")
    room = limit - len("%s %s 9999/9999 \n" % (RESULT_MARK, node))
    if room < 100:
        raise ValueError("node name too long for a %d-byte result line: %s" % (limit, node))
    parts = [text[start:start + room] for start in range(0, len(text), room)]
    return ["%s %s %d/%d %s" % (RESULT_MARK, node, index, len(parts), part)
            for index, part in enumerate(parts, start=1)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("mode", choices=("boot", "fleet", "bake"))
    parser.add_argument("--force", action="store_true", help="run the play even when the node is up to date")
    args = parser.parse_args(argv)
    bundle = os.path.dirname(os.path.realpath(__file__))
    manifest = load_json(os.path.join(bundle, "manifest.json")) or {}
    with state_lock():
        # A boot run and a fleet-wide run never overlap on one node.
        if args.mode == "bake":
            result = bake(bundle, manifest)
        else:
            result = apply(bundle, manifest, args.mode, args.force)
            write_json(os.path.join(STATE_DIR, "result.json"), result)
    if args.mode == "fleet":
        print("\n".join(result_lines(result)), flush=True)
    else:
        print("hpc-pcluster-node-setup: %s on %s: %s (ok=%s changed=%s failed=%s)%s; log %s" % (
            args.mode, result["node"], result["status"] + (" from the image (bake %s)" % result.get("image")
                                                           if result.get("source") == "image" else ""),
            result.get("ok"), result.get("changed"),
            result.get("failed"), ", failed task: %s: %s" % (result["failed_task"], result.get("message", ""))
            if result.get("failed_task") else "", LOG_FILE), flush=True)
    return 0 if result["status"] != "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
