#!/usr/bin/env bash
# shellcheck disable=SC2317  # suites are called indirectly, as run_<name>
# Runs the project's test suites and exits non-zero if any of them failed.
#   scripts/test.sh            every suite
#   scripts/test.sh unit lint  only those suites
# Suites: lint sanity unit integration molecule
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
export PATH=$ROOT/.venv/bin:$PATH
export ANSIBLE_CONFIG=$ROOT/ansible.cfg
PY=$ROOT/.venv/bin/python

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(lint sanity unit integration molecule)

declare -A result
failed=0

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

sandbox_started=0
ensure_sandbox() {
  if ! "$PY" sandbox/sandbox.py status >/dev/null 2>&1; then
    "$PY" sandbox/sandbox.py up || return 1
    sandbox_started=1
  fi
}

run_integration() {
  ensure_sandbox || return 1
  "$PY" -m pytest -q --durations=25 tests/integration tests/e2e
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

for s in "${suites[@]}"; do
  echo "=== $s"
  start=$(date +%s)
  if "run_$s"; then result[$s]="passed"; else result[$s]="FAILED"; failed=1; fi
  result[$s]="${result[$s]} ($(( $(date +%s) - start )) s)"
done

[ $sandbox_started -eq 1 ] && "$PY" sandbox/sandbox.py down >/dev/null 2>&1

echo "=== summary"
passed_count=0
for s in "${suites[@]}"; do
  printf '  %-12s %s\n' "$s" "${result[$s]}"
  case ${result[$s]} in passed*) passed_count=$((passed_count + 1)) ;; esac
done
echo "suites: $passed_count passed, $(( ${#suites[@]} - passed_count )) failed"
exit $failed
