#!/usr/bin/env bash
# shellcheck disable=SC2317  # suites are called indirectly, as run_<name>
# Runs the project's test suites and exits non-zero if any of them failed.
#   scripts/test.sh            every suite
#   scripts/test.sh unit lint  only those suites
# Suites: lint sanity unit integration molecule
#
# The suites run in three lanes at once: the sandbox suites spend most of their time waiting on
# Slurm, ssh and the nodes, not on this machine's cores, so the static checks and the molecule
# scenarios (each in a sandbox of its own) run beside the integration tests (whose tests/e2e,
# on sandboxes of their own and in three processes, run beside tests/integration):
#   integration | molecule | lint, sanity, unit
# tests/e2e takes longest, so everything else runs at a lower priority (nice 10) and takes the
# cores while it waits. Each suite's output goes to tests/output/suites/<suite>.log and is printed whole when the suite
# ends. HPC_PCLUSTER_TEST_LANES=1 runs the suites one after another instead, printing as they go
# (as does a run of one suite).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
export PATH=$ROOT/.venv/bin:$PATH
export ANSIBLE_CONFIG=$ROOT/ansible.cfg
PY=$ROOT/.venv/bin/python
LOGS=$ROOT/tests/output/suites

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(lint sanity unit integration molecule)
for s in "${suites[@]}"; do
  case $s in
    lint | sanity | unit | integration | molecule) ;;
    *) echo "scripts/test.sh: unknown suite '$s' (suites: lint sanity unit integration molecule)" >&2; exit 2 ;;
  esac
done

run_lint() {
  ansible-lint --offline --profile production && yamllint -s . &&
    # changelogs/: fragments and changelog.yaml (antsibull-changelog); plugin and role docs (antsibull-docs).
    # Both read the collection where Ansible finds it: collections/ansible_collections/hpc/pcluster.
    (cd collections/ansible_collections/hpc/pcluster &&
       antsibull-changelog lint && antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml &&
       antsibull-docs lint-collection-docs --plugin-docs .)
}

run_sanity() {
  # ansible-test needs the collection at .../ansible_collections/hpc/pcluster.
  local work
  work=$(mktemp -d)
  mkdir -p "$work/ansible_collections/hpc"
  git ls-files -co --exclude-standard -z | grep -zv '^collections/' |
    rsync -a --from0 --files-from=- ./ "$work/ansible_collections/hpc/pcluster/"
  (cd "$work/ansible_collections/hpc/pcluster" && git init -q && git add -A &&
     ansible-test sanity --venv --python "$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
       2>&1)
  local rc=$?
  rm -rf "$work"
  return "$rc"
}

run_unit() {
  "$PY" -m pytest -q --durations=10 tests/unit
}

# tests/e2e runs in three processes beside tests/integration, each with sandboxes of its own: the tests on the
# sandbox with a dynamic node (test_node_*.py), the ones with a sandbox per module (E2E_OWN_SANDBOXES), and the rest
# on the session's sandbox (deploy.yml's first run, then the tests that look at it, one after another).
E2E_OWN_SANDBOXES=(tests/e2e/test_stack_cluster.py tests/e2e/test_distributed.py)

run_integration() {
  # tests/integration runs on the default sandbox (sandbox/.state: started here when it is not up,
  # and brought down after); tests/e2e brings up sandboxes of its own, in three processes beside it.
  local started=0 rc=0 pid pids=() own=() file
  # tests/e2e first: its processes take longest, and they bring up sandboxes of their own.
  for file in "${E2E_OWN_SANDBOXES[@]}"; do own+=(--ignore="$file"); done
  "$PY" -m pytest -q --durations=15 tests/e2e/test_node_*.py >"$LOGS/integration-e2e-nodes.log" 2>&1 &
  pids+=($!)
  "$PY" -m pytest -q --durations=15 "${E2E_OWN_SANDBOXES[@]}" >"$LOGS/integration-e2e-own.log" 2>&1 &
  pids+=($!)
  "$PY" -m pytest -q --durations=15 --ignore-glob='*/e2e/test_node_*' "${own[@]}" tests/e2e >"$LOGS/integration-e2e.log" 2>&1 &
  pids+=($!)
  if ! "$PY" sandbox/sandbox.py status >/dev/null 2>&1; then
    # As make sandbox-up: these tests watch clustermgtd replace nodes and stop the fleet (its loop: 10 s).
    if $background "$PY" sandbox/sandbox.py up --clustermgtd-loop-time 10; then
      started=1
    else
      rc=1
    fi
  fi
  if [ "$rc" -eq 0 ]; then
    echo "--- pytest tests/integration"
    $background "$PY" -m pytest -q --durations=15 tests/integration || rc=1
  fi
  # Its sandbox goes as soon as it is done with: an idle sandbox still costs the machine CPU.
  [ "$started" -eq 1 ] && "$PY" sandbox/sandbox.py down >/dev/null 2>&1
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  echo "--- pytest tests/e2e (on the session's sandbox)"
  cat "$LOGS/integration-e2e.log"
  echo "--- pytest ${E2E_OWN_SANDBOXES[*]}"
  cat "$LOGS/integration-e2e-own.log"
  echo "--- pytest tests/e2e/test_node_*.py"
  cat "$LOGS/integration-e2e-nodes.log"
  return "$rc"
}

run_molecule() {
  local rc=0 found=0 role scenario
  for role in roles/*/; do
    [ -d "$role/molecule" ] || continue
    for scenario in "$role"molecule/*/; do
      [ -f "$scenario/molecule.yml" ] || continue
      found=1
      echo "--- molecule: $role $(basename "$scenario")"
      (cd "$role" && molecule test -s "$(basename "$scenario")") || rc=1
    done
  done
  [ "$found" -eq 1 ] || echo "no molecule scenarios"
  return "$rc"
}

# run_suite NAME: runs it with its output in $LOGS/NAME.log, records "passed|FAILED (N s)" in
# $LOGS/NAME.result, then prints the log whole (one lane at a time: $LOGS/.print.lock).
run_suite() {
  local s=$1 start rc
  echo "=== $s: started $(date +%H:%M:%S)"
  start=$(date +%s)
  if [ "$live" -eq 1 ]; then
    "run_$s" 2>&1 | tee "$LOGS/$s.log"
    rc=${PIPESTATUS[0]}
  else
    "run_$s" >"$LOGS/$s.log" 2>&1
    rc=$?
  fi
  if [ "$rc" -eq 0 ]; then echo "passed" >"$LOGS/$s.result"; else echo "FAILED" >"$LOGS/$s.result"; fi
  echo "$(( $(date +%s) - start ))" >>"$LOGS/$s.result"
  if [ "$live" -eq 1 ]; then
    echo "=== $s: $(head -1 "$LOGS/$s.result") in $(tail -1 "$LOGS/$s.result") s"
    return
  fi
  {
    flock 9
    echo "=== $s: $(head -1 "$LOGS/$s.result") in $(tail -1 "$LOGS/$s.result") s; its output:"
    cat "$LOGS/$s.log"
    echo "=== $s: end of its output"
  } 9>"$LOGS/.print.lock"
}

selected() {
  local s
  for s in "${suites[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

# run_lane SUITE...: the selected ones among them, one after another.
run_lane() {
  local s
  for s in "$@"; do
    if selected "$s"; then run_suite "$s"; fi
  done
}

# The machine's busy CPU seconds (all processes, the sandboxes' nodes included) from /proc/stat.
busy_cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu /{print int(($2 + $3 + $4 + $7 + $8) / hz)}' /proc/stat
}

mkdir -p "$LOGS"
rm -f "$LOGS"/*.log "$LOGS"/*.result
started_at=$(date +%s)
busy_before=$(busy_cpu_seconds)
# One suite, or HPC_PCLUSTER_TEST_LANES=1: one after another, the output as it comes.
live=0
background=""
if [ ${#suites[@]} -eq 1 ] || [ "${HPC_PCLUSTER_TEST_LANES:-3}" = 1 ]; then
  live=1
  run_lane "${suites[@]}"
else
  # tests/e2e is the longest: everything else runs niced, taking the cores when it waits.
  background="nice -n 10"
  run_lane integration &
  (renice -n 10 -p "$BASHPID" >/dev/null && run_lane molecule) &
  (renice -n 10 -p "$BASHPID" >/dev/null && run_lane lint sanity unit) &
  wait
fi

echo "=== summary"
failed=0
passed_count=0
for s in "${suites[@]}"; do
  if [ -f "$LOGS/$s.result" ]; then
    outcome="$(head -1 "$LOGS/$s.result") ($(tail -1 "$LOGS/$s.result") s)"
  else
    outcome="FAILED (did not finish)"
  fi
  printf '  %-12s %s\n' "$s" "$outcome"
  case $outcome in passed*) passed_count=$((passed_count + 1)) ;; *) failed=1 ;; esac
done
echo "suites: $passed_count passed, $(( ${#suites[@]} - passed_count )) failed"
echo "wall $(( $(date +%s) - started_at )) s; the machine's CPUs were busy $(( $(busy_cpu_seconds) - busy_before )) s of $(( ($(date +%s) - started_at) * $(nproc) )) s"
exit $failed
