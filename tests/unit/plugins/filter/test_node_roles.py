"""The node roles' variable checks (docker, enroot, pyxis, node_setup) and docker's installed engine: each problem
names the variable, its value and the fix, and every problem comes at once."""

from __future__ import annotations

import pathlib

import jinja2
import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.hpc.pcluster.plugins.filter import node_roles as f

ROOT = pathlib.Path(__file__).resolve().parents[4]
OWN = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
SHA = "sha256:" + "ab" * 32


def spec_defaults(role, **overrides):
    """The role's variables at their defaults (defaults/main.yml, which agrees with argument_specs.yml), with
    overrides."""
    variables = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    variables.update(overrides)
    return {name: render(value, variables) for name, value in variables.items()}


def render(value, variables):
    """A default such as "{{ pyxis_slurm_etc_dir }}/pyxis" as the role sees it (other variables unset)."""
    if isinstance(value, list):
        return [render(item, variables) for item in value]
    if not (isinstance(value, str) and "{{" in value):
        return value
    return render(jinja2.Environment().from_string(value).render(variables), variables)


def docker(source="distribution", packages=("docker.io",), **overrides):
    return f.docker_problems(spec_defaults("docker", **overrides), source, list(packages), "Ubuntu")


def test_each_role_s_declared_defaults_pass():
    assert docker() == []
    assert f.enroot_problems(spec_defaults("enroot")) == []
    assert f.pyxis_problems(spec_defaults("pyxis")) == []
    assert f.node_setup_problems(spec_defaults("node_setup")) == []


def test_docker_package_files_every_problem_at_once():
    problems = docker("files", (), docker_package_files=["rel/a.deb", "/fsx/a.deb", "/other/a.deb"],
                      docker_package_checksums={"/fsx/a.deb": "md5:0123", "/other/a.deb": SHA})
    assert problems == [
        "docker_package_files entry 'rel/a.deb' must be an absolute path on the node",
        "docker_package_checksums['rel/a.deb']='' must be 'sha256:<hex>' (or sha384/sha512): package files are "
        "only installed verified",
        "docker_package_checksums['/fsx/a.deb'] uses md5, which is refused: give its sha256 (sha256:<hex>)",
        "docker_package_files has two files with one name: they are staged side by side in docker_package_staging_dir",
    ]
    assert docker("files", ()) == ["docker_package_source='files' needs docker_package_files (package files on the node)"]


def test_docker_names_each_variable_with_its_value():
    problems = docker("docker_repo", (), docker_package_source="docker_repo", docker_apt_gpg_key_fingerprint="9dc8 5822",
                      docker_apt_sources_dir="sources.list.d", docker_service_manager="command",
                      docker_version="27.*", docker_daemon_json_path="daemon.json",
                      docker_ecr_credentials=True, docker_ecr_account_id="1234")
    assert problems[0] == ("docker_apt_gpg_key_fingerprint='9dc8 5822' must be a full key fingerprint: 40 hex digits, "
                           "upper case, no spaces")
    assert problems[1] == "docker_apt_sources_dir='sources.list.d' must be an absolute path"
    assert problems[2].startswith("docker_service_manager='command' needs docker_service_command")
    assert problems[3] == "docker_package_source='docker_repo' has no packages on Ubuntu: use distribution or files"
    assert problems[4] == "docker_version='27.*' must be one version, e.g. 27.5.1"
    assert problems[5] == "docker_daemon_json_path='daemon.json' must be an absolute path"
    assert problems[6].startswith("docker_ecr_account_id='1234'")
    assert docker(docker_service_manager="command", docker_service_command=["/etc/init.d/docker"]) == []
    assert docker(docker_service_manager="command", docker_service_command="/etc/init.d/docker") != []


def test_enroot_settings_and_packages():
    variables = spec_defaults("enroot", enroot_data_path="data", enroot_temp_path="/tmp\nx", enroot_directory_mode="rwx",
                              enroot_extra_config={"FOO": "1", "ENROOT_MOUNT_HOME": "y", "ENROOT_CONFIG_PATH": "/c"},
                              enroot_install_method="packages", enroot_package_path="pkgs",
                              enroot_package_checksums={"enroot.deb": "sha1:00"})
    problems = f.enroot_problems(variables, [OWN], ["enroot.deb", "enroot+caps.deb"], False, "node-1")
    assert problems == [
        "enroot_data_path='data' must be empty (automatic) or an absolute path, e.g. /scratch/enroot/data/user-$(id -u)",
        "enroot_temp_path must be a single line",
        "enroot_directory_mode='rwx' must be an octal mode string such as '1777'",
        "enroot_extra_config key 'FOO' is not an Enroot setting (ENROOT_...)",
        "enroot_extra_config key 'ENROOT_MOUNT_HOME' is set by its own variable (enroot_mount_home): use that",
        "enroot_extra_config key 'ENROOT_CONFIG_PATH' is set by enroot_ecr_config_path while Enroot gets ECR "
        "credentials (%s): use that, or enroot_ecr_credentials: false" % OWN,
        "enroot_package_path='pkgs' must be an absolute path on the node",
        "enroot_package_checksums['enroot.deb'] uses sha1, which is refused: give its sha256 (sha256:<hex>) from the "
        "release's checksum file",
        "enroot_package_checksums['enroot+caps.deb']='' must be '<algorithm>:<hex digest>' (take it from the "
        "release's checksum file); packages are only installed verified",
        "enroot_ecr_aws_cli=%s is not an executable on node-1, and Enroot's credentials for %s run it to get their "
        "password: install the AWS CLI (ParallelCluster AMIs have it at /usr/local/bin/aws), set enroot_ecr_aws_cli "
        "to where it is, or set enroot_ecr_credentials: false" % (variables["enroot_ecr_aws_cli"], OWN),
    ]


def test_enroot_ecr_variables_are_checked_only_with_ecr_credentials():
    bad = {"enroot_ecr_account_id": "1234", "enroot_ecr_aws_cli": "aws $(id)"}
    assert f.enroot_problems(spec_defaults("enroot", enroot_ecr_credentials=False, **bad)) == []
    problems = f.enroot_problems(spec_defaults("enroot", enroot_ecr_credentials="yes", **bad))
    assert [p.split("=")[0].split(" ")[0] for p in problems] == [
        "enroot_ecr_account_id", "enroot_ecr_region", "enroot_ecr_aws_cli"]


def test_pyxis_paths_globs_and_a_verified_source_build():
    problems = f.pyxis_problems(spec_defaults(
        "pyxis", pyxis_plugstack_include_glob="*", pyxis_conf_link_name="pyxis", pyxis_conf_dir="/etc/x/",
        pyxis_plugstack_include_dir="/etc/x", pyxis_runtime_path_mode="777 ", pyxis_plugin_options={"a": "b c"},
        pyxis_source_url="https://example.com/p.tar.gz", pyxis_source_path="p.tar.gz", pyxis_source_checksum="md5:1",
        pyxis_version=""))
    assert problems == [
        "pyxis_plugstack_include_glob='*' must end in .conf (e.g. '*.conf'): a broader glob also loads temporary and "
        "backup files (aws-parallelcluster issue 6459)",
        "pyxis_conf_link_name='pyxis' must be a file name ending in .conf",
        "pyxis_conf_dir='/etc/x/' must differ from pyxis_plugstack_include_dir: temporary files written next to "
        "pyxis.conf would be included by Slurm",
        "pyxis_runtime_path_mode='777 ' must be an octal mode string such as '1777'",
        "pyxis_plugin_options['a']='b c' must not contain whitespace (plugstack arguments are split on it)",
        "pyxis_source_url and pyxis_source_path are both set: set only one",
        "pyxis_source_path='p.tar.gz' must be an absolute path on the node",
        "pyxis_source_checksum uses md5, which is refused: give the tarball's sha256 (sha256:<hex>)",
        "pyxis_version is empty: set the version of the source tarball",
    ]
    source = f.pyxis_problems(spec_defaults("pyxis", pyxis_install_method="source", pyxis_source_checksum=""))
    assert source[-1] == "pyxis_install_method='source' needs pyxis_source_url or pyxis_source_path"
    assert source[0].startswith("pyxis_source_checksum='' must be '<algorithm>:<hex digest>'")


def test_node_setup_paths_releases_and_kept_bundles():
    problems = f.node_setup_problems(spec_defaults(
        "node_setup", node_setup_dir="node-setup", node_setup_ansible_core_versions={"3.16.1": "2.17"},
        node_setup_ansible_core_version="latest", node_setup_keep_bundles=-1))
    assert problems == [
        "node_setup_dir='node-setup' must be an absolute path on the nodes",
        "node_setup_ansible_core_versions['3.16.1']='2.17' must be an exact release such as 2.17.14",
        "node_setup_ansible_core_version='latest' must be an exact release such as 2.17.14, or empty",
        "node_setup_keep_bundles=-1 must be 0 or more",
    ]


@pytest.mark.parametrize("check", [f.docker_problems, f.enroot_problems, f.pyxis_problems, f.node_setup_problems])
def test_the_variables_must_be_a_mapping(check):
    with pytest.raises(AnsibleFilterError, match="expects a mapping"):
        check(["not", "a", "mapping"], *([None, []] if check is f.docker_problems else []))


def test_the_installed_engine_is_the_first_installed_engine_package():
    engines = {"docker-ce": "docker_repo", "docker.io": "distribution"}
    lines = ["docker-ce\t5:27.5.1-1~ubuntu.22.04~jammy\trc ", "docker.io\t24.0.7-0ubuntu2\tii ",
             "containerd\t1.7\tii "]
    assert f.docker_installed_engine(lines, engines) == {"name": "docker.io", "source": "distribution",
                                                         "version": "24.0.7-0ubuntu2"}
    assert f.docker_installed_engine(["dpkg-query: no packages found matching docker-ce"], engines) == {}
    assert f.docker_installed_engine([], engines) == {}
