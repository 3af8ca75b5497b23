# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the roles that run on the cluster's nodes (docker, enroot, pyxis, node_setup): what their
meta/argument_specs.yml cannot express, checked in Python.

- ``docker_problems``      what is wrong with the docker role's variables
- ``enroot_problems``      what is wrong with the enroot role's variables
- ``pyxis_problems``       what is wrong with the pyxis role's variables
- ``node_setup_problems``  what is wrong with the node_setup role's variables
- ``docker_installed_engine`` the Docker engine package already installed, from dpkg-query or rpm output

Each ``*_problems`` filter takes ``{variable name: value}`` of its role (types and choices are the spec's, which
Ansible checks before the role runs) and returns every problem at once, each naming the variable, its value and
the fix; an empty list when all is well.
"""

from __future__ import annotations

import os
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.hpc.pcluster.plugins.module_utils.registry import ecr

STRONG_DIGEST = re.compile(r"^(sha256|sha384|sha512):[0-9a-fA-F]+$")
WEAK_DIGEST = re.compile(r"^(sha1|md5):")
FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
OCTAL_MODE = re.compile(r"^[0-7]{3,4}$")
EXACT_RELEASE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
ENROOT_SETTING = re.compile(r"^ENROOT_[A-Z0-9_]+$")
# Enroot settings the role writes from their own variables (enroot_<setting in lower case>).
ENROOT_MANAGED = ("ENROOT_RUNTIME_PATH", "ENROOT_CACHE_PATH", "ENROOT_DATA_PATH", "ENROOT_TEMP_PATH",
                  "ENROOT_SQUASH_OPTIONS", "ENROOT_ROOTFS_WRITABLE", "ENROOT_MOUNT_HOME", "ENROOT_RESTRICT_DEV")


def _text(value):
    return "" if value is None else str(value)


def _flag(value):
    return boolean(value, strict=False)


def _mapping(variables, role):
    if not isinstance(variables, dict):
        raise AnsibleFilterError("%s_problems expects a mapping of the role's variables (%s_*)" % (role, role))
    return variables


def not_absolute(variables, names, where=""):
    """A problem for each of the variables names that is not an absolute path."""
    return ["%s='%s' must be an absolute path%s" % (name, _text(variables.get(name)), where)
            for name in names if not _text(variables.get(name)).startswith("/")]


def digest_problem(variable, digest, weak_fix, fix):
    """A checksum given as '<algorithm>:<hex>': None when strong, else the problem (md5 and sha1 are refused)."""
    digest = _text(digest)
    if WEAK_DIGEST.match(digest):
        return "%s uses %s, which is refused: %s" % (variable, digest.split(":", 1)[0], weak_fix)
    if not STRONG_DIGEST.match(digest):
        return "%s='%s' must be %s" % (variable, digest, fix)
    return None


def single_line(variable, value):
    return ["%s must be a single line" % variable] if re.search(r"[\n\r]", _text(value)) else []


def docker_package_problems(v, source):
    """docker_package_files: given for source 'files', absolute, each with a strong checksum, names unique."""
    files = [_text(f) for f in v.get("docker_package_files") or []]
    checksums = v.get("docker_package_checksums") or {}
    problems = []
    if source == "files" and not files:
        problems.append("docker_package_source='files' needs docker_package_files (package files on the node)")
    problems += ["docker_package_files entry '%s' must be an absolute path on the node" % f
                 for f in files if not f.startswith("/")]
    for f in files:
        problem = digest_problem("docker_package_checksums['%s']" % f, checksums.get(f, ""),
                                 "give its sha256 (sha256:<hex>)",
                                 "'sha256:<hex>' (or sha384/sha512): package files are only installed verified")
        problems += [problem] if problem else []
    if len({os.path.basename(f) for f in files}) != len(files):
        problems.append("docker_package_files has two files with one name: they are staged side by side in "
                        "docker_package_staging_dir")
    return problems


def docker_problems(variables, source, base_packages, distribution=""):
    """Problems with the docker role's variables; source is the engine's source the role chose (never 'auto'),
    base_packages the engine packages that source has on this distribution."""
    v = _mapping(variables, "docker")
    problems = docker_package_problems(v, source)
    problems += ["%s='%s' must be a full key fingerprint: 40 hex digits, upper case, no spaces" % (name, _text(v.get(name)))
                 for name in ("docker_apt_gpg_key_fingerprint", "docker_rpm_gpg_key_fingerprint",
                              "docker_nvidia_gpg_key_fingerprint")
                 if not FINGERPRINT.match(_text(v.get(name)))]
    problems += not_absolute(v, ("docker_apt_sources_dir", "docker_apt_keyrings_dir", "docker_package_staging_dir"))
    command = v.get("docker_service_command")
    if v.get("docker_service_manager") == "command" and (isinstance(command, str) or not command):
        problems.append("docker_service_manager='command' needs docker_service_command: the argv that starts the "
                        "engine when given 'start' (and restarts it with 'restart')")
    if source in ("distribution", "docker_repo") and not base_packages:
        problems.append("docker_package_source='%s' has no packages on %s: use %s or files" % (
            _text(v.get("docker_package_source")), distribution,
            "docker_repo" if source == "distribution" else "distribution"))
    if re.search(r"[\s*]", _text(v.get("docker_version"))):
        problems.append("docker_version='%s' must be one version, e.g. 27.5.1" % _text(v.get("docker_version")))
    problems += not_absolute(v, ("docker_daemon_json_path", "docker_ecr_config_path"))
    if _flag(v.get("docker_ecr_credentials", False)):
        problems += ecr.registry_problems("docker", _text(v.get("docker_ecr_account_id")),
                                          _text(v.get("docker_ecr_region")), v.get("docker_ecr_registries"))
    return problems


def enroot_setting_problems(v, ecr_registries):
    """enroot_*_path settings (empty or absolute), enroot_squash_options, enroot_extra_config."""
    problems = []
    for name in ("enroot_runtime_path", "enroot_data_path", "enroot_cache_path", "enroot_temp_path"):
        value = _text(v.get(name))
        if value and not value.startswith(("/", "$")):
            problems.append("%s='%s' must be empty (automatic) or an absolute path, e.g. "
                            "/scratch/enroot/data/user-$(id -u)" % (name, value))
        problems += single_line(name, value)
    problems += single_line("enroot_squash_options", v.get("enroot_squash_options"))
    if not OCTAL_MODE.match(_text(v.get("enroot_directory_mode"))):
        problems.append("enroot_directory_mode='%s' must be an octal mode string such as '1777'"
                        % _text(v.get("enroot_directory_mode")))
    extra = v.get("enroot_extra_config") or {}
    for key, value in extra.items():
        if not ENROOT_SETTING.match(_text(key)):
            problems.append("enroot_extra_config key '%s' is not an Enroot setting (ENROOT_...)" % key)
        elif key in ENROOT_MANAGED:
            problems.append("enroot_extra_config key '%s' is set by its own variable (enroot_%s): use that"
                            % (key, key[7:].lower()))
        problems += single_line("enroot_extra_config['%s']" % key, value)
    if "ENROOT_CONFIG_PATH" in extra and ecr_registries:
        problems.append("enroot_extra_config key 'ENROOT_CONFIG_PATH' is set by enroot_ecr_config_path while Enroot "
                        "gets ECR credentials (%s): use that, or enroot_ecr_credentials: false"
                        % ", ".join(ecr_registries))
    return problems


def enroot_package_problems(v, package_files):
    """With enroot_install_method 'packages': the package path and a strong checksum for each package file."""
    if v.get("enroot_install_method") != "packages":
        return []
    problems = []
    path = _text(v.get("enroot_package_path"))
    if path and not path.startswith("/"):
        problems.append("enroot_package_path='%s' must be an absolute path on the node" % path)
    checksums = v.get("enroot_package_checksums") or {}
    for name in package_files or []:
        problem = digest_problem("enroot_package_checksums['%s']" % name, checksums.get(name, ""),
                                 "give its sha256 (sha256:<hex>) from the release's checksum file",
                                 "'<algorithm>:<hex digest>' (take it from the release's checksum file); "
                                 "packages are only installed verified")
        problems += [problem] if problem else []
    return problems


def enroot_problems(variables, ecr_registries=(), package_files=(), aws_cli_executable=True, host=""):
    """Problems with the enroot role's variables; ecr_registries are the registries Enroot gets credentials
    for, package_files the package files of enroot_install_method 'packages', aws_cli_executable whether
    enroot_ecr_aws_cli is an executable on the node (host)."""
    v = _mapping(variables, "enroot")
    ecr_registries = list(ecr_registries or [])
    problems = not_absolute(v, ("enroot_binary_path", "enroot_conf_dir", "enroot_local_disk_path",
                                "enroot_fallback_path", "enroot_shared_path", "enroot_download_dir",
                                "enroot_ecr_config_path"))
    problems += enroot_setting_problems(v, ecr_registries)
    problems += enroot_package_problems(v, package_files)
    if ecr_registries and not aws_cli_executable:
        problems.append(
            "enroot_ecr_aws_cli=%s is not an executable on %s, and Enroot's credentials for %s run it to get their "
            "password: install the AWS CLI (ParallelCluster AMIs have it at /usr/local/bin/aws), set "
            "enroot_ecr_aws_cli to where it is, or set enroot_ecr_credentials: false"
            % (_text(v.get("enroot_ecr_aws_cli")), host, ", ".join(ecr_registries)))
    if _flag(v.get("enroot_ecr_credentials", False)):
        problems += ecr.registry_problems("enroot", _text(v.get("enroot_ecr_account_id")),
                                          _text(v.get("enroot_ecr_region")), v.get("enroot_ecr_registries"))
        problems += ecr.aws_cli_problems("enroot", v.get("enroot_ecr_aws_cli"))
    return problems


def pyxis_source_problems(v):
    """A source build: one source (URL or path), a strong checksum of its tarball, a version."""
    url, path = _text(v.get("pyxis_source_url")), _text(v.get("pyxis_source_path"))
    source_build = v.get("pyxis_install_method") == "source"
    problems = []
    if url and path:
        problems.append("pyxis_source_url and pyxis_source_path are both set: set only one")
    if path and not path.startswith("/"):
        problems.append("pyxis_source_path='%s' must be an absolute path on the node" % path)
    if url or path or source_build:
        problem = digest_problem("pyxis_source_checksum", v.get("pyxis_source_checksum"),
                                 "give the tarball's sha256 (sha256:<hex>)",
                                 "'<algorithm>:<hex digest>', e.g. 'sha256:...' (a source build is only done from "
                                 "a verified tarball)")
        problems += [problem] if problem else []
        if not _text(v.get("pyxis_version")):
            problems.append("pyxis_version is empty: set the version of the source tarball")
    if source_build and not url and not path:
        problems.append("pyxis_install_method='source' needs pyxis_source_url or pyxis_source_path")
    return problems


def pyxis_problems(variables):
    """Problems with the pyxis role's variables."""
    v = _mapping(variables, "pyxis")
    problems = not_absolute(v, ("pyxis_slurm_etc_dir", "pyxis_plugstack_conf", "pyxis_plugstack_include_dir",
                                "pyxis_conf_dir", "pyxis_plugin_path", "pyxis_runtime_path", "pyxis_build_dir",
                                "pyxis_slurm_include_dir"))
    glob = _text(v.get("pyxis_plugstack_include_glob"))
    if not re.match(r"^[^/\s]*\.conf$", glob):
        problems.append("pyxis_plugstack_include_glob='%s' must end in .conf (e.g. '*.conf'): a broader glob also "
                        "loads temporary and backup files (aws-parallelcluster issue 6459)" % glob)
    link = _text(v.get("pyxis_conf_link_name"))
    if not re.match(r"^[^/\s]+\.conf$", link):
        problems.append("pyxis_conf_link_name='%s' must be a file name ending in .conf" % link)
    conf_dir = _text(v.get("pyxis_conf_dir"))
    if conf_dir.rstrip("/") == _text(v.get("pyxis_plugstack_include_dir")).rstrip("/"):
        problems.append("pyxis_conf_dir='%s' must differ from pyxis_plugstack_include_dir: temporary files written "
                        "next to pyxis.conf would be included by Slurm" % conf_dir)
    if not OCTAL_MODE.match(_text(v.get("pyxis_runtime_path_mode"))):
        problems.append("pyxis_runtime_path_mode='%s' must be an octal mode string such as '1777'"
                        % _text(v.get("pyxis_runtime_path_mode")))
    problems += ["pyxis_plugin_options['%s']='%s' must not contain whitespace (plugstack arguments are split on it)"
                 % (key, value) for key, value in (v.get("pyxis_plugin_options") or {}).items()
                 if re.search(r"\s", "%s=%s" % (key, value))]
    return problems + pyxis_source_problems(v)


def node_setup_problems(variables):
    """Problems with the node_setup role's variables."""
    v = _mapping(variables, "node_setup")
    problems = not_absolute(v, ("node_setup_dir", "node_setup_python"), " on the nodes")
    problems += ["node_setup_ansible_core_versions['%s']='%s' must be an exact release such as 2.17.14"
                 % (version, core) for version, core in (v.get("node_setup_ansible_core_versions") or {}).items()
                 if not EXACT_RELEASE.match(_text(core))]
    pinned = _text(v.get("node_setup_ansible_core_version"))
    if pinned and not EXACT_RELEASE.match(pinned):
        problems.append("node_setup_ansible_core_version='%s' must be an exact release such as 2.17.14, or empty"
                        % pinned)
    try:
        keep = int(v.get("node_setup_keep_bundles", 0))
    except (TypeError, ValueError):
        keep = None
    if keep is None or keep < 0:
        problems.append("node_setup_keep_bundles=%s must be 0 or more" % _text(v.get("node_setup_keep_bundles")))
    return problems


def docker_installed_engine(lines, engine_packages):
    """The first engine package installed, as ``{name, source, version}`` ({} when none is).

    lines: ``<package>\\t<version>\\t<status>`` as the role's dpkg-query or rpm query prints them (rpm's status
    is always ``ii``); engine_packages: ``{package: source}``, e.g. docker-ce from the aws-samples script.
    """
    for line in lines or []:
        fields = _text(line).split("\t")
        if len(fields) == 3 and fields[2].startswith("ii") and fields[0] in (engine_packages or {}):
            return {"name": fields[0], "source": engine_packages[fields[0]], "version": fields[1]}
    return {}


class FilterModule:
    """hpc.pcluster filters of the node roles' variables."""

    def filters(self):
        return {"docker_problems": docker_problems, "enroot_problems": enroot_problems,
                "pyxis_problems": pyxis_problems, "node_setup_problems": node_setup_problems,
                "docker_installed_engine": docker_installed_engine}
