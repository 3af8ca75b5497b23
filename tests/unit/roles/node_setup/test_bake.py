"""The node setup baked into an image: the bake script (module node_setup_bake, the role's shell part) run for real on
this machine as a build instance, and what run.py answers at boot on a node started from the image.

The bakes and bundles here carry test_run's stand-in collection, whose node_local.yml only writes a marker; the wheels
are those of the ansible-core release node_setup_ansible_core_versions names for this machine's /usr/bin/python3,
downloaded once into the controller cache the role itself uses.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest
import yaml

from ansible_collections.hpc.pcluster.plugins.filter.node_setup import node_setup_vars_identity
from ansible_collections.hpc.pcluster.plugins.modules import node_setup_bake
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import run_module
from ansible_collections.hpc.pcluster.tests.unit.roles.node_setup import test_run

ROOT = pathlib.Path(__file__).resolve().parents[4]
FILES = ROOT / "roles" / "node_setup" / "files"
VENV = ROOT / ".venv"
SYSTEM_PYTHON = "/usr/bin/python3"

run = test_run.run  # run.py


def system_python():
    """(version, ansible-core release) of this machine's /usr/bin/python3, as the role's table gives it."""
    version = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    table = yaml.safe_load((ROOT / "roles" / "node_setup" / "defaults" / "main.yml").read_text())
    return version, table["node_setup_ansible_core_versions"].get(version)


@pytest.fixture(scope="module", name="wheels")
def wheels_fixture():
    """The wheels of that release for this machine, in the role's own cache (downloaded the first time)."""
    version, core = system_python()
    if not core:
        pytest.skip("no ansible-core release for this machine's Python %s" % version)
    directory = pathlib.Path.home() / ".cache" / "hpc-pcluster" / "wheels" / (
        "py%s-%s-ansible-core-%s" % (version, os.uname().machine, core))
    if not (directory / ".complete").exists():
        abi = "cp" + version.replace(".", "")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest",
                        str(directory), "--only-binary=:all:", "--implementation", "cp", "--python-version", version,
                        "--abi", abi, "--platform", "manylinux2014_%s" % os.uname().machine,
                        "--platform", "manylinux_2_28_%s" % os.uname().machine, "ansible-core==%s" % core, "pip"],
                       check=True, timeout=600)
        (directory / ".complete").write_text("ansible-core %s\n" % core)
    return directory, version, core


def collection_archive(tmp_path):
    """A stand-in collection packed as node_setup_archive packs one: its play writes a marker."""
    files = {"galaxy.yml": "namespace: hpc\nname: pcluster\nversion: 0.1.0\n", "playbooks/node_local.yml": test_run.PLAY,
             "plugins/callback/node_setup_result.py": (ROOT / "plugins" / "callback" / "node_setup_result.py").read_text()}
    path = tmp_path / "collection.tar.gz"
    if path.exists():
        return path
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def bake(tmp_path, wheels, variables, check_mode=False, mount_points=None):
    directory, version, core = wheels
    vars_text = yaml.safe_dump(variables)
    identity = node_setup_vars_identity(vars_text)
    return run_module(node_setup_bake, {
        "collection_archive": str(collection_archive(tmp_path)), "vars_text": vars_text,
        "run_py": str(FILES / "run.py"), "header": str(FILES / "hpc-pcluster-node-bake.sh"),
        "ansible_cfg": "[defaults]\ncallbacks_enabled = hpc.pcluster.node_setup_result\nretry_files_enabled = false\n",
        "manifest": {"collection": "c0ffee", "vars_digest": identity["vars_digest"],
                     "node_rendered": identity["node_rendered"], "python": "py%s" % version,
                     **({"mount_points": mount_points} if mount_points is not None else {})},
        "wheels": str(directory), "python": SYSTEM_PYTHON, "python_version": version, "ansible_core": core,
        "dest_dir": str(tmp_path / "bake")}, check_mode=check_mode)


def node_env(tmp_path):
    env = dict(os.environ, HPC_PCLUSTER_NODE_SETUP_STATE_DIR=str(tmp_path / "state"),
               HPC_PCLUSTER_NODE_SETUP_LOG=str(tmp_path / "log" / "node-setup.log"),
               HPC_PCLUSTER_BAKE_DIR=str(tmp_path / "work"), SLURMD_NODENAME="node-7")
    for name in ("ANSIBLE_CONFIG", "VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(name, None)
    # A successful boot releases the node's hold for setup: the stand-in scontrol keeps the reservations.
    return test_run.with_scontrol_stand_in(tmp_path, env)


def test_the_bake_script_applies_the_setup_on_the_build_instance_and_records_it(tmp_path, wheels):
    marker = tmp_path / "marker"
    # The compute nodes' storage, which the build instance lacks, goes to the roles; the play's record of what
    # they placed data by, and of their boot-time directory entries, goes into the image's.
    variables = {"marker": str(marker), "greeting": "hi", "boot_record": str(tmp_path / "state" / "boot.json"),
                 "boot_tmpfiles": ["/etc/tmpfiles.d/enroot.conf"]}
    result = bake(tmp_path, wheels, variables, mount_points={"/scratch": True, "/fsx": False})
    assert result["changed"] is True, result.get("msg")
    script = pathlib.Path(result["path"])
    assert script.name == "hpc-pcluster-node-bake-%s.sh" % result["manifest"]["id"]
    assert oct(script.stat().st_mode & 0o777) == "0o600"

    proc = subprocess.run(["bash", str(script)], env=node_env(tmp_path), capture_output=True, text=True,
                          timeout=600, check=False)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert marker.read_text() == "bake"
    assert "hpc-pcluster-node-setup: bake on node-7: ok (ok=2 changed=2 failed=0)" in proc.stdout
    record = json.loads((tmp_path / "state" / "image.json").read_text())
    assert record["id"] == result["manifest"]["id"] and record["collection"] == "c0ffee"
    assert record["vars_digest"] == result["manifest"]["vars_digest"] and record["node_rendered"] == []
    assert record["mount_points"] == {"/scratch": True, "/fsx": False}
    assert record["tmpfiles"] == ["/etc/tmpfiles.d/enroot.conf"]
    # A node's own records start at its own boot.
    assert not (tmp_path / "state" / "result.json").exists() and not (tmp_path / "state" / "boot.json").exists()
    assert not (tmp_path / "work").exists()  # the unpacked bake is gone


def test_the_same_bake_is_the_same_file_and_check_mode_writes_none(tmp_path, wheels):
    first = bake(tmp_path, wheels, {"marker": "/nonexistent"})
    again = bake(tmp_path, wheels, {"marker": "/nonexistent"})
    other = bake(tmp_path, wheels, {"marker": "/elsewhere"}, check_mode=True)

    assert again["changed"] is False and again["sha256"] == first["sha256"]
    assert other["changed"] is True and not pathlib.Path(other["path"]).exists()


def test_a_bake_for_another_python_refuses_to_run(tmp_path, wheels):
    directory, version, core = wheels
    result = bake(tmp_path, (directory, version, core), {"marker": str(tmp_path / "marker")})
    script = pathlib.Path(result["path"])
    text = script.read_bytes().replace(b"want=%s\n" % version.encode(), b"want=3.99\n", 1)
    script.write_bytes(text)

    proc = subprocess.run(["bash", str(script)], env=node_env(tmp_path), capture_output=True, text=True, timeout=120,
                          check=False)

    assert proc.returncode == 1 and "carries ansible-core for Python 3.99" in proc.stdout
    assert not (tmp_path / "marker").exists() and not (tmp_path / "state" / "image.json").exists()


# --------------------------------------------------------------------------- a node started from the image


def make_bundle(tmp_path, variables, image_record=None, bundle_id="b1"):
    """test_run's bundle with a manifest as stage.yml writes one (the variables' identity) and, optionally, the
    record of the image the node started from."""
    top = test_run.make_bundle(tmp_path, variables, bundle_id)
    bundle = top / "bundles" / bundle_id
    identity = node_setup_vars_identity((bundle / "vars.yml").read_text())
    (bundle / "manifest.json").write_text(json.dumps(dict(identity, id=bundle_id, collection="c0ffee")))
    if image_record is not None:
        state = tmp_path / "state"
        state.mkdir(exist_ok=True)
        record = dict({"id": "bake1", "collection": "c0ffee", "baked_at": "2026-12-04T21:00:00+0000"}, **image_record)
        (state / "image.json").write_text(json.dumps(record))
    return bundle


def run_node(tmp_path, bundle, *args):
    return subprocess.run([str(VENV / "bin" / "python"), str(bundle / "run.py"), *args], env=node_env(tmp_path),
                          capture_output=True, text=True, timeout=300, check=False)


def digest(variables):
    """The vars_digest of the variables as test_run writes them (JSON)."""
    return node_setup_vars_identity(json.dumps(variables))["vars_digest"]


def test_a_node_of_an_image_that_carries_the_bundle_is_up_to_date_at_boot_without_the_roles(tmp_path):
    marker = tmp_path / "marker"
    variables = {"marker": str(marker), "pcluster_cluster_name": "c1", "node_setup_head_node": "c1-head"}
    # The image was baked before the cluster existed: its context differs, what a node applies does not.
    baked = {"marker": str(marker), "pcluster_cluster_name": "other", "node_setup_head_node": "other-head"}
    bundle = make_bundle(tmp_path, variables, {"vars_digest": digest(baked), "node_rendered": []})
    # Held for setup by an earlier boot of the node's name (a replaced static node keeps its reservation).
    (tmp_path / "slurm").mkdir()
    (tmp_path / "slurm" / "hpc-pcluster-node-setup-node-7").write_text("held\n")

    proc = run_node(tmp_path, bundle, "boot")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "boot on node-7: up-to-date from the image (bake bake1) (ok=0 changed=0 failed=0)" in proc.stdout
    # What the image holds is the node's setup: the node takes jobs again.
    assert not test_run.held(node_env(tmp_path))
    assert not marker.exists()
    result = json.loads((tmp_path / "state" / "result.json").read_text())
    assert result["status"] == "up-to-date" and result["source"] == "image" and result["bundle"] == "b1"
    log = (tmp_path / "log" / "node-setup.log").read_text()
    assert "boot node-7 bundle b1: up-to-date from the image (bake bake1 of 2026-12-04T21:00:00+0000): the roles did not run" in log
    # The fleet job afterwards: the node applied nothing since, and says so at once.
    fleet = run_node(tmp_path, bundle, "fleet")
    assert '"status": "up-to-date"' in fleet.stdout and not marker.exists()


def test_the_directories_on_storage_emptied_at_boot_are_made_again_before_the_image_answers(tmp_path):
    marker = tmp_path / "marker"
    variables = {"marker": str(marker)}
    # As the enroot role writes it: instance storage (here a directory of the test's) is empty at each boot.
    scratch = tmp_path / "scratch"
    tmpfiles = tmp_path / "enroot-tmpfiles.conf"
    tmpfiles.write_text("d %s/enroot 0755 root root -\nd %s/enroot/tmp 1777 root root -\n" % (scratch, scratch))
    bundle = make_bundle(tmp_path, variables, {
        "vars_digest": digest(variables), "node_rendered": [], "mount_points": {"/proc": True, "/proc/nonexistent": False},
        "tmpfiles": [str(tmpfiles), str(tmp_path / "pyxis-tmpfiles.conf")]})  # one the roles did not write: skipped

    proc = run_node(tmp_path, bundle, "boot")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up-to-date from the image (bake bake1)" in proc.stdout and not marker.exists()
    assert oct((scratch / "enroot" / "tmp").stat().st_mode & 0o7777) == "0o1777"
    assert oct((scratch / "enroot").stat().st_mode & 0o7777) == "0o755"


def test_a_node_without_the_storage_the_image_was_baked_for_runs_the_roles(tmp_path):
    marker = tmp_path / "marker"
    variables = {"marker": str(marker)}
    # Baked for instance storage on a path that is not a mount point here (an instance type without it).
    bundle = make_bundle(tmp_path, variables, {"vars_digest": digest(variables), "node_rendered": [],
                                               "mount_points": {str(tmp_path): True, "/proc": True}})

    proc = run_node(tmp_path, bundle, "boot")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert marker.read_text() == "boot"
    result = json.loads((tmp_path / "state" / "result.json").read_text())
    assert result["status"] == "ok" and result["image_differs"] == [
        "%s is not a mount point here, one on the nodes the image was baked for" % tmp_path]
    assert "carries another setup - %s is not a mount point here" % tmp_path in (
        tmp_path / "log" / "node-setup.log").read_text()


def test_boot_directories_that_cannot_be_made_run_the_roles(tmp_path):
    marker = tmp_path / "marker"
    variables = {"marker": str(marker)}
    broken = tmp_path / "broken-tmpfiles.conf"
    broken.write_text("d relative/path 0755 root root -\n")
    bundle = make_bundle(tmp_path, variables, {"vars_digest": digest(variables), "node_rendered": [],
                                               "tmpfiles": [str(broken)]})

    proc = run_node(tmp_path, bundle, "boot")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert marker.read_text() == "boot"
    result = json.loads((tmp_path / "state" / "result.json").read_text())
    assert result["status"] == "ok"
    assert result["image_differs"][0].startswith("its directories on storage emptied at boot could not be created")
    assert "but systemd-tmpfiles failed (exit status" in (tmp_path / "log" / "node-setup.log").read_text()


def test_mount_points_are_read_from_the_mount_table_with_its_escapes(tmp_path):
    table = tmp_path / "mountinfo"
    table.write_text("22 1 0:21 / / rw - overlay overlay rw\n"
                     "30 22 0:30 / /mnt/with\\040space rw - tmpfs tmpfs rw\n")
    assert run.mount_points(str(table)) == {"/", "/mnt/with space"}
    assert run.mount_points(str(tmp_path / "missing")) == set()
    assert run.storage_differences({"mount_points": {"/": True, "/scratch": True, "/fsx": False}}, {"/"}) == [
        "/scratch is not a mount point here, one on the nodes the image was baked for"]


def test_variables_the_image_does_not_carry_are_applied_at_boot(tmp_path):
    marker = tmp_path / "marker"
    bundle = make_bundle(tmp_path, {"marker": str(marker), "greeting": "new"},
                         {"vars_digest": digest({"marker": str(marker), "greeting": "old"}), "node_rendered": []})

    proc = run_node(tmp_path, bundle, "boot")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert marker.read_text() == "boot"
    result = json.loads((tmp_path / "state" / "result.json").read_text())
    assert result["status"] == "ok" and result["image_differs"][0].startswith("the variables (image ")
    assert "carries another setup - the variables" in (tmp_path / "log" / "node-setup.log").read_text()


def test_another_collection_or_node_rendered_variables_run_the_roles_too(tmp_path):
    marker = tmp_path / "marker"
    variables = {"marker": str(marker)}
    other = make_bundle(tmp_path / "a", variables, {"vars_digest": digest(variables), "collection": "beef"})
    rendered = make_bundle(tmp_path / "b", variables, {"vars_digest": digest(variables),
                                                       "node_rendered": ["docker_daemon_options"]})

    for top, bundle, reason in ((tmp_path / "a", other, "the collection (image beef, bundle c0ffee)"),
                                (tmp_path / "b", rendered, "variables each node renders for itself")):
        assert run_node(top, bundle, "boot").returncode == 0
        result = json.loads((top / "state" / "result.json").read_text())
        assert result["status"] == "ok" and any(d.startswith(reason) for d in result["image_differs"])


def test_the_image_answers_only_while_nothing_else_was_applied_since_boot(tmp_path):
    marker = tmp_path / "marker"
    baked = {"marker": str(marker), "greeting": "baked"}
    record = {"vars_digest": digest(baked), "node_rendered": []}
    make_bundle(tmp_path, {"marker": str(marker), "greeting": "other"}, record, bundle_id="b1")
    assert run_node(tmp_path, tmp_path / "node-setup" / "bundles" / "b1", "boot").returncode == 0
    assert marker.read_text() == "boot"
    # A later bundle equal to the image: the node holds b1's setup now, not the image's; the play runs.
    bundle = make_bundle(tmp_path / "next", baked, bundle_id="b2")

    fleet = run_node(tmp_path, bundle, "fleet")

    assert '"status": "ok"' in fleet.stdout and marker.read_text() == "fleet"


def test_image_differences_name_what_differs():
    manifest = {"collection": "c1", "vars_digest": "v1"}

    assert run.image_differences({"collection": "c1", "vars_digest": "v1"}, manifest) == []
    assert run.image_differences({"collection": "c1", "vars_digest": "v1"}, {"collection": "c1"}) == [
        "the variables (image v1, bundle None)"]  # a bundle staged before manifests named their variables
    assert run.image_differences(None, manifest) == ["the image carries no baked setup"]
