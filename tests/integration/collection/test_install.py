"""The built collection: what the tarball holds, installing it with its dependency, using it by FQCN from
there (every documented plugin, the deploy playbook), and an execution environment made with it."""

import json
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(sys.executable).parent
# Where `make setup` unpacks amazon.aws, the collection's one dependency (Galaxy is not reachable here).
AMAZON_AWS_PATH = pathlib.Path(sys.prefix) / "share" / "ansible" / "collections"

# The development tree: none of it belongs in what users install.
DEV_ONLY = ["Makefile", "pytest.ini", ".gitignore", ".ansible-lint", ".yamllint", "ansible.cfg", "deploy.yml",
            "requirements-dev.txt", "scripts/", "bench/", "sandbox/", "collections/", ".venv/", ".ci/", "reports/",
            "roles/docker/molecule/", "roles/enroot/molecule/", "roles/pyxis/molecule/", "changelogs/.plugin-cache.yaml"]
# What an installed collection holds.
SHIPPED = ["README.md", "CHANGELOG.md", "COPYING", "MANIFEST.json", "FILES.json", "requirements.txt",
           "bindep.txt", "meta/runtime.yml", "meta/execution-environment.yml", "changelogs/changelog.yaml",
           "changelogs/config.yaml", "plugins/inventory/nodes.py", "plugins/plugin_utils/node_names.py",
           "playbooks/deploy.yml", "roles/verify/tasks/main.yml", "docs/inventory.md", "tests/unit/"]


def run(args, cwd, env):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("collection")
    config = work / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(config))
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    build = run(["ansible-galaxy", "collection", "build", "--output-path", str(work), str(ROOT)], work, env)
    assert build.returncode == 0, build.stderr
    tarball = next(work.glob("hpc-pcluster-*.tar.gz"))
    dest = work / "installed"
    # With the dependency resolved (amazon.aws already installed where `make setup` put it), not --no-deps:
    # this also checks that galaxy.yml's version range accepts the amazon.aws the project tests with.
    env["ANSIBLE_COLLECTIONS_PATH"] = f"{dest}:{AMAZON_AWS_PATH}"
    install = run(["ansible-galaxy", "collection", "install", "-p", str(dest), str(tarball)], work, env)
    assert install.returncode == 0, install.stdout + install.stderr
    return tarball, dest / "ansible_collections" / "hpc" / "pcluster", env, work


def test_the_tarball_holds_what_users_run_and_no_development_files(built):
    tarball = built[0]
    with tarfile.open(tarball) as archive:
        members = set(archive.getnames())
    present = [m for m in members for dev in DEV_ONLY if m == dev.rstrip("/") or m.startswith(dev.rstrip("/") + "/")]
    assert not present, "development files in %s: %s" % (tarball.name, sorted(present))
    missing = [s for s in SHIPPED if not any(m == s.rstrip("/") or m.startswith(s) for m in members)]
    assert not missing, missing
    manifest = json.loads(tarfile.open(tarball).extractfile("MANIFEST.json").read())
    assert manifest["collection_info"]["dependencies"] == {"amazon.aws": ">=11.1.0,<12.0.0"}
    assert manifest["collection_info"]["license"] == ["GPL-3.0-or-later"]


# What a user may keep in a checkout beside the collection: none of it may travel in the tarball.
USERS_FILES = ["my-site.yml", "host_vars/head.yml", "group_vars/all.yml", "inventory/group_vars/all/mine.yml",
               "inventory/host_vars/head.yml", "inventory/my_nodes.yml", "playbooks/my-site.yml", "pcluster.pem",
               ".vault_pass", ".env", "ansible.log", "docs/keys/id.pem", "roles/verify/tasks/notes.log"]


def test_a_build_packs_the_collection_and_none_of_the_users_files(built, tmp_path):
    env = built[2]
    checkout = tmp_path / "checkout"
    for name in run(["git", "ls-files"], ROOT, env).stdout.splitlines():
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            (checkout / name).write_bytes(source.read_bytes())
    for name in USERS_FILES:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text("secret: do-not-ship\n")
    (tmp_path / "out").mkdir()
    build = run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path / "out"), str(checkout)],
                tmp_path, env)
    assert build.returncode == 0, build.stderr
    with tarfile.open(next((tmp_path / "out").glob("hpc-pcluster-*.tar.gz"))) as archive:
        planted = set(archive.getnames())
        example = yaml.safe_load(archive.extractfile("inventory/group_vars/all/cluster.yml"))
    with tarfile.open(built[0]) as archive:
        clean = set(archive.getnames())
    assert not [name for name in USERS_FILES if name in planted]
    assert planted == clean
    # The example inventory ships placeholders, never an account's values.
    assert example["pcluster_region"] == "" and example["cluster_config_public_subnet_id"] == ""
    assert example["cluster_config_ssh_key_name"] == ""


def plugins_of(kind, env, cwd):
    listing = run(["ansible-doc", "-t", kind, "--list", "hpc.pcluster", "--json"], cwd, env)
    assert listing.returncode == 0, listing.stderr
    return sorted(json.loads(listing.stdout))


def test_every_plugin_is_documented_from_the_installed_collection(built):
    installed, env, work = built[1], built[2], built[3]
    expected = {
        "module": {"hpc.pcluster." + p.stem for p in (ROOT / "plugins" / "modules").glob("*.py")},
        "inventory": {"hpc.pcluster." + p.stem for p in (ROOT / "plugins" / "inventory").glob("*.py")},
        "filter": {"hpc.pcluster." + p.stem for p in (ROOT / "plugins" / "filter").glob("*.yml")},
    }
    for kind, names in expected.items():
        listed = plugins_of(kind, env, work)
        assert set(listed) >= names, (kind, sorted(names - set(listed)))
        # One ansible-doc run per kind, with every plugin of that kind.
        doc = run(["ansible-doc", "-t", kind, "--json"] + listed, work, env)
        assert doc.returncode == 0, (kind, doc.stderr)
        docs = json.loads(doc.stdout)
        assert sorted(docs) == listed, (kind, sorted(docs))
        for name in listed:
            body = docs[name]
            assert body["doc"]["short_description"], name
            # Loaded from the installed copy, not from this checkout.
            assert str(installed) in body["doc"]["filename"], (name, body["doc"]["filename"])


def test_the_deploy_playbook_loads_from_the_installed_collection(built):
    env, work = built[2], built[3]
    syntax = run(["ansible-playbook", "--syntax-check", "-i", "localhost,", "hpc.pcluster.deploy"], work, env)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr


def test_an_execution_environment_build_context_with_the_collection(built, tmp_path):
    """ansible-builder create on the shipped definition (with the built tarball in place of Galaxy), then the
    requirement scan the image build runs, over the installed collection: it must find what
    meta/execution-environment.yml names."""
    tarball, installed, env = built[0], built[1], built[2]
    example = ROOT / "docs" / "execution-environment"
    definition = yaml.safe_load((example / "execution-environment.yml").read_text())
    assert definition["version"] == 3 and definition["dependencies"]["galaxy"] == "requirements.yml"
    shipped = yaml.safe_load((example / "requirements.yml").read_text())["collections"]
    assert {c["name"] for c in shipped} == {"hpc.pcluster", "amazon.aws"}
    (tmp_path / "execution-environment.yml").write_text(yaml.safe_dump(definition))
    (tmp_path / "requirements.yml").write_text(yaml.safe_dump({"collections": [
        {"name": str(tarball), "type": "file"}] + [c for c in shipped if c["name"] != "hpc.pcluster"]}))
    create = run(["ansible-builder", "create", "-f", "execution-environment.yml", "-c", "context",
                  "--output-filename", "Containerfile"], tmp_path, env)
    assert create.returncode == 0, create.stdout + create.stderr
    context = tmp_path / "context"
    containerfile = (context / "Containerfile").read_text()
    assert "FROM quay.io/ansible/awx-ee:24.6.1" in containerfile.replace("$EE_BASE_IMAGE", "").replace(
        'ARG EE_BASE_IMAGE="quay.io/ansible/awx-ee:24.6.1"', "FROM quay.io/ansible/awx-ee:24.6.1")
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect" in containerfile
    assert yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"][0]["type"] == "file"
    scan = run([sys.executable, str(context / "_build" / "scripts" / "introspect.py"), "introspect",
                str(installed.parents[2])], tmp_path, env)
    assert scan.returncode == 0, scan.stdout + scan.stderr
    found = yaml.safe_load(scan.stdout)
    python = " ".join(found["python"])
    assert "aws-parallelcluster==3.16.1" in python and "boto3==" in python
    assert "ansible-core" not in python  # the image brings its own
    system = " ".join(found["system"])
    assert "nodejs [platform:rpm]" in system and "openssh-clients [platform:rpm]" in system
