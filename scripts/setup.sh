#!/usr/bin/env bash
# Prepares this machine for the demo and the tests: Debian packages, Node.js,
# a Python virtualenv in .venv, amazon.aws, and ansible-test's offline pip
# bootstrap. Idempotent: a second run only checks and returns in seconds.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
STAMP=$VENV/.setup-stamp
AMAZON_AWS_FROM=ansible==14.5.0   # the ansible package that carries amazon.aws 11.4.0

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(uname -s)" = Linux ] || die "Linux is required (found $(uname -s))."

# --- Debian packages -------------------------------------------------------
APT_PACKAGES=(slurm-wlm slurm-client libslurm-dev munge openssh-server openssh-client
              iproute2 util-linux procps psmisc gcc make libc6-dev python3 rsync shellcheck
              # Open MPI and mpi4py: the distributed checks' MPI all-reduce on the sandbox's nodes.
              openmpi-bin python3-mpi4py
              # The sandbox's AMI layer: Enroot built with musl and makeself, its squashfs tools,
              # a busybox container image; gpg for the docker role's key checks.
              musl-tools makeself binutils squashfs-tools busybox-static gnupg
              # Enroot's run-time dependencies its package declares (the others are already above or
              # in Debian's base): GNU parallel for docker:// imports.
              parallel
              # The sandbox's ECR: Distribution (docker-registry), its htpasswd (apache2-utils), the image
              # tools (umoci, skopeo); the AWS CLI the AMI layer links at /usr/local/bin/aws, with certifi
              # pointing it at the system's CA store.
              docker-registry apache2-utils umoci skopeo awscli python3-certifi
              # ParallelCluster's node daemons run Slurm commands with sudo; its AMIs' Python virtualenvs.
              sudo python3-venv
              # systemd-tmpfiles: a node booted from a custom image makes its boot-time directories with it.
              systemd)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "these Debian packages are missing and installing them needs root: ${missing[*]}"
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  # Packages such as docker-registry start their daemon when installed; nothing is wanted running outside
  # the sandbox, so without a policy of the machine's own, invoke-rc.d is told to start nothing meanwhile.
  policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$made_policy" ]; then rm -f "$policy"; trap - EXIT; fi
fi
# The Debian packages start nothing we want running outside the sandbox.
say "node $(node --version) (pcluster uses it for create/update and dryruns)"

# --- Python ----------------------------------------------------------------
pick_python() {
  local c
  for c in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 \
           python3.13 "$HOME"/.pyenv/versions/3.13*/bin/python3.13 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import venv, sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

req_hash=$(cat requirements.txt requirements-dev.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$req_hash" ]; then
  say "virtualenv up to date: $("$VENV/bin/python" --version) in .venv"
else
  PY=$(pick_python) || die "no Python >= 3.10 found; install python3.12"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating .venv with $PY ($("$PY" --version))"
    "$PY" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip
  say "installing Python packages (pinned, from PyPI)"
  "$VENV/bin/python" -m pip install -q -r requirements-dev.txt
  "$VENV/bin/python" -m pip check >/dev/null || die "pip check failed in .venv"
  echo "$req_hash" > "$STAMP"
fi

# --- the oldest ansible-core the collection supports (meta/runtime.yml) ------
# Tests that depend on ansible-core's behaviour (untrusted inventory values) run on it too.
OLDEST_CORE=$VENV/ansible-core-oldest
oldest_reqs="ansible-core==2.19.4 $(grep -E '^(boto3|botocore|PyYAML)==' requirements.txt | tr '\n' ' ')"
if [ ! -x "$OLDEST_CORE/bin/ansible-playbook" ] || [ "$(cat "$OLDEST_CORE/.stamp" 2>/dev/null)" != "$oldest_reqs" ]; then
  say "installing the oldest supported ansible-core in $OLDEST_CORE"
  rm -rf "$OLDEST_CORE"
  "$VENV/bin/python" -m venv "$OLDEST_CORE"
  # shellcheck disable=SC2086  # one word per requirement
  "$OLDEST_CORE/bin/python" -m pip install -q $oldest_reqs
  echo "$oldest_reqs" > "$OLDEST_CORE/.stamp"
fi

# --- amazon.aws (Galaxy is not reachable; the ansible package carries it) ---
COLL=$VENV/share/ansible/collections/ansible_collections
if [ ! -f "$COLL/amazon/aws/MANIFEST.json" ]; then
  say "unpacking amazon.aws from $AMAZON_AWS_FROM"
  tmp=$(mktemp -d)
  "$VENV/bin/python" -m pip download -q --no-deps -d "$tmp" "$AMAZON_AWS_FROM"
  mkdir -p "$COLL/amazon"
  "$VENV/bin/python" - "$tmp"/ansible-*.whl "$COLL/amazon" <<'PY'
import sys, zipfile, os
whl, dest = sys.argv[1], sys.argv[2]
prefix = "ansible_collections/amazon/aws/"
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(dest, "aws", name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as out:
                out.write(src.read())
PY
  rm -rf "$tmp"
fi

# --- ansible-test's pip bootstrap (its download host is not reachable) -------
# ansible-test bootstraps pip in its venvs from a cached get-pip script named
# after the pip version it pins; this stand-in gets the same pip from PyPI.
pip_version=$("$VENV/bin/python" - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", src.read_text()).group(1))
PY
)
cache=$HOME/.ansible/test/cache
if [ ! -f "$cache/get_pip_${pip_version//./_}.py" ]; then
  mkdir -p "$cache"
  cat > "$cache/get_pip_${pip_version//./_}.py" <<'PY'
"""Offline stand-in for get-pip.py: ensurepip, then the requested packages from PyPI."""
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
packages = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
if packages:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q"] + packages)
PY
fi

say "ready: $("$VENV/bin/python" --version), ansible-core $("$VENV/bin/python" -c 'import ansible; print(ansible.__version__)'), aws-parallelcluster $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("aws-parallelcluster"))')"
