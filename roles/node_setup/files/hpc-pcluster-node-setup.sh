#!/usr/bin/env bash
# hpc.pcluster node setup: a step of AWS ParallelCluster's OnNodeConfigured
# sequence (CustomActions of a queue), run as root on every compute node when
# it boots - static nodes, dynamic nodes powered up for a job, nodes that
# replace others.
#
# It runs the node-setup bundle that the hpc.pcluster playbooks stage on the
# head node's shared storage: the collection's own node roles (Docker, Enroot,
# Pyxis), the variables the controller resolved for the cluster and a pinned
# ansible-core, applied locally (ansible-playbook -c local).
#
#   hpc-pcluster-node-setup.sh [--dir DIR] [--wait SECONDS]
#     --dir   the bundle directory on shared storage (default below)
#     --wait  how long to wait for a bundle that is not there yet (default 0)
#
# Exit status: the local run's. A node that could not be set up fails its
# bootstrap, and ParallelCluster replaces it rather than giving it jobs.
# No bundle (a cluster's very first create: the playbook stages it once the
# cluster is up, then sets up the nodes that are already running with one
# Slurm job) is not a failure: the node is recorded as pending and boots on.
set -uo pipefail

dir=/opt/slurm/hpc-pcluster/node-setup
wait_seconds=0
# The node's own record of its setup (run.py reads the same variable).
state_dir=${HPC_PCLUSTER_NODE_SETUP_STATE_DIR:-/var/lib/hpc-pcluster/node-setup}

while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=${2:?--dir needs a directory}; shift 2 ;;
    --wait) wait_seconds=${2:?--wait needs a number of seconds}; shift 2 ;;
    *) echo "hpc-pcluster-node-setup: unknown argument '$1' (known: --dir DIR, --wait SECONDS)" >&2; exit 2 ;;
  esac
done
case $wait_seconds in
  ''|*[!0-9]*) echo "hpc-pcluster-node-setup: --wait '$wait_seconds' is not a number of seconds" >&2; exit 2 ;;
esac

say() {
  echo "hpc-pcluster-node-setup: $*"
  logger -t hpc-pcluster-node-setup -- "$*" 2>/dev/null || true
}

runner=$dir/current/run.py
python=$dir/current/venv/bin/python
deadline=$(( $(date +%s) + wait_seconds ))
while [ ! -f "$runner" ] || [ ! -x "$python" ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    say "no node-setup bundle in $dir (not staged yet); this node is left to the playbook's fleet-wide run"
    mkdir -p "$state_dir"
    printf '{"status": "pending", "mode": "boot", "message": "no node-setup bundle at boot", "time": %s}\n' \
      "$(date +%s)" > "$state_dir/result.json"
    exit 0
  fi
  sleep 2
done

exec "$python" "$runner" boot
