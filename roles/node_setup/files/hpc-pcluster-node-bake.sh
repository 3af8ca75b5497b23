#!/usr/bin/env bash
# hpc.pcluster node bake: a script component (Build.Components) of an AWS ParallelCluster
# custom image (pcluster build-image), written by role hpc.pcluster.image_config. Image
# Builder runs it as root on the build instance.
#
# It applies to the build instance what the node-setup bundle applies to a compute node
# at boot - the collection's node roles (Docker, Enroot, Pyxis) with the variables the
# controller resolved, through the bundle's own run.py and playbook - and records what it
# applied in /var/lib/hpc-pcluster/node-setup/image.json. The boot step of a node started
# from the image compares that record with the cluster's bundle: the same collection and
# variables answer up-to-date without running the roles; any difference runs them.
#
# Everything it needs is below the payload line (a base64 gzipped tar): the collection,
# the variables, run.py and the wheels of ansible-core @ANSIBLE_CORE@ for Python
# @PYTHON_VERSION@. Nothing is downloaded. Bake @BAKE_ID@.
set -euo pipefail

python=${HPC_PCLUSTER_BAKE_PYTHON:-@PYTHON@}
want=@PYTHON_VERSION@
work=${HPC_PCLUSTER_BAKE_DIR:-@WORK_DIR@}

say() {
  echo "hpc-pcluster-node-bake: $*"
}

have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>&1) || {
  say "cannot run $python ($have): the image's Python is needed to apply the node setup"
  exit 1
}
if [ "$have" != "$want" ]; then
  say "$python is Python $have, but this bake carries ansible-core for Python $want: set image_config_python and image_config_python_version to the parent image's Python"
  exit 1
fi

rm -rf "$work"
mkdir -m 0700 "$work"
trap 'rm -rf "$work"' EXIT
sed '1,/^__HPC_PCLUSTER_BAKE_PAYLOAD__$/d' "$0" | base64 -d | tar -xzf - -C "$work" --no-same-owner
mkdir -p "$work/bundle/collections/ansible_collections/hpc/pcluster"
tar -xzf "$work/collection.tar.gz" -C "$work/bundle/collections/ansible_collections/hpc/pcluster" --no-same-owner
"$python" -m venv --without-pip --system-site-packages "$work/venv"
pip_wheel=$(find "$work/wheels" -name 'pip-*.whl' | head -n 1)
"$work/venv/bin/python" "$pip_wheel/pip" install --quiet --disable-pip-version-check --no-index \
  --find-links "$work/wheels" --no-warn-script-location "ansible-core==@ANSIBLE_CORE@"
ln -s ../venv "$work/bundle/venv"

say "applying the node-setup roles to this image (bake @BAKE_ID@)"
"$work/venv/bin/python" "$work/bundle/run.py" bake
exit 0
