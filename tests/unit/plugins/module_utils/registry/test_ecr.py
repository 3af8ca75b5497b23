"""ECR registries and the credentials files: Enroot's read back by Enroot 4.1.2's own parser, Docker's merged."""

import json
import os
import pathlib
import subprocess
import tarfile

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.registry import ecr

ROOT = pathlib.Path(__file__).resolve().parents[4]
OWN = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
OTHER = "210987654321.dkr.ecr.eu-west-1.amazonaws.com"


def vendored_enroot():
    """Enroot's source archive as the sandbox pins it (sandbox/ami.py), or None."""
    for candidate in (os.environ.get("HPC_PCLUSTER_VENDOR_DIR"), ROOT.parent / "shared" / "vendor",
                      ROOT.parent.parent / "shared" / "vendor", pathlib.Path("/work/shared/vendor")):
        if candidate and (pathlib.Path(candidate) / "enroot-4.1.2.tar.gz").is_file():
            return pathlib.Path(candidate) / "enroot-4.1.2.tar.gz"
    return None


@pytest.fixture(name="enroot_common")
def fixture_enroot_common(tmp_path):
    archive = vendored_enroot()
    if archive is None:
        pytest.skip("the vendored Enroot 4.1.2 source archive is not here")
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/src/common.sh"))
        (tmp_path / "common.sh").write_bytes(tar.extractfile(member).read())
    return tmp_path / "common.sh"


def test_the_cluster_s_own_registry_comes_first_and_each_registry_once():
    assert ecr.registries("123456789012", "us-east-1", [OTHER, OWN]) == [OWN, OTHER]
    assert ecr.registries("", "us-east-1", [OTHER]) == [OTHER]
    assert ecr.registry_host("123456789012", "cn-north-1") == "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
    assert ecr.registry_region(OTHER) == "eu-west-1"
    assert ecr.registry_region("public.ecr.aws") is None
    assert ecr.registry_region("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com") == "us-gov-west-1"


def test_every_bad_variable_is_named_at_once_with_its_value_and_the_fix():
    problems = ecr.registry_problems("enroot", "12345", "US East", ["https://%s" % OWN, OTHER, "%s/team" % OWN])
    problems += ecr.aws_cli_problems("enroot", "aws ecr; rm -rf /")
    assert len(problems) == 5, problems
    assert problems[0].startswith("enroot_ecr_account_id='12345' must be a 12-digit AWS account id")
    assert problems[1].startswith("enroot_ecr_region='US East' must be an AWS region")
    assert "'https://%s' is not an ECR registry host name" % OWN in problems[2]
    assert "'%s/team' is not an ECR registry host name" % OWN in problems[3]
    assert problems[4].startswith("enroot_ecr_aws_cli='aws ecr; rm -rf /' must be the absolute path")
    assert ecr.registry_problems("docker", "", "", []) == []
    assert ecr.registry_problems("docker", "123456789012", "us-east-1", "not a list") == [
        "docker_ecr_registries must be a list of registry host names, e.g. "
        "['123456789012.dkr.ecr.eu-west-1.amazonaws.com']"]


def test_enroot_s_own_parser_runs_the_password_command_with_the_registry_s_region(tmp_path, enroot_common):
    calls = tmp_path / "calls"
    aws = tmp_path / "aws"
    aws.write_text("#!/bin/sh\necho \"$*\" >> %s\necho token-for-$4\n" % calls)
    aws.chmod(0o755)
    credentials = tmp_path / ".credentials"
    credentials.write_text(ecr.enroot_credentials([OWN, OTHER], str(aws)))
    # common::evalnetrc is what docker::_authenticate hands curl as its netrc file.
    out = subprocess.run(["bash", "-c", 'source "$0"; common::evalnetrc "$1" 2>/dev/null', str(enroot_common),
                          str(credentials)], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["machine %s login AWS password token-for-us-east-1" % OWN,
                                "machine %s login AWS password token-for-eu-west-1" % OTHER]
    assert calls.read_text().splitlines() == ["ecr get-login-password --region us-east-1",
                                              "ecr get-login-password --region eu-west-1"]
    # What docker::_parse_uri infers as the user for an image of the registry: AWS, from the file.
    user = subprocess.run(["awk", "/^[[:space:]]*machine[[:space:]]+%s[[:space:]]+login[[:space:]]+.+/ { print $4; exit }"
                           % OWN, str(credentials)], capture_output=True, text=True, check=True).stdout.strip()
    assert user == "AWS"


def test_no_secret_is_written_only_the_command_that_asks_for_it():
    text = ecr.enroot_credentials([OWN], "/usr/local/bin/aws")
    assert text == ("machine %s login AWS password $(/usr/local/bin/aws ecr get-login-password --region us-east-1)\n"
                    % OWN)


def test_docker_s_configuration_keeps_what_it_had_and_names_the_helper():
    current = json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": "x"}},
                          "credHelpers": {"gcr.io": "gcloud", OWN: "desktop"}, "detachKeys": "ctrl-e,e"})
    config = ecr.docker_config(current, [OWN, OTHER])
    assert config["auths"] == {"https://index.docker.io/v1/": {"auth": "x"}}
    assert config["detachKeys"] == "ctrl-e,e"
    assert config["credHelpers"] == {"gcr.io": "gcloud", OWN: "ecr-login", OTHER: "ecr-login"}
    assert ecr.docker_config("", [OWN]) == {"credHelpers": {OWN: "ecr-login"}}
    assert ecr.docker_config("", []) == {}
    with pytest.raises(ValueError, match="not a JSON object"):
        ecr.docker_config("[]", [OWN])


def test_a_401_names_the_policy_for_ecr_and_the_credentials_file_elsewhere():
    hint = ecr.unauthorized_hint(OWN)
    assert hint.startswith("%s refused the node's credentials (HTTP 401). The node has no ECR credentials" % OWN)
    assert "AmazonEC2ContainerRegistryReadOnly (arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly)" in hint
    assert "ecr:GetAuthorizationToken" in hint
    assert "Enroot a line for registry.example.com" in ecr.unauthorized_hint("registry.example.com")
