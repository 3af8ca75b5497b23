"""Role hpc.pcluster.docker's repository and package-file handling, run for real with ansible-playbook on
localhost against directories of the test's own (no package is installed, nothing outside tmp_path changes).

Docker's apt source is checked by apt itself, offline: ``apt-get indextargets`` parses the sources of a
directory given as Dir::Etc and fails on two lines for one repository with different Signed-By."""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import re
import shutil
import stat
import subprocess
import threading

import pytest

from ansible_collections.hpc.pcluster.tests.unit.roles import playbook_run
from ansible_collections.hpc.pcluster.tests.unit.roles.playbook_run import recap

HERE = pathlib.Path(__file__).resolve().parent / "docker"
DOCKER_KEY = HERE / "files" / "docker-release.asc"
DOCKER_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
# What the aws-samples post-install script (docker/postinstall.sh) writes on Ubuntu 22.04 x86_64:
# its `echo "deb [arch=$(dpkg --print-architecture) signed-by=...] ... \<newline>    $(lsb_release -cs) stable"`.
SCRIPT_DOCKER_LIST = ("deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/ubuntu"
                      "     jammy stable\n")

pytestmark = pytest.mark.skipif(not shutil.which("gpg") or not shutil.which("apt-get"), reason="needs gpg and apt")


def ansible_playbook(playbook, extra, *args):
    return playbook_run.ansible_playbook(HERE / playbook, HERE / "inventory", *args, extra=extra)


def apt_targets(etc):
    """apt's own parse of the sources under etc (a stand-in for /etc/apt): (rc, sites, stderr)."""
    state, cache = etc.parent / "apt-state", etc.parent / "apt-cache"
    for d in (state / "lists" / "partial", cache / "archives" / "partial"):
        d.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["apt-get", "indextargets", "--no-release-info", "-o", "Dir::Etc=%s" % etc,
                           "-o", "Dir::State=%s" % state, "-o", "Dir::Cache=%s" % cache, "--format", "$(SITE)"],
                          capture_output=True, text=True, check=False)
    return proc.returncode, set(proc.stdout.split()), proc.stderr


@pytest.fixture(name="apt_dir")
def fixture_apt_dir(tmp_path):
    etc = tmp_path / "etc" / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "keyrings").mkdir()
    (etc / "sources.list").write_text("")
    return etc


def role_vars(etc, tmp_path, **more):
    out = {"docker_apt_sources_dir": str(etc / "sources.list.d"), "docker_apt_keyrings_dir": str(etc / "keyrings"),
           "docker_package_staging_dir": str(tmp_path / "staging"), "docker_apt_gpg_key_url": DOCKER_KEY.as_uri()}
    out.update(more)
    return out


def dearmor(source, target):
    subprocess.run(["gpg", "--batch", "--yes", "--dearmor", "-o", str(target), str(source)], check=True,
                   env=dict(os.environ, GNUPGHOME=str(target.parent)), capture_output=True)


def test_the_script_s_source_is_reused_and_apt_still_reads_the_sources(apt_dir, tmp_path):
    # The files the aws-samples script leaves, as it writes them (the key dearmored from Docker's published key).
    docker_list = apt_dir / "sources.list.d" / "docker.list"
    docker_list.write_text(SCRIPT_DOCKER_LIST.replace("/etc/apt/keyrings", str(apt_dir / "keyrings")))
    dearmor(DOCKER_KEY, apt_dir / "keyrings" / "docker.gpg")
    before = {p.name: p.read_bytes() for p in (apt_dir / "sources.list.d").iterdir()}
    assert apt_targets(apt_dir)[:2] == (0, {"https://download.docker.com/linux/ubuntu"})

    for _run in (1, 2):
        result = ansible_playbook("apt_source.yml", role_vars(apt_dir, tmp_path))
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr
        assert recap(result, "changed") == 0
        assert "reused, nothing written" in result.stdout

    assert {p.name: p.read_bytes() for p in (apt_dir / "sources.list.d").iterdir()} == before
    assert not (apt_dir / "keyrings" / "docker.asc").exists()
    rc, sites, err = apt_targets(apt_dir)
    assert rc == 0, err
    assert sites == {"https://download.docker.com/linux/ubuntu"}


def test_a_second_line_with_another_signed_by_is_what_apt_refuses(apt_dir):
    # The failure the reuse avoids: what adding the role's own line to the script's file did.
    docker_list = apt_dir / "sources.list.d" / "docker.list"
    docker_list.write_text(SCRIPT_DOCKER_LIST + "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
                           "https://download.docker.com/linux/ubuntu jammy stable\n")
    rc, _sites, err = apt_targets(apt_dir)
    assert rc != 0
    assert "Conflicting values set for option Signed-By" in err


def test_without_a_source_the_key_is_checked_and_the_file_written_whole(apt_dir, tmp_path):
    first = ansible_playbook("apt_source.yml", role_vars(apt_dir, tmp_path))
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    assert recap(first, "changed") >= 2
    keyring = apt_dir / "keyrings" / "docker.asc"
    assert keyring.read_bytes() == DOCKER_KEY.read_bytes()
    lines = (apt_dir / "sources.list.d" / "docker.list").read_text().splitlines()
    assert len(lines) == 1 and ("signed-by=%s]" % keyring) in lines[0]
    assert lines[0].endswith("https://download.docker.com/linux/ubuntu %s stable" % lines[0].split()[-2])
    rc, sites, err = apt_targets(apt_dir)
    assert rc == 0 and sites == {"https://download.docker.com/linux/ubuntu"}, err

    second = ansible_playbook("apt_source.yml", role_vars(apt_dir, tmp_path))
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr
    assert recap(second, "changed") == 0


def test_a_key_with_another_fingerprint_is_refused(apt_dir, tmp_path):
    result = ansible_playbook("apt_source.yml", role_vars(apt_dir, tmp_path, docker_apt_gpg_key_fingerprint="A" * 40))
    assert result.returncode != 0
    assert "has the fingerprint(s) %s" % DOCKER_FINGERPRINT in result.stdout
    assert "not the pinned %s" % ("A" * 40) in result.stdout
    assert not (apt_dir / "keyrings" / "docker.asc").exists()
    assert not (apt_dir / "sources.list.d" / "docker.list").exists()


def test_a_configured_source_whose_keyring_is_not_docker_s_is_replaced_or_refused(apt_dir, tmp_path):
    # Not Docker's key: a key pair of the test's own.
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "someone@example.invalid", "ed25519"],
                   env=env, check=True, capture_output=True)
    other = apt_dir / "keyrings" / "other.gpg"
    subprocess.run(["gpg", "--batch", "--output", str(other), "--export", "someone@example.invalid"], env=env,
                   check=True, capture_output=True)
    line = "deb [signed-by=%s] https://download.docker.com/linux/ubuntu jammy stable\n" % other

    # In another file: refused, with the fix.
    (apt_dir / "sources.list.d" / "docker-ce.list").write_text(line)
    refused = ansible_playbook("apt_source.yml", role_vars(apt_dir, tmp_path))
    assert refused.returncode != 0
    assert "is missing, is not Docker's key" in refused.stdout and str(other) in refused.stdout

    # In the role's own file: written whole with Docker's checked key.
    (apt_dir / "sources.list.d" / "docker-ce.list").unlink()
    (apt_dir / "sources.list.d" / "docker.list").write_text(line)
    replaced = ansible_playbook("apt_source.yml", role_vars(apt_dir, tmp_path))
    assert replaced.returncode == 0, replaced.stdout[-4000:]
    assert str(other) not in (apt_dir / "sources.list.d" / "docker.list").read_text()
    assert apt_targets(apt_dir)[0] == 0


def test_package_files_are_staged_root_owned_then_checked(tmp_path):
    shared = tmp_path / "fsx"
    shared.mkdir()
    package = shared / "docker-ce_27.5.1_amd64.deb"
    package.write_bytes(b"not the package that was pinned\n")
    staging = tmp_path / "staging"
    extra = {"docker_package_files": [str(package)], "docker_package_staging_dir": str(staging),
             "docker_package_checksums": {str(package): "sha256:" + "1" * 64},
             # An engine this machine may have installed itself (the role refuses to replace it, before any copy)
             # is none of this test's business: the role looks for an engine package no machine has.
             "__docker_engine_packages": {"hpc-pcluster-no-such-engine": "distribution"}}
    result = ansible_playbook("package_files.yml", extra)
    assert result.returncode != 0
    assert "do not match docker_package_checksums (nothing was installed)" in result.stdout
    assert re.search(r"docker-ce_27.5.1_amd64.deb: sha256 [0-9a-f]{64}, expected sha256:1111", result.stdout)
    copy = staging / package.name
    assert copy.read_bytes() == package.read_bytes()
    mode = copy.stat()
    assert (mode.st_uid, stat.S_IMODE(mode.st_mode), stat.S_IMODE(staging.stat().st_mode)) == (0, 0o600, 0o700)


def test_package_file_checksums_must_be_strong(tmp_path):
    extra = {"docker_package_files": ["/fsx/a.deb", "/fsx/b.deb", "/fsx/c.deb"],
             "docker_package_staging_dir": str(tmp_path / "staging"),
             "docker_package_checksums": {"/fsx/a.deb": "sha1:" + "1" * 40, "/fsx/b.deb": "md5:" + "1" * 32}}
    result = ansible_playbook("package_files.yml", extra)
    assert result.returncode != 0
    assert "docker_package_checksums['/fsx/a.deb'] uses sha1, which is refused" in result.stdout
    assert "docker_package_checksums['/fsx/b.deb'] uses md5, which is refused" in result.stdout
    assert "docker_package_checksums['/fsx/c.deb']='' must be 'sha256:<hex>'" in result.stdout
    assert not (tmp_path / "staging").exists()


DOCKER_SERVICE = """#!/bin/sh
# A docker_service_command: each call is recorded; restart fails while the 'broken' file exists.
echo "$1" >> "$(dirname "$0")/calls"
case "$1" in start) echo running ;; restart) [ ! -e "$(dirname "$0")/broken" ] && echo restarted ;; esac
"""


def test_a_restart_that_failed_is_done_by_the_next_run(tmp_path):
    (tmp_path / "docker-service").write_text(DOCKER_SERVICE)
    (tmp_path / "docker-service").chmod(0o755)
    (tmp_path / "broken").touch()
    pending = tmp_path / "state" / "restart-pending"
    first = ansible_playbook("restart.yml", {"docker_test_dir": str(tmp_path)})
    assert first.returncode != 0, first.stdout
    assert (tmp_path / "calls").read_text().split() == ["start", "restart"] and pending.is_file()

    (tmp_path / "broken").unlink()
    second = ansible_playbook("restart.yml", {"docker_test_dir": str(tmp_path)})
    assert second.returncode == 0, second.stdout + second.stderr
    assert (tmp_path / "calls").read_text().split() == ["start", "restart", "start", "restart"]
    assert not pending.exists() and "did not restart the engine" in second.stdout

    third = ansible_playbook("restart.yml", {"docker_test_dir": str(tmp_path)})
    assert third.returncode == 0 and recap(third, "changed") == 0, third.stdout
    assert (tmp_path / "calls").read_text().split() == ["start", "restart", "start", "restart", "start"]


def test_a_missing_service_command_is_named_with_its_variable(tmp_path):
    result = ansible_playbook("restart.yml", {"docker_test_dir": str(tmp_path),
                                              "docker_service_command": [str(tmp_path / "nowhere")]})
    assert result.returncode != 0
    assert "%s not found on localhost" % (tmp_path / "nowhere") in " ".join(result.stdout.split())


class FlakyKeyServer:
    """Serves Docker's key over HTTP, answering 503 to the first `failures` requests: a repository hiccup."""

    def __init__(self, failures):
        self.failures, self.requests = failures, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
                outer.requests += 1
                if outer.requests <= outer.failures:
                    self.send_error(503, "Service Unavailable")
                    return
                body = DOCKER_KEY.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/gpg" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_key_download_is_retried_through_a_short_outage(apt_dir, tmp_path):
    # A node that boots while the repository answers 503 twice still gets its key, and so does not fail its
    # bootstrap; a longer outage fails, once the retries are spent.
    server = FlakyKeyServer(failures=2)
    try:
        result = ansible_playbook("apt_source.yml", role_vars(apt_dir, tmp_path, docker_apt_gpg_key_url=server.url,
                                                              docker_download_retries=3, docker_download_delay=1))
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr
        assert server.requests == 3
        assert (apt_dir / "keyrings" / "docker.asc").read_bytes() == DOCKER_KEY.read_bytes()
    finally:
        server.close()
    server = FlakyKeyServer(failures=10)
    again = tmp_path / "again" / "etc" / "apt"
    (again / "sources.list.d").mkdir(parents=True)
    (again / "keyrings").mkdir()
    try:
        result = ansible_playbook("apt_source.yml", role_vars(again, tmp_path / "again", docker_apt_gpg_key_url=server.url,
                                                              docker_download_retries=2, docker_download_delay=1))
        assert result.returncode != 0 and server.requests == 3 and "503" in result.stdout
    finally:
        server.close()


def test_daemon_json_is_written_with_live_restore_and_its_values_never_shown(tmp_path):
    # A secret in docker_daemon_options (here a proxy's password) is written, never printed: not in the diff, not in
    # the task's result, even with -v and --diff.
    path = tmp_path / "docker" / "daemon.json"
    options = {"proxies": {"http-proxy": "http://builder:S3cr3t-proxy-password@proxy.example:3128"},
               "log-driver": "json-file"}
    for run in (1, 2):
        result = ansible_playbook("daemon.yml", {"docker_daemon_json_path": str(path), "docker_daemon_options": options},
                                  "-v", "--diff")
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr
        assert "S3cr3t" not in result.stdout + result.stderr
        assert (recap(result, "changed") > 0) == (run == 1)
    written = json.loads(path.read_text())
    assert written == dict(options, **{"live-restore": True})
    result = ansible_playbook("daemon.yml", {"docker_daemon_json_path": str(path), "docker_daemon_options": options,
                                             "docker_live_restore": False})
    assert json.loads(path.read_text()) == options
