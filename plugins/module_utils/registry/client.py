# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an image reference names, and its digest asked from the registry as Enroot would ask it.

- ``parse_reference``: ``[docker://]REGISTRY/REPOSITORY[:TAG][@sha256:...]`` (Docker's syntax, which Pyxis
  takes) or Enroot's ``REGISTRY#REPOSITORY...``; a first component without a dot or a colon is a Docker Hub
  repository (``ubuntu:22.04`` is ``registry-1.docker.io/library/ubuntu:22.04``).
- ``netrc_credentials``: the user and password Enroot's credentials file gives a registry, a password
  that is a command (``$(...)``) run the way Enroot runs it, through the shell.
- ``manifest_digest``: the digest of the tag's manifest (or index), from the registry's v2 API with the
  authentication it asks for: Basic (ECR) or a Bearer token (Docker Hub, public.ecr.aws).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode

from ansible.module_utils.urls import open_url

DOCKER_HUB = "registry-1.docker.io"
MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
))
_REFERENCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._/-]*?)(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?"
                        r"(@(?P<digest>sha256:[0-9a-f]{64}))?$")


class RegistryError(Exception):
    """A registry that could not be asked, or refused; status is its HTTP status (0 without one), no_password
    whether the node could not get a password for it (the credentials file's command failed)."""

    def __init__(self, message, status=0, no_password=False):
        super(RegistryError, self).__init__(message)
        self.status = status
        self.no_password = no_password


def parse_reference(image):
    """{registry, repository, tag, digest, uri} of an image reference; ValueError when it is not one."""
    text = image[len("docker://"):] if image.startswith("docker://") else image
    if "#" in text:
        registry, dummy, rest = text.partition("#")
    else:
        first, dummy, rest = text.partition("/")
        registry, rest = (first, rest) if rest and ("." in first or ":" in first or first == "localhost") else ("", text)
    match = _REFERENCE.match(rest)
    if not match or "//" in rest or (registry and not re.match(r"^[A-Za-z0-9.-]+(:[0-9]+)?$", registry)):
        raise ValueError("%r is not an image reference such as 123456789012.dkr.ecr.us-east-1.amazonaws.com/"
                         "team/train:v1 or public.ecr.aws/hpc-cloud/nccl-tests:latest" % image)
    repository = match.group("name")
    if not registry:
        registry = DOCKER_HUB
        repository = repository if "/" in repository else "library/" + repository
    tag = match.group("tag") or ("" if match.group("digest") else "latest")
    return {"registry": registry, "repository": repository, "tag": tag, "digest": match.group("digest") or "",
            "uri": "docker://%s/%s" % (registry, repository)}


def netrc_credentials(path, registry, run_command):
    """(user, password) Enroot's credentials file gives registry (port ignored, as Enroot does), or None.

    A password field starting with "$" is evaluated by the shell, as Enroot's common::evalnetrc does, with
    run_command (AnsibleModule.run_command: argv -> (rc, stdout, stderr)); RegistryError when that command fails,
    with what it printed."""
    host = registry.split(":", 1)[0]
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError):
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[0] == "machine" and fields[1] == host and fields[2] == "login":
            user = fields[3]
            if not fields[5].startswith("$"):
                return user, fields[5]
            rest = line.split(None, 5)[5]
            rc, out, err = run_command(["/bin/sh", "-c", "echo " + rest])
            password = out.strip()
            if rc != 0 or not password:
                raise RegistryError("the password command of %s for %s, %s, failed: %s"
                                    % (path, host, rest, (err.strip() or "it printed nothing")[-500:]),
                                    no_password=True)
            return user, password
    return None


def _request(url, headers, method="GET", timeout=60):
    try:
        response = open_url(url, method=method, headers=headers, timeout=timeout, follow_redirects="safe")
        return response.status, response.headers, response.read() if method == "GET" else b""
    except HTTPError as exc:
        return exc.code, exc.headers, exc.read()
    except (URLError, OSError) as exc:
        raise RegistryError("%s could not be reached: %s" % (url.split("/v2/", 1)[0], getattr(exc, "reason", exc)))


def _challenge(header):
    """(scheme, {param: value}) of a WWW-Authenticate header."""
    scheme, dummy, params = (header or "").strip().partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', params))


def _authorization(registry, repository, challenge, credentials, timeout):
    """The Authorization header that answers the registry's challenge."""
    scheme, params = challenge
    basic = base64.b64encode(("%s:%s" % credentials).encode()).decode() if credentials else None
    if scheme == "basic":
        if not basic:
            raise RegistryError("%s asks for a user and password and Enroot's credentials file has none for it"
                                % registry, 401)
        return "Basic " + basic
    if scheme != "bearer" or "realm" not in params:
        raise RegistryError("%s asks for an authentication this module does not speak: %s" % (registry, scheme))
    query = {"service": params.get("service", ""), "scope": params.get("scope") or "repository:%s:pull" % repository}
    status, _headers, body = _request(params["realm"] + "?" + urlencode(query),
                                      {"Authorization": "Basic " + basic} if basic else {}, timeout=timeout)
    if status != 200:
        raise RegistryError("%s's token service answered HTTP %s" % (registry, status), status)
    answer = json.loads(body.decode() or "{}")
    token = answer.get("token") or answer.get("access_token")
    if not token:
        raise RegistryError("%s's token service gave no token" % registry, 401)
    return "Bearer " + token


def manifest_digest(reference, credentials, timeout=60):
    """The digest of reference's manifest or index (reference as parse_reference returns it)."""
    if reference["digest"]:
        return reference["digest"]
    url = "https://%s/v2/%s/manifests/%s" % (reference["registry"], reference["repository"], reference["tag"])
    headers = {"Accept": MANIFEST_TYPES}
    status, answer, body = _request(url, headers, "HEAD", timeout)
    if status == 401:
        headers["Authorization"] = _authorization(reference["registry"], reference["repository"],
                                                  _challenge(answer.get("WWW-Authenticate")), credentials, timeout)
        status, answer, body = _request(url, headers, "HEAD", timeout)
    if status == 200 and not answer.get("Docker-Content-Digest"):
        status, answer, body = _request(url, headers, "GET", timeout)
    if status != 200:
        raise RegistryError("%s answered HTTP %s for %s:%s" % (reference["registry"], status, reference["repository"],
                                                               reference["tag"]), status)
    return answer.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()
