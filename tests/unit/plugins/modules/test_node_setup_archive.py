"""hpc.pcluster.node_setup_archive run in-process on directory trees and on this collection."""

from __future__ import annotations

import os
import pathlib
import tarfile

from ansible_collections.hpc.pcluster.plugins.modules import node_setup_archive
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import run_module

ROOT = pathlib.Path(__file__).resolve().parents[4]


def run(check_mode=False, **args):
    result = run_module(node_setup_archive, args, check_mode=check_mode)
    return bool(result.get("failed")), result


def tree(base):
    (base / "roles" / "r" / "tasks").mkdir(parents=True)
    (base / "roles" / "r" / "files").mkdir()
    (base / "galaxy.yml").write_text("namespace: hpc\nname: pcluster\n")
    (base / "roles" / "r" / "tasks" / "main.yml").write_text("---\n")
    (base / "roles" / "r" / "files" / "run.sh").write_text("true\n")
    (base / "roles" / "r" / "files" / "run.sh").chmod(0o755)
    (base / "tests").mkdir()
    (base / "tests" / "big.bin").write_bytes(b"x" * 1000)
    (base / "roles" / "r" / "__pycache__").mkdir()
    (base / "roles" / "r" / "__pycache__" / "m.cpython-312.pyc").write_bytes(b"\0")
    (base / "collections" / "ansible_collections" / "hpc").mkdir(parents=True)
    (base / "collections" / "ansible_collections" / "hpc" / "pcluster").symlink_to("../../..")
    (base / "roles" / "link.yml").symlink_to("../galaxy.yml")
    return base


def test_same_files_same_bytes_wherever_and_whenever_they_are(tmp_path):
    first, second = tree(tmp_path / "a"), tree(tmp_path / "b")
    os.utime(second / "galaxy.yml", (0, 0))
    _failed, one = run(src=str(first), dest_dir=str(tmp_path / "out1"))
    _failed, two = run(src=str(second), dest_dir=str(tmp_path / "out2"))
    assert one["changed"] and one["digest"] == two["digest"] and one["files"] == 3
    assert pathlib.Path(one["path"]).read_bytes() == pathlib.Path(two["path"]).read_bytes()
    assert pathlib.Path(one["path"]).name == "hpc-pcluster-%s.tar.gz" % one["digest"][:16]
    with tarfile.open(one["path"]) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == ["galaxy.yml", "roles", "roles/r", "roles/r/files", "roles/r/files/run.sh",
                               "roles/r/tasks", "roles/r/tasks/main.yml"]
    # Root's only: the bundle is unpacked on storage every user of the cluster can reach.
    assert {name: m.mode for name, m in members.items()} == {
        "galaxy.yml": 0o600, "roles": 0o700, "roles/r": 0o700, "roles/r/files": 0o700, "roles/r/files/run.sh": 0o700,
        "roles/r/tasks": 0o700, "roles/r/tasks/main.yml": 0o600}
    assert {m.uid for m in members.values()} == {0} and len({m.mtime for m in members.values()}) == 1
    _failed, again = run(src=str(first), dest_dir=str(tmp_path / "out1"))
    assert not again["changed"] and again["path"] == one["path"]


def test_content_or_mode_changes_the_digest(tmp_path):
    base = tree(tmp_path / "a")
    digests = [run(src=str(base), dest_dir=str(tmp_path / "out"))[1]["digest"]]
    (base / "roles" / "r" / "files" / "run.sh").chmod(0o644)
    digests.append(run(src=str(base), dest_dir=str(tmp_path / "out"))[1]["digest"])
    (base / "galaxy.yml").write_text("namespace: hpc\nname: other\n")
    digests.append(run(src=str(base), dest_dir=str(tmp_path / "out"))[1]["digest"])
    assert len(set(digests)) == 3


# What a controller's checkout of the collection holds besides the collection: none of it is packed.
PLANTED = {
    ".vault_pass": "vault-password-SECRET", ".env": "AWS_SECRET_ACCESS_KEY=SECRET", "ansible.log": "SECRET in a log",
    "ansible.cfg": "[defaults]\nvault_password_file = .vault_pass\n", "my-key.pem": "-----BEGIN SECRET-----",
    "inventory/host_vars/head.yml": "ansible_become_password: SECRET",
    "inventory/group_vars/all/vault.yml": "vault_docker_password: SECRET",
    "roles/r/files/id_rsa.key": "SECRET", "roles/r/.env": "SECRET=1", "roles/r/defaults/.vault_pass": "SECRET",
    "roles/r/tasks/main.yml.orig": "SECRET", "playbooks/debug.log": "SECRET", "plugins/.secrets/token": "SECRET",
    "roles/r/molecule/default/converge.yml": "SECRET", "reports/latest/report.json": "SECRET",
}


def test_secrets_planted_in_the_checkout_are_not_packed(tmp_path):
    base = tree(tmp_path / "a")
    for name, content in PLANTED.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(content)
    _failed, result = run(src=str(base), dest_dir=str(tmp_path / "out"))
    with tarfile.open(result["path"]) as tar:
        names = tar.getnames()
        contents = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    assert result["files"] == 3 and not [n for n in names if n.split("/")[-1] in {p.split("/")[-1] for p in PLANTED}]
    assert b"SECRET" not in contents


def test_check_mode_writes_nothing_and_a_directory_that_is_no_collection_is_refused(tmp_path):
    base = tree(tmp_path / "a")
    _failed, result = run(check_mode=True, src=str(base), dest_dir=str(tmp_path / "out"))
    assert result["changed"] and not (tmp_path / "out").exists()
    failed, result = run(src=str(tmp_path / "a" / "roles"), dest_dir=str(tmp_path / "out"))
    assert failed and "holds neither galaxy.yml nor MANIFEST.json" in result["msg"]


def test_this_collection_packs_its_roles_plugins_and_playbooks_and_nothing_of_the_checkout(tmp_path):
    _failed, result = run(src=str(ROOT), dest_dir=str(tmp_path))
    with tarfile.open(result["path"]) as tar:
        names = tar.getnames()
    assert "playbooks/node_local.yml" in names and "plugins/callback/node_setup_result.py" in names
    assert "roles/node_setup/files/run.py" in names and "roles/pyxis/tasks/main.yml" in names
    assert {n.split("/")[0] for n in names} == {"galaxy.yml", "meta", "plugins", "roles", "playbooks"}
    assert not [n for n in names if "/molecule" in n or "__pycache__" in n]
    assert not [n for n in names if "/molecule/" in n or n.endswith(".pyc")]
