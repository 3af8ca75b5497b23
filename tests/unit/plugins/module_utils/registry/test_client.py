"""Image references, Enroot's credentials file, and digests asked from a real registry (fixture local_registry:
Debian's docker-registry with TLS and ECR's kind of authentication, Basic with user AWS)."""

import socket
import subprocess

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.registry import client as rc

PASSWORD = "123456789012-auth-token"


def test_references_as_pyxis_docker_and_enroot_write_them():
    ecr = rc.parse_reference("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/train:v1")
    assert ecr == {"registry": "123456789012.dkr.ecr.us-east-1.amazonaws.com", "repository": "team/train", "tag": "v1",
                   "digest": "", "uri": "docker://123456789012.dkr.ecr.us-east-1.amazonaws.com/team/train"}
    assert rc.parse_reference("docker://public.ecr.aws#hpc-cloud/nccl-tests:cuda12")["registry"] == "public.ecr.aws"
    hub = rc.parse_reference("ubuntu")
    assert (hub["registry"], hub["repository"], hub["tag"]) == ("registry-1.docker.io", "library/ubuntu", "latest")
    pinned = rc.parse_reference("localhost:5000/a/b@sha256:" + "0" * 64)
    assert (pinned["registry"], pinned["tag"], pinned["digest"]) == ("localhost:5000", "", "sha256:" + "0" * 64)
    for bad in ("", "Team/Train:v1", "host.example.com//x", "a b", "host.example.com/x:tag with space"):
        with pytest.raises(ValueError, match="is not an image reference"):
            rc.parse_reference(bad)


def run_command(argv):
    """AnsibleModule.run_command's answer: (rc, stdout, stderr)."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_credentials_file_passwords_static_and_by_command(tmp_path):
    creds = tmp_path / ".credentials"
    creds.write_text("machine registry.example.com login robot password s3cret\n"
                     "machine 123456789012.dkr.ecr.us-east-1.amazonaws.com login AWS password $(echo from-a-command)\n"
                     "machine broken.example.com login AWS password $(echo 'Unable to locate credentials' >&2; exit 255)\n")
    assert rc.netrc_credentials(str(creds), "registry.example.com:5000", run_command) == ("robot", "s3cret")
    assert rc.netrc_credentials(str(creds), "123456789012.dkr.ecr.us-east-1.amazonaws.com", run_command) == ("AWS", "from-a-command")
    assert rc.netrc_credentials(str(creds), "other.example.com", run_command) is None
    assert rc.netrc_credentials(str(tmp_path / "missing"), "registry.example.com", run_command) is None
    with pytest.raises(rc.RegistryError, match="failed: Unable to locate credentials") as err:
        rc.netrc_credentials(str(creds), "broken.example.com", run_command)
    assert err.value.no_password


@pytest.fixture(name="pushed", scope="module")
def fixture_pushed(local_registry):
    return local_registry.push("team/train:v1")


def test_the_digest_comes_from_the_registry_with_basic_authentication(local_registry, pushed, monkeypatch):
    host, digest = local_registry.host, pushed
    monkeypatch.setenv("SSL_CERT_FILE", local_registry.ca)
    reference = rc.parse_reference("%s/team/train:v1" % host)
    assert rc.manifest_digest(reference, ("AWS", PASSWORD)) == digest
    # A pinned digest is taken as it is.
    assert rc.manifest_digest(rc.parse_reference("%s/team/train@%s" % (host, digest)), None) == digest


def test_a_refused_password_and_no_credentials_are_401s(local_registry, pushed, monkeypatch):  # pylint: disable=unused-argument
    host = local_registry.host
    monkeypatch.setenv("SSL_CERT_FILE", local_registry.ca)
    reference = rc.parse_reference("%s/team/train:v1" % host)
    with pytest.raises(rc.RegistryError, match="answered HTTP 401") as refused:
        rc.manifest_digest(reference, ("AWS", "not-the-token"))
    assert refused.value.status == 401
    with pytest.raises(rc.RegistryError, match="asks for a user and password and Enroot's credentials file has none"):
        rc.manifest_digest(reference, None)
    with pytest.raises(rc.RegistryError, match="answered HTTP 404"):
        rc.manifest_digest(rc.parse_reference("%s/team/train:v2" % host), ("AWS", PASSWORD))


def test_an_unreachable_registry_says_so(monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(rc.RegistryError, match="could not be reached"):
        rc.manifest_digest(rc.parse_reference("127.0.0.1:%d/team/train:v1" % port), None, timeout=5)
