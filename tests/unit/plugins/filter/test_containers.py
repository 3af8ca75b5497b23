"""Filters for private registries: the ECR variables' problems, the staged paths, the report's section."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.hpc.pcluster.plugins.filter import containers as f

OWN = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def test_registries_and_problems_as_the_roles_call_them():
    assert f.ecr_registries("123456789012", "us-east-1") == [OWN]
    assert f.ecr_registries(None, "us-east-1", [OWN]) == [OWN]
    assert f.ecr_problems("docker", "123456789012", "us-east-1", [OWN]) == []
    problems = f.ecr_problems("enroot", "1234", "", ["public.ecr.aws"], "aws")
    assert [p.split("=")[0].split(" ")[0] for p in problems] == [
        "enroot_ecr_account_id", "enroot_ecr_region", "enroot_ecr_registries", "enroot_ecr_aws_cli"]


def test_credentials_refuse_a_cli_path_a_shell_would_read():
    with pytest.raises(AnsibleFilterError, match="enroot_ecr_aws_cli='aws \\$\\(id\\)'"):
        f.enroot_ecr_credentials([OWN], "aws $(id)")


def test_docker_config_that_is_not_json_is_named_with_the_way_out():
    with pytest.raises(AnsibleFilterError, match="/root/.docker/config.json is not Docker's client configuration.*"
                                                 "docker_ecr_credentials: false"):
        f.docker_ecr_config("{not json", [OWN], "/root/.docker/config.json")


def test_staging_variables_checked_at_once():
    assert f.enroot_stage_problems(["%s/team/train:v1" % OWN], "/fsx/containers", 1) == []
    problems = f.enroot_stage_problems(["%s/team/train:v1" % OWN, "Bad Image"], "fsx", -1)
    assert len(problems) == 3
    assert problems[0].startswith("enroot_stage_images entry 'Bad Image' is not an image reference")
    assert problems[1].startswith("enroot_stage_dir='fsx' must be an absolute path")
    assert problems[2].startswith("enroot_stage_keep=-1 must be 0 or more")
    assert f.enroot_stage_problems("one", "/fsx", 1)[0].startswith("enroot_stage_images must be a list")


def test_the_staged_path_is_the_stable_name():
    assert f.enroot_staged_path("%s/team/train:v1" % OWN, "/fsx/containers") == (
        "/fsx/containers/%s_team_train_v1.sqsh" % OWN)
    assert f.enroot_staged_path("ubuntu", "/fsx") == "/fsx/registry-1.docker.io_library_ubuntu_latest.sqsh"
    with pytest.raises(AnsibleFilterError, match="enroot_staged_path: 'a b' is not an image reference"):
        f.enroot_staged_path("a b", "/fsx")


def test_the_report_section_has_both_jobs_their_times_and_the_failures():
    result = {"runs": [
        {"source": "registry", "image": "%s/team/train:v1" % OWN, "nodes": ["n1", "n2"], "seconds": 11.3,
         "answered": ["n1"], "failure": {"nodes": ["n2"], "kinds": {"n2": "auth"}, "detail": {"n2": "Authenticating"},
                                         "password": {"n2": "Unable to locate credentials."}}},
        {"source": "staged", "image": "/fsx/containers/x.sqsh", "nodes": ["n1", "n2"], "seconds": 2.3,
         "answered": ["n1", "n2"]}],
        "staged": {"path": "/fsx/containers/x.sqsh", "digest": "sha256:ab",
                   "record": {"imported_at": "2026-12-04T21:22:00Z", "import_seconds": 10.56}}}
    text = f.verify_container_registry_markdown(result)
    assert "| pulled by every node | `%s/team/train:v1` | n1, n2 | 11.3 | 1 of 2 |" % OWN in text
    assert "| staged squashfs (no pull) | `/fsx/containers/x.sqsh` | n1, n2 | 2.3 | 2 of 2 |" in text
    assert "imported at 2026-12-04T21:22:00Z in 10.56 s" in text
    assert "Pull failed on n2 (auth): Authenticating; its `aws ecr get-login-password`: Unable to locate credentials." in text
    assert f.verify_container_registry_markdown({}) == ""
