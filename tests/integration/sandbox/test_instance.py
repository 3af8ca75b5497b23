"""A second sandbox instance of its own (own state dir): it runs beside the default one, and
`down` leaves no process, namespace, veth, route, mount, port or directory behind."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
SANDBOX_PY = str(ROOT / "sandbox" / "sandbox.py")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")


def sandbox_cmd(*args, **kwargs):
    return subprocess.run([PYTHON, SANDBOX_PY, *args], capture_output=True, text=True, timeout=180, check=False,
                          **kwargs)


def live_pids(pids):
    """Those of pids that are still processes (zombies waiting for PID 1 do not count)."""
    alive = []
    for pid in pids:
        try:
            state = pathlib.Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def pids_in_namespaces(inodes):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat("/proc/%s/ns/net" % entry).st_ino in inodes:
                    found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("instance") / "state"
    # Without the vendored archives: the stand-ins, and the reason in the output and the state.
    up = sandbox_cmd("up", "--state-dir", str(state_dir), "--compute-nodes", "1", "--gpus-per-node", "0",
                     "--vendor-dir", str(state_dir.parent / "no-vendor"))
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((state_dir / "state.json").read_text())
    # The head node's namespace and one per instance the hypervisor booted, all named with the instance's prefix.
    net_inodes = {os.stat("/run/netns/%s" % name).st_ino for name in os.listdir("/run/netns")
                  if name.startswith(state["netns_prefix"])}
    yield {"state_dir": state_dir, "state": state, "net_inodes": net_inodes, "up": up}
    sandbox_cmd("down", "--state-dir", str(state_dir))


def test_instance_runs_beside_the_default_one(instance, sandbox):
    state = instance["state"]
    assert state["index"] != sandbox.index
    assert state["endpoint_url"] != sandbox.endpoint_url
    assert not set(state["netns"]) & set(sandbox.netns)
    assert state["netns_prefix"] != sandbox.netns_prefix
    assert state["vpc_cidr"] != sandbox.vpc_cidr
    status = sandbox_cmd("status", "--state-dir", str(instance["state_dir"]))
    assert status.returncode == 0 and "running" in status.stdout


def test_pyxis_is_installed_but_not_enabled(instance):
    head = instance["state"]["holders"]["head"]
    root = pathlib.Path("/proc/%d/root" % head)
    assert (root / "usr/local/lib/slurm/spank_pyxis.so").is_file()
    assert not (root / "opt/slurm/etc/plugstack.conf").exists()
    assert list((root / "opt/slurm/etc/plugstack.conf.d").iterdir()) == []
    # The host's own files are untouched.
    assert not pathlib.Path("/usr/local/lib/slurm/spank_pyxis.so").exists()
    assert not pathlib.Path("/opt/slurm").exists()


def test_without_the_vendored_archives_the_stand_ins_are_used_and_said(instance):
    state = instance["state"]
    layer = state["containers"]["ami"]
    assert not layer["real"] and layer["pyxis"] == "stand-in" and layer["enroot"] is None
    assert "no-vendor" in layer["fallback"] and "--vendor-dir" in layer["fallback"]
    assert "Enroot and Pyxis are the stand-ins: " in instance["up"].stdout
    for check in ("enroot", "pyxis_plugin", "pyxis_loaded", "container_smoke"):
        assert layer["fallback"] in state["verify_not_available"][check], check
    assert state["containers"]["image"] == ""
    root = pathlib.Path("/proc/%d/root" % state["holders"]["head"])
    assert not (root / "usr/bin/enroot").exists()


def test_a_node_s_root_is_its_own(instance):
    state = instance["state"]
    head = pathlib.Path("/proc/%d/root" % state["holders"]["head"])
    compute = pathlib.Path("/proc/%d/root" % state["holders"][state["compute_nodes"][0]])
    (head / "usr" / "share" / "hpc-pcluster-root-test").write_text("head\n")
    assert not (compute / "usr" / "share" / "hpc-pcluster-root-test").exists()
    assert not pathlib.Path("/usr/share/hpc-pcluster-root-test").exists()
    # What the head node wrote is in its own directory under the state dir, which down removes.
    upper = instance["state_dir"] / "roots" / state["head_name"] / "upper" / "usr" / "share" / "hpc-pcluster-root-test"
    assert upper.read_text() == "head\n"


def test_down_leaves_nothing_behind(instance):
    state, state_dir = instance["state"], instance["state_dir"]
    # The registry and ECR's API front too (registry.py), which run whether the real chain is there or not.
    registry_pids = state["containers"]["registry"].get("pids", [])
    pids = [state[key] for key in ("moto_pid", "hypervisor_pid", "forwarder_pid")] + list(state["holders"].values())
    in_ns = pids_in_namespaces(instance["net_inodes"])
    assert len(instance["net_inodes"]) == 2, "the head node and the static node's instance should have namespaces"
    assert in_ns, "the instance should have processes before down"
    assert len(live_pids(pids)) == len(pids), "moto, the hypervisor, the forwarder and the nodes should run before down"
    assert len(live_pids(registry_pids)) == 2 or state["containers"]["registry"]["note"], state["containers"]["registry"]
    port = int(state["endpoint_url"].rsplit(":", 1)[1])

    down = sandbox_cmd("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stdout + down.stderr

    assert live_pids(pids + registry_pids + in_ns) == []
    assert pids_in_namespaces(instance["net_inodes"]) == []
    netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    assert [n for n in netns if n.startswith(state["netns_prefix"])] == []
    assert not os.path.exists("/sys/class/net/%s" % state["host_veth"])
    routes = subprocess.run(["ip", "route", "show"], capture_output=True, text=True, check=True).stdout
    assert state["vpc_cidr"] not in routes and state["head_ip"] not in routes
    mounts = pathlib.Path("/proc/self/mountinfo").read_text()
    assert str(state_dir) not in mounts
    assert not list(pathlib.Path("/sys/fs/cgroup").glob("*/%s" % state["containers"]["docker_cgroup_root"]))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not state_dir.exists()
    registry = pathlib.Path("/run/hpc-pcluster-sandbox/instance-%d.json" % state["index"])
    assert not registry.exists()


def test_status_and_down_without_a_sandbox(tmp_path):
    status = sandbox_cmd("status", "--state-dir", str(tmp_path / "none"))
    assert status.returncode == 3 and "not running" in status.stdout
    down = sandbox_cmd("down", "--state-dir", str(tmp_path / "none"))
    assert down.returncode == 0 and "nothing to do" in down.stdout


def test_up_without_root_says_so(tmp_path):
    proc = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "/usr/bin/python3", SANDBOX_PY, "up", "--state-dir", str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert "needs root" in proc.stdout
    assert not (tmp_path / "state").exists()


def test_up_refuses_dynamic_nodes_with_power_saving_off_before_starting_anything(tmp_path):
    # ScaledownIdletime -1 makes ParallelCluster write SuspendTime=-1: Slurm would never power a dynamic node up.
    proc = sandbox_cmd("up", "--state-dir", str(tmp_path / "state"), "--dynamic-nodes", "1", "--scaledown-idletime", "-1")
    assert proc.returncode == 1
    assert "--scaledown-idletime -1" in proc.stdout and "--dynamic-nodes" in proc.stdout and "1 or more" in proc.stdout
    assert not (tmp_path / "state").exists()
