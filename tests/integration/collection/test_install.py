"""The collection builds, installs and is usable by its FQCNs outside this checkout."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(sys.executable).parent


def run(args, cwd, env):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_build_install_and_use_by_fqcn(tmp_path):
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(config))
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    build = run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(ROOT)], tmp_path, env)
    assert build.returncode == 0, build.stderr
    tarball = next(tmp_path.glob("hpc-pcluster-*.tar.gz"))

    members = subprocess.run(["tar", "tzf", str(tarball)], capture_output=True, text=True, check=True).stdout.split()
    assert not [m for m in members if m.startswith(("collections/", ".venv/", "sandbox/.state/", "reports/"))]

    dest = tmp_path / "installed"
    install = run(["ansible-galaxy", "collection", "install", "--no-deps", "-p", str(dest), str(tarball)], tmp_path, env)
    assert install.returncode == 0, install.stderr
    env["ANSIBLE_COLLECTIONS_PATH"] = str(dest)

    for module in ("cluster", "cluster_info", "compute_fleet", "config_validate"):
        doc = run(["ansible-doc", f"hpc.pcluster.{module}"], tmp_path, env)
        assert doc.returncode == 0, doc.stderr
        assert f"hpc.pcluster.{module}" in doc.stdout

    inventory_doc = run(["ansible-doc", "-t", "inventory", "hpc.pcluster.nodes"], tmp_path, env)
    assert inventory_doc.returncode == 0, inventory_doc.stderr

    syntax = run(["ansible-playbook", "--syntax-check", "-i", "localhost,", "hpc.pcluster.deploy"], tmp_path, env)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
