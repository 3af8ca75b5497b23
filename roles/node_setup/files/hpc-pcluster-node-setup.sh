#!/usr/bin/env bash
# hpc.pcluster node-setup loader - interface 1.
#
# A step of AWS ParallelCluster's OnNodeConfigured sequence (CustomActions of every queue), run as
# root on every compute node when it boots - static nodes, dynamic nodes powered up for a job, nodes
# that replace others - and, with --fleet, the task the fleet-wide Slurm job runs on each node.
#
# It runs the node-setup bundle that the hpc.pcluster playbooks stage on the head node's shared
# storage (the collection's node roles, the variables the controller resolved, a pinned
# ansible-core), once it has checked that only root can have written any of it.
#
#   hpc-pcluster-node-setup.sh [--dir DIR] [--wait SECONDS]   at boot
#   hpc-pcluster-node-setup.sh [--dir DIR] --fleet [--force]  the fleet-wide job's task
#   hpc-pcluster-node-setup.sh [--dir DIR] --check            only the ownership check (staging)
#     --dir    the bundle directory on shared storage (default below)
#     --wait   how long to wait at boot for a bundle that is not there yet (default 0)
#
# This loader's S3 key and its Args in the cluster config change only when this interface (its
# arguments and what it promises) changes: what changes from release to release is in the bundle.
#
# Trust: DIR, every directory above it, the bundle and the Python environment it runs (and where
# their links lead) must be owned by root and writable by nobody else. Anything else would let a
# user who can write there run code as root on every node.
#
# At boot, when the bundle is missing (a cluster's very first create: the playbook stages it once
# the cluster is up) or not trusted:
# - a static node (any but <queue>-dy-<...>) is held out of scheduling - a Slurm maintenance reservation of its own,
#   hpc-pcluster-node-setup-<node>, which ParallelCluster's readiness check and clustermgtd accept
#   as they accept a node in maintenance - and boots on; the fleet-wide job sets it up and releases it;
# - a dynamic node fails its bootstrap: it was powered up for a job that would otherwise run on it
#   unconfigured, and ParallelCluster powers it down and gives the job another node.
# Exit status: the local run's (0 ok, 1 failed), 2 for bad arguments, 3 for --check refusing.
set -uo pipefail
umask 077

dir=/opt/slurm/hpc-pcluster/node-setup
wait_seconds=0
mode=boot
force=
# The node's own record of its setup (run.py reads the same variable); root's only.
state_dir=${HPC_PCLUSTER_NODE_SETUP_STATE_DIR:-/var/lib/hpc-pcluster/node-setup}
result_mark=HPC_PCLUSTER_NODE_SETUP_RESULT
hold_prefix=hpc-pcluster-node-setup-

usage_error() { echo "hpc-pcluster-node-setup: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    --dir) [ $# -ge 2 ] || usage_error "--dir needs a directory"; dir=$2; shift 2 ;;
    --wait) [ $# -ge 2 ] || usage_error "--wait needs a number of seconds"; wait_seconds=$2; shift 2 ;;
    --fleet) mode=fleet; shift ;;
    --force) force=--force; shift ;;
    --check) mode=check; shift ;;
    *) usage_error "unknown argument '$1' (known: --dir DIR, --wait SECONDS, --fleet [--force], --check)" ;;
  esac
done
case $wait_seconds in
  ''|*[!0-9]*) usage_error "--wait '$wait_seconds' is not a number of seconds" ;;
esac
case $dir in
  /*) ;;
  *) usage_error "--dir '$dir' is not an absolute path" ;;
esac

say() {
  echo "hpc-pcluster-node-setup: $*"
  logger -t hpc-pcluster-node-setup -- "$*" 2>/dev/null || true
}

# ------------------------------------------------------------------------------------- trust

# Why path may not be trusted (nothing when it may): the path and every directory above it, before
# and after its links are resolved, owned by root and not writable by group or others. Only the
# existing part is checked with --allow-missing (what does not exist yet is created by root).
untrusted_path() {
  local path=$1 allow_missing=${2:-} resolved part info uid perms kind
  while [ -n "$allow_missing" ] && [ "$path" != / ] && [ ! -e "$path" ] && [ ! -L "$path" ]; do
    path=$(dirname -- "$path")
  done
  resolved=$(readlink -f -- "$path") || { echo "$path cannot be resolved"; return; }
  for part in "$path" "$resolved"; do
    while :; do
      info=$(stat -c '%u %a %F' -- "$part" 2>/dev/null) || { echo "$part does not exist or cannot be read"; return; }
      uid=${info%% *}; perms=${info#* }; kind=${perms#* }; perms=${perms%% *}
      if [ "$uid" != 0 ]; then echo "$part is owned by uid $uid, not root"; return; fi
      if [ "$kind" != "symbolic link" ] && (( 8#$perms & 8#022 )); then
        echo "$part can be written by others than root (mode $perms)"; return
      fi
      [ "$part" = / ] && break
      part=$(dirname -- "$part")
    done
  done
}

# Why a tree may not be trusted: its first file or directory not owned by root or writable by others.
untrusted_tree() {
  local found
  found=$(find "$1" \( ! -user 0 -o \( ! -type l -perm /022 \) \) -print -quit 2>&1) || { echo "$1 cannot be read: $found"; return; }
  [ -n "$found" ] && echo "$found is not root's alone (owner $(stat -c '%U, mode %a' -- "$found"))"
}

# Why the bundle may not be run (nothing when it may).
untrusted_bundle() {
  local why bundle venv
  if ! bundle=$(readlink -f -- "$dir/current") || ! venv=$(readlink -f -- "$dir/current/venv"); then
    echo "$dir/current cannot be resolved"; return
  fi
  for why in "$(untrusted_path "$dir/current/run.py")" "$(untrusted_path "$dir/current/venv/bin/python")" \
             "$(untrusted_tree "$bundle")" "$(untrusted_tree "$venv")"; do
    [ -n "$why" ] && { echo "$why"; return; }
  done
}

# ------------------------------------------------------------------------------------- Slurm

node_name() {
  local name=${SLURMD_NODENAME:-}
  [ -z "$name" ] && name=$(cat /etc/parallelcluster/slurm_plugin/slurm_nodename 2>/dev/null)
  [ -z "$name" ] && name=$(hostname -s)
  echo "$name"
}

scontrol_command() {
  command -v scontrol 2>/dev/null || { [ -x /opt/slurm/bin/scontrol ] && echo /opt/slurm/bin/scontrol; }
}

# Hold the node out of scheduling: a maintenance reservation of its own, for root, from now on, that
# the next successful setup deletes (run.py). Prints what happened.
hold_node() {
  local node=$1 scontrol out
  scontrol=$(scontrol_command) || { echo "no scontrol to hold it with"; return 1; }
  out=$("$scontrol" create reservation "ReservationName=$hold_prefix$node" "Nodes=$node" StartTime=now \
        Duration=UNLIMITED Users=root Flags=MAINT,IGNORE_JOBS 2>&1) && { echo "held ($hold_prefix$node)"; return 0; }
  case $out in
    *[Dd]uplicate*|*already*) echo "held already ($hold_prefix$node)"; return 0 ;;
  esac
  echo "could not be held: $out"
  return 1
}

# ------------------------------------------------------------------------------------- records

json_text() {
  local text=${1//\\/\\\\}
  text=${text//\"/\\\"}
  printf '"%s"' "$(printf '%s' "$text" | tr '\n\t\r' '   ')"
}

record() {
  local status=$1 message=$2 hold=$3
  mkdir -p -- "$state_dir" && chmod 700 -- "$state_dir" || return 0
  printf '{"status": "%s", "mode": "%s", "node": %s, "message": %s, "hold": %s, "time": %s}\n' "$status" "$mode" \
    "$(json_text "$(node_name)")" "$(json_text "$message")" "$(json_text "$hold")" "$(date +%s)" > "$state_dir/result.json"
}

# ------------------------------------------------------------------------------------- main

runner=$dir/current/run.py
python=$dir/current/venv/bin/python

if [ "$mode" = check ]; then
  why=$(untrusted_path "$dir" allow-missing)
  [ -z "$why" ] && [ -e "$dir/current" ] && why=$(untrusted_bundle)
  [ -z "$why" ] && { echo "hpc-pcluster-node-setup: $dir is root's alone"; exit 0; }
  # On stdout: over SSH with a terminal, stderr would arrive mixed into it anyway.
  echo "hpc-pcluster-node-setup: $dir is not trusted: $why"
  exit 3
fi

if [ "$mode" = fleet ]; then
  why=$(untrusted_path "$dir")
  [ -z "$why" ] && why=$(untrusted_bundle)
  if [ -n "$why" ]; then
    node=$(node_name)
    message="the node-setup bundle is not trusted, nothing of it was run: $why; this node $(hold_node "$node")"
    record failed "$message" "$hold_prefix$node"
    echo "$result_mark ${node// /_} 1/1 {\"node\": $(json_text "$node"), \"status\": \"failed\", \"failed\": 1, \"failed_task\": \"trust check\", \"message\": $(json_text "$message")}"
    exit 1
  fi
  exec "$python" "$runner" fleet $force
fi

deadline=$(( $(date +%s) + wait_seconds ))
while [ ! -f "$runner" ] || [ ! -x "$python" ]; do
  [ "$(date +%s)" -ge "$deadline" ] && break
  sleep 2
done
if [ ! -f "$runner" ] || [ ! -x "$python" ]; then
  why="no node-setup bundle in $dir (not staged yet, or shared storage not reachable)"
else
  why=$(untrusted_path "$dir")
  [ -z "$why" ] && why=$(untrusted_bundle)
  [ -n "$why" ] && why="the node-setup bundle is not trusted, nothing of it was run: $why"
fi
[ -z "$why" ] && exec "$python" "$runner" boot

node=$(node_name)
case $node in
  *-dy-*)
    say "$why; $node is a dynamic node, powered up for a job that would run on it unconfigured: failing its bootstrap (ParallelCluster gives the job another node)"
    record failed "$why" ""
    exit 1 ;;
esac
if held=$(hold_node "$node"); then
  say "$why; $node is $held until the playbook's fleet-wide run sets it up"
  record pending "$why" "$hold_prefix$node"
  exit 0
fi
say "$why; $node $held: failing its bootstrap rather than giving it jobs"
record failed "$why; $held" ""
exit 1
