"""The ECR credentials the container roles write, run for real with ansible-playbook on localhost against directories
of the test's own: Enroot's credentials file and enroot.conf (role enroot, whole), Docker's client configuration
(role docker's ECR part). Nothing outside tmp_path changes."""

import json
import os
import pathlib
import stat

import pytest

from ansible_collections.hpc.pcluster.tests.unit.roles import playbook_run
from ansible_collections.hpc.pcluster.tests.unit.roles.playbook_run import recap

HERE = pathlib.Path(__file__).resolve().parent / "ecr"
OWN = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
OTHER = "210987654321.dkr.ecr.eu-west-1.amazonaws.com"


def run(playbook, extra, env=None):
    return playbook_run.ansible_playbook(HERE / playbook, HERE / "inventory", extra=extra, env=env)


def executable(path, text="#!/bin/sh\n"):
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture(name="enroot_vars")
def fixture_enroot_vars(tmp_path):
    aws = executable(tmp_path / "bin" / "aws", "#!/bin/sh\necho token\n")
    enroot = executable(tmp_path / "bin" / "enroot")
    for sub in ("scratch", "fsx", "run", "etc", "tmpfiles"):
        (tmp_path / sub).mkdir()
    return {"enroot_install_method": "shipped", "enroot_binary_path": str(enroot), "enroot_conf_dir": str(tmp_path / "etc"),
            "enroot_local_disk_path": str(tmp_path / "scratch"), "enroot_shared_path": str(tmp_path / "fsx"),
            "enroot_fallback_path": str(tmp_path / "run" / "enroot"), "enroot_tmpfiles_dir": str(tmp_path / "tmpfiles"),
            "enroot_ecr_config_path": str(tmp_path / "etc" / "config"), "enroot_ecr_aws_cli": str(aws),
            "aws_account_id": "123456789012", "aws_region": "us-east-1", "enroot_ecr_registries": [OTHER]}


def test_enroot_gets_a_credentials_line_per_registry_and_reads_it_from_there(enroot_vars, tmp_path):
    first = run("enroot.yml", enroot_vars)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    credentials = tmp_path / "etc" / "config" / ".credentials"
    aws = enroot_vars["enroot_ecr_aws_cli"]
    assert credentials.read_text() == (
        "machine %s login AWS password $(%s ecr get-login-password --region us-east-1)\n"
        "machine %s login AWS password $(%s ecr get-login-password --region eu-west-1)\n" % (OWN, aws, OTHER, aws))
    # Readable by every user (Enroot reads it as the user importing), written by root only; no secret in it.
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o644 and credentials.stat().st_uid == 0
    conf = (tmp_path / "etc" / "enroot.conf").read_text().splitlines()
    assert "%-26s %s" % ("ENROOT_CONFIG_PATH", tmp_path / "etc" / "config") in conf
    second = run("enroot.yml", enroot_vars)
    assert second.returncode == 0 and recap(second, "changed") == 0, second.stdout[-3000:]
    # Turned off: the role's credentials file goes, and Enroot reads each user's own configuration again.
    off = run("enroot.yml", dict(enroot_vars, enroot_ecr_credentials=False))
    assert off.returncode == 0, off.stdout[-3000:]
    assert not credentials.exists()
    assert not any(line.startswith("ENROOT_CONFIG_PATH") for line in (tmp_path / "etc" / "enroot.conf").read_text().splitlines())


def test_enroot_refuses_bad_variables_and_a_missing_aws_cli_at_once_before_writing(enroot_vars, tmp_path):
    bad = run("enroot.yml", dict(enroot_vars, aws_account_id="12345", enroot_ecr_registries=["https://%s" % OWN],
                                 enroot_ecr_aws_cli=str(tmp_path / "no" / "aws")))
    assert bad.returncode != 0
    folded = " ".join(bad.stdout.split())
    assert "enroot_ecr_account_id='12345' must be a 12-digit AWS account id" in folded
    assert "'https://%s' is not an ECR registry host name" % OWN in folded
    assert "enroot_ecr_aws_cli=%s is not an executable on localhost" % (tmp_path / "no" / "aws") in folded
    assert "or set enroot_ecr_credentials: false" in folded
    assert not (tmp_path / "etc" / "enroot.conf").exists() and not (tmp_path / "etc" / "config").exists()


def test_enroot_places_its_paths_by_the_mount_points_given_with_entries_that_make_them_at_boot(enroot_vars, tmp_path):
    # What a custom image's bake does on a build instance: none of the cluster's storage is mounted here, the compute
    # nodes' mount points are given.
    scratch, fsx = tmp_path / "scratch", tmp_path / "fsx"
    given = dict(enroot_vars, enroot_mount_points={str(scratch): True, str(fsx): True})
    first = run("enroot.yml", given)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    conf = (tmp_path / "etc" / "enroot.conf").read_text().splitlines()
    assert "%-26s %s/enroot/tmp" % ("ENROOT_TEMP_PATH", scratch) in conf
    assert "%-26s %s/enroot/cache/group-$(id -g)" % ("ENROOT_CACHE_PATH", fsx) in conf
    # The instance storage is empty at each boot: its directories get systemd-tmpfiles entries, the shared cache not.
    entries = [line for line in (tmp_path / "tmpfiles" / "enroot.conf").read_text().splitlines()
               if not line.startswith("#")]
    assert entries == ["d %s/enroot 0755 root root -" % scratch] + [
        "d %s/enroot/%s 1777 root root -" % (scratch, sub) for sub in ("runtime", "data", "tmp")]
    assert (scratch / "enroot" / "tmp").is_dir() and (fsx / "enroot" / "cache").is_dir()
    # Not given: looked for, and a directory that is not a mount point does not count.
    looked = run("enroot.yml", enroot_vars)
    assert looked.returncode == 0, looked.stdout[-4000:]
    assert "%-26s %s/enroot/tmp" % ("ENROOT_TEMP_PATH", tmp_path / "run") in (
        tmp_path / "etc" / "enroot.conf").read_text().splitlines()


@pytest.fixture(name="docker_env")
def fixture_docker_env(tmp_path):
    helper = executable(tmp_path / "bin" / "docker-credential-ecr-login")
    return dict(os.environ, PATH="%s:%s" % (helper.parent, os.environ.get("PATH", "")))


def docker_vars(tmp_path, **more):
    out = {"docker_ecr_config_path": str(tmp_path / "docker" / "config.json"), "docker_ecr_helper_packages": [],
           "aws_account_id": "123456789012", "aws_region": "us-east-1"}
    out.update(more)
    return out


def test_docker_names_the_helper_and_keeps_what_docker_wrote(tmp_path, docker_env):
    config = tmp_path / "docker" / "config.json"
    config.parent.mkdir()
    # As `docker login` writes it (tabs), with another helper.
    config.write_text('{\n\t"auths": {\n\t\t"https://index.docker.io/v1/": {\n\t\t\t"auth": "eDp5"\n\t\t}\n\t},\n'
                      '\t"credHelpers": {\n\t\t"gcr.io": "gcloud"\n\t}\n}')
    first = run("docker_ecr.yml", docker_vars(tmp_path, docker_ecr_registries=[OTHER]), env=docker_env)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    written = json.loads(config.read_text())
    assert written == {"auths": {"https://index.docker.io/v1/": {"auth": "eDp5"}},
                       "credHelpers": {"gcr.io": "gcloud", OWN: "ecr-login", OTHER: "ecr-login"}}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    # Docker writes it again in its own layout: the same data, nothing to change.
    config.write_text(json.dumps(written, indent="\t"))
    second = run("docker_ecr.yml", docker_vars(tmp_path, docker_ecr_registries=[OTHER]), env=docker_env)
    assert second.returncode == 0 and recap(second, "changed") == 0, second.stdout[-3000:]


def test_docker_without_the_helper_warns_and_leaves_its_configuration_alone(tmp_path):
    env = dict(os.environ, PATH="/usr/bin:/bin")
    result = run("docker_ecr.yml", docker_vars(tmp_path), env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    folded = " ".join(result.stdout.split())
    assert "WARNING: docker-credential-ecr-login is not installed on localhost" in folded
    assert "docker pull from %s has no credentials" % OWN in folded
    assert not (tmp_path / "docker" / "config.json").exists()
