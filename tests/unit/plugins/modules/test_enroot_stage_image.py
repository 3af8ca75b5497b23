"""hpc.pcluster.enroot_stage_image against a real registry (fixture local_registry): digests from the registry,
each imported once, the stable name following the tag, old digests pruned. The import is a stand-in for
`enroot import` that records what it was asked and writes a file (the real Enroot runs in the e2e tests)."""

import json
import os

import pytest

from ansible_collections.hpc.pcluster.plugins.modules import enroot_stage_image
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import run_module


def run(args, check_mode=False):
    return run_module(enroot_stage_image, args, check_mode=check_mode)


@pytest.fixture(name="stage")
def fixture_stage(local_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", local_registry.ca)
    calls = tmp_path / "enroot-calls"
    enroot = tmp_path / "enroot"
    # What `enroot import --output FILE URI` leaves: FILE (here holding the URI it was given).
    enroot.write_text('#!/bin/sh\necho "$*" >> %s\n[ "$1" = import ] && [ "$2" = --output ] && echo "$4" > "$3"\n' % calls)
    enroot.chmod(0o755)
    creds = tmp_path / ".credentials"
    creds.write_text("machine 127.0.0.1 login AWS password $(echo %s)\n" % local_registry.password)
    args = {"image": "%s/team/train:v1" % local_registry.host, "dest": str(tmp_path / "containers"),
            "credentials_file": str(creds), "enroot": str(enroot), "keep": 1}
    return args, calls, tmp_path / "containers"


def calls_of(calls):
    return calls.read_text().splitlines() if calls.exists() else []


def test_imported_once_named_by_digest_then_nothing_to_do(local_registry, stage):
    args, calls, dest = stage
    digest = local_registry.push("team/train:v1")
    first = run(args)
    assert not first.get("failed"), first
    assert first["changed"] and first["imported"] and first["digest"] == digest
    assert first["path"] == str(dest / ("%s.sqsh" % digest.replace(":", "-")))
    assert os.readlink(first["link"]) == os.path.basename(first["path"])
    assert first["link"] == str(dest / ("%s_team_train_v1.sqsh" % local_registry.host.replace(":", "_")))
    assert calls_of(calls) == ["import --output %s/.%s.tmp-%d docker://%s/team/train@%s" % (
        dest, os.path.basename(first["path"]), os.getpid(), local_registry.host, digest)]
    assert oct(os.stat(first["path"]).st_mode & 0o777) == "0o644"
    record = json.loads((dest / ("%s.json" % digest.replace(":", "-"))).read_text())
    assert record["images"] == [args["image"]] and record["digest"] == digest and record["import_seconds"] >= 0
    second = run(args)
    assert not second["changed"] and not second["imported"] and second["record"] == record
    assert len(calls_of(calls)) == 1


def test_a_moved_tag_is_staged_in_check_mode_only_as_a_plan_then_followed_and_old_digests_pruned(local_registry, stage):
    args, calls, dest = stage
    args = dict(args, image="%s/team/moving:v1" % local_registry.host)
    first = local_registry.push("team/moving:v1", build=1)
    assert run(args)["digest"] == first
    second = local_registry.push("team/moving:v1", build=2)
    planned = run(args, check_mode=True)
    assert planned["changed"] and planned["digest"] == second and not planned["imported"]
    assert not os.path.exists(planned["path"]) and len(calls_of(calls)) == 1
    moved = run(args)
    assert moved["changed"] and moved["imported"] and moved["removed"] == []
    assert os.readlink(moved["link"]) == os.path.basename(moved["path"])
    third = local_registry.push("team/moving:v1", build=3)
    latest = run(args)
    # keep=1: the newest and one earlier digest stay; the first goes.
    assert latest["digest"] == third and latest["removed"] == [first]
    assert not (dest / ("%s.sqsh" % first.replace(":", "-"))).exists()
    assert (dest / ("%s.sqsh" % second.replace(":", "-"))).exists()


def test_no_credentials_and_a_refused_password_fail_before_any_import(local_registry, stage, tmp_path):
    args, calls, _dest = stage
    local_registry.push("team/secret:v1", build=4)
    args = dict(args, image="%s/team/secret:v1" % local_registry.host)
    missing = run(dict(args, credentials_file=str(tmp_path / "none")))
    assert missing["failed"] and "asks for a user and password and Enroot's credentials file has none" in missing["msg"]
    (tmp_path / "wrong").write_text("machine 127.0.0.1 login AWS password not-the-token\n")
    refused = run(dict(args, credentials_file=str(tmp_path / "wrong")))
    assert refused["failed"] and refused["status"] == 401
    assert "refused the node's credentials (HTTP 401)" in refused["msg"]
    (tmp_path / "failing").write_text("machine 127.0.0.1 login AWS password $(echo 'Unable to locate credentials' >&2; false)\n")
    no_password = run(dict(args, credentials_file=str(tmp_path / "failing")))
    assert no_password["failed"] and "failed: Unable to locate credentials" in no_password["msg"]
    assert calls_of(calls) == []


def test_bad_arguments_are_refused_naming_them(stage):
    args, _calls, _dest = stage
    bad = run(dict(args, image="Team/Train"))
    assert bad["failed"] and bad["msg"].startswith("hpc.pcluster.enroot_stage_image: image='Team/Train' is not an image")
    assert run(dict(args, keep=-1))["msg"] == "hpc.pcluster.enroot_stage_image: keep=-1 must be 0 or more"
