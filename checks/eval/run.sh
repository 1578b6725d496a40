#!/usr/bin/env bash
# Runs the module evaluation tests (checks/eval/tests.nix) and parses every
# .nix file of the repository. Needs nix-instantiate and nixpkgs' lib
# directory: NIXPKGS_LIB, or the cache location nix/nixpkgs-lib.sh looks
# in. Without them it prints that it was SKIPPED and why, and exits 0. Exits
# 0 when everything passed, 1 otherwise, after printing `N passed, N failed`.
#
# Only standard output of nix-instantiate is parsed: its standard error
# (warnings such as Debian's "the group 'nixbld' specified in
# 'build-users-group' does not exist", traces) is kept apart and shown only
# with a failure.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../../nix/nixpkgs-lib.sh
. "$root/nix/nixpkgs-lib.sh"

nixpkgs_lib_find
case $? in
  0) ;;
  1)
    echo "SKIPPED: the module evaluation tests were not run: $NIXPKGS_LIB_MISSING"
    exit 0
    ;;
  *)
    echo "FAIL: $NIXPKGS_LIB_MISSING"
    echo "0 passed, 1 failed"
    exit 1
    ;;
esac
if ! command -v nix-instantiate >/dev/null 2>&1; then
  echo "FAIL: nixpkgs' lib is at $NIXPKGS_LIB but nix-instantiate is not installed (scripts/install-test-deps.sh installs it)"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "nixpkgs' lib: $NIXPKGS_LIB"

errfile=$(mktemp)
trap 'rm -f "$errfile"' EXIT
# nix-instantiate ARGS: its standard output on stdout, its standard error in
# $errfile (read by `errors`).
nixi() { nix-instantiate "$@" 2>"$errfile"; }
errors() { tail -n 15 "$errfile"; }

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/     /'; }

# Every .nix file parses.
while IFS= read -r -d '' file; do
  if nixi --parse "$file" >/dev/null; then
    pass "parse ${file#"$root"/}"
  else
    fail "parse ${file#"$root"/}" "$(errors)"
  fi
done < <(find "$root" \( -name .git -o -name target -o -name .nixpkgs-lib -o -name node_modules -o -name 'result*' \) -prune -o -name '*.nix' -type f -print0 | sort -z)

# The evaluation tests, one process each so that an evaluation error fails
# one test only.
if ! names_json=$(nixi --eval --strict --json "$here" -A names); then
  fail "list tests" "$(errors)"
else
  for name in $(printf '%s' "$names_json" | tr -d '[]"' | tr ',' ' '); do
    # Test names are attribute names: anything else is not the list.
    if [[ ! $name =~ ^[A-Za-z0-9_-]+$ ]]; then
      fail "list tests" "not a test name: $name (output: $(printf '%s' "$names_json" | head -c 300))"
      break
    fi
    if out=$(nixi --eval --strict --json "$here" -A "tests.$name"); then
      case "$out" in
        *'"ok":true'*) pass "$name" ;;
        *) fail "$name" "$(printf '%s' "$out" | sed -e 's/^{"msg":"//' -e 's/","ok":false}$//' -e 's/\\"/"/g')" ;;
      esac
    else
      fail "$name" "$(errors)"
    fi
  done
fi

# The VM tests cannot run here, but their Python test scripts can at least
# be generated and compiled.
if command -v python3 >/dev/null 2>&1; then
  if scripts=$(nixi --eval --strict --json "$here" -A vmTestScripts); then
    if out=$(printf '%s' "$scripts" | python3 -c '
import json, sys
failed = False
for name, script in sorted(json.load(sys.stdin).items()):
    try:
        compile(script, name, "exec")
        print("ok " + name)
    except SyntaxError as err:
        failed = True
        print("error " + name + ": " + str(err))
sys.exit(1 if failed else 0)
' 2>&1); then
      while read -r _ name; do pass "vm test script compiles: $name"; done <<<"$out"
    else
      fail "vm test scripts compile" "$out"
    fi
  else
    fail "vm test scripts generate" "$(errors)"
  fi
fi

# The backup unit's pruning, run against a fake CLI.
if command -v python3 >/dev/null 2>&1; then
  script_file=$(mktemp)
  if out=$(nixi --eval --strict --json "$here" -A backupScript) \
    && printf '%s' "$out" | python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin))' >"$script_file"; then
    if out=$(bash "$here/backup-prune.sh" "$script_file" 2>&1); then
      pass "backup script prunes only after a successful backup, keeping keep archives"
    else
      fail "backup script prunes only after a successful backup, keeping keep archives" "$out"
    fi
  else
    fail "backup script generates" "$(errors)"
  fi
  rm -f "$script_file"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
