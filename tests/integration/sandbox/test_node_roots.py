"""The default sandbox's nodes each have a root file system of their own over the "AMI" layer.

A role or a package install on one node changes that node only: not the other nodes, not this
machine. The AMI layer gives every node the real Enroot and Pyxis (built from the vendored
archives), as a ParallelCluster AMI ships them: present, not enabled."""

from __future__ import annotations

import json
import pathlib
import secrets
import shlex
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def on_compute(sandbox, node, command, check=True):
    """A shell command on one compute node, as a Slurm job step from the head node."""
    return sandbox.ssh("srun --quiet --nodelist=%s sh -c %s" % (node, shlex.quote(command)), check=check)


def ansible(sandbox, limit, *args):
    argv = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(sandbox.inventory_dir), "--limit", limit, *args]
    return sandbox.run(argv, timeout=600, cwd=str(ROOT))


@pytest.fixture(name="real_chain")
def fixture_real_chain(sandbox):
    layer = sandbox.state["containers"]["ami"]
    if not layer["real"]:
        pytest.skip("this sandbox runs the stand-ins: %s" % layer["fallback"])
    return layer


def test_a_role_writing_on_one_compute_node_changes_that_node_only(sandbox, tmp_path):
    conf_dir = "/etc/hpc-pcluster-isolation-%s" % secrets.token_hex(4)
    playbook = tmp_path / "enroot.yml"
    playbook.write_text("- hosts: compute\n  gather_facts: true\n  gather_subset: [min]\n"
                        "  roles: [{role: hpc.pcluster.enroot}]\n")
    run = ansible(sandbox, "compute[0]", str(playbook), "-e", json.dumps({"enroot_conf_dir": conf_dir}))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # Exactly one compute node has the file: the one the role ran on.
    seen = {node: on_compute(sandbox, node, "cat %s/enroot.conf 2>/dev/null || true" % conf_dir).stdout
            for node in sandbox.compute_nodes}
    assert [text.startswith("# Ansible managed") for text in seen.values()].count(True) == 1, seen
    assert sorted(seen.values())[:-1] == [""] * (len(seen) - 1), seen
    assert sandbox.ssh("test ! -e %s" % conf_dir, check=False).returncode == 0
    assert not pathlib.Path(conf_dir).exists()


def test_a_package_installed_on_one_compute_node_is_there_only(sandbox):
    if sandbox.state["containers"]["proxy"]["note"]:
        pytest.skip(sandbox.state["containers"]["proxy"]["note"])
    first = sandbox.compute_nodes[0]
    package = "sl"  # small, and not something this machine or the nodes have
    status = "dpkg-query -W -f '${Status}' %s 2>/dev/null || true" % package
    host = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True, check=False)
    assert "install ok installed" not in host.stdout, "this machine has %s; the test needs a package it lacks" % package
    out = on_compute(sandbox, first, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q %s >/dev/null && %s"
                     % (package, status), check=False)
    assert out.returncode == 0 and out.stdout == "install ok installed", out.stdout + out.stderr
    # /usr and /var of the node changed: the program and dpkg's record are there, nowhere else.
    assert on_compute(sandbox, first, "test -x /usr/games/sl && echo yes").stdout.strip() == "yes"
    for other in sandbox.compute_nodes[1:]:
        assert on_compute(sandbox, other, status).stdout == "", other
    assert sandbox.ssh(status).stdout == ""
    assert not pathlib.Path("/usr/games/sl").exists()
    host = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True, check=False)
    assert "install ok installed" not in host.stdout


def test_every_node_has_the_ami_s_enroot_and_pyxis_and_not_this_machine_s_usr_local(sandbox, real_chain):
    n = len(sandbox.compute_nodes)
    probe = ("echo $(enroot version) $(command -v enroot) "
             "$(strings /usr/local/lib/slurm/spank_pyxis.so | grep -c '^pyxis: version v%s$') "
             # The head node's /usr/local/bin also has ParallelCluster's fleet status scripts (its bootstrap writes them).
             "$(ls /usr/local/bin 2>/dev/null | grep -v '^\\(get\\|update\\)-compute-fleet-status.sh$' | tr '\\n' ,) "
             "$(test -e /opt/parallelcluster/examples/pyxis/pyxis.conf && echo ex)"
             % real_chain["pyxis"])
    head = sandbox.ssh(probe).stdout.split()
    computes = sandbox.ssh("srun --quiet --nodes=%d --ntasks-per-node=1 sh -c %s" % (n, shlex.quote(probe))).stdout
    # /usr/local/bin holds only what the layer puts there: the AMI's AWS CLI (linked to Debian's awscli).
    assert head == ["4.1.2", "/usr/bin/enroot", "1", "aws,", "ex"]
    assert [line.split() for line in computes.strip().splitlines()] == [head] * n
    # This machine has neither: they come from the layer.
    assert not pathlib.Path("/usr/bin/enroot").exists()
    assert not pathlib.Path("/usr/local/lib/slurm/spank_pyxis.so").exists()


def test_the_container_image_is_on_shared_storage(sandbox, real_chain):
    image = sandbox.state["containers"]["image"]
    assert image.startswith("/fsx/")
    out = sandbox.ssh("unsquashfs -l %s | grep -c '^squashfs-root/bin/busybox$'" % image).stdout.strip()
    assert out == "1"
    group_vars = (sandbox.inventory_dir / "group_vars" / "all" / "sandbox_only.yml").read_text()
    assert "verify_container_smoke_image: %s" % image in group_vars


def test_packing_enroot_beside_a_running_sandbox_keeps_the_layer_it_runs_on(sandbox, real_chain, tmp_path):
    # The enroot role's package scenario packs the layer's Enroot while sandboxes run: it must not
    # prune (or rebuild and prune) the layer under their nodes.
    run = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "sandbox" / "ami.py"), "enroot-deb",
                          str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["name"].startswith("enroot_4.1.2-1_")
    assert pathlib.Path(real_chain["path"], "usr", "bin", "enroot").exists()
    assert sandbox.ssh("enroot version").stdout.strip() == "4.1.2"
