#!/usr/bin/env bash
# Runs the module evaluation tests (checks/eval/tests.nix) and parses every
# .nix file of the repository. Needs nix-instantiate and NIXPKGS_LIB (the
# lib directory of nixpkgs); without NIXPKGS_LIB it skips. Exits 0 when
# everything passed, 1 otherwise, after printing `N passed, N failed`.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ -z "${NIXPKGS_LIB:-}" ]; then
  echo "SKIP: module evaluation tests not run: NIXPKGS_LIB is not set (export NIXPKGS_LIB=/path/to/nixpkgs/lib, e.g. $root/.nixpkgs-lib/lib; see DEVELOPERS.md)"
  exit 0
fi
if ! command -v nix-instantiate >/dev/null 2>&1; then
  echo "FAIL: NIXPKGS_LIB is set but nix-instantiate is not installed"
  echo "0 passed, 1 failed"
  exit 1
fi
if [ ! -f "$NIXPKGS_LIB/default.nix" ]; then
  echo "FAIL: NIXPKGS_LIB=$NIXPKGS_LIB holds no default.nix"
  echo "0 passed, 1 failed"
  exit 1
fi
export NIXPKGS_LIB

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/     /'; }

# Every .nix file parses.
while IFS= read -r -d '' file; do
  if out=$(nix-instantiate --parse "$file" 2>&1 >/dev/null); then
    pass "parse ${file#"$root"/}"
  else
    fail "parse ${file#"$root"/}" "$out"
  fi
done < <(find "$root" \( -name .git -o -name target -o -name .nixpkgs-lib -o -name node_modules -o -name 'result*' \) -prune -o -name '*.nix' -type f -print0 | sort -z)

# The evaluation tests, one process each so that an evaluation error fails
# one test only.
if ! names_json=$(nix-instantiate --eval --strict --json "$here" -A names 2>&1); then
  fail "list tests" "$names_json"
else
  for name in $(printf '%s' "$names_json" | tr -d '[]"' | tr ',' ' '); do
    if out=$(nix-instantiate --eval --strict --json "$here" -A "tests.$name" 2>&1); then
      case "$out" in
        *'"ok":true'*) pass "$name" ;;
        *) fail "$name" "$(printf '%s' "$out" | sed -e 's/^{"msg":"//' -e 's/","ok":false}$//' -e 's/\\"/"/g')" ;;
      esac
    else
      fail "$name" "$(printf '%s' "$out" | tail -n 15)"
    fi
  done
fi

# The VM tests cannot run here, but their Python test scripts can at least
# be generated and compiled.
if command -v python3 >/dev/null 2>&1; then
  if scripts=$(nix-instantiate --eval --strict --json "$here" -A vmTestScripts 2>&1); then
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
    fail "vm test scripts generate" "$(printf '%s' "$scripts" | tail -n 15)"
  fi
fi

# The backup unit's pruning, run against a fake CLI.
if command -v python3 >/dev/null 2>&1; then
  script_file=$(mktemp)
  if out=$(nix-instantiate --eval --strict --json "$here" -A backupScript 2>&1) \
    && printf '%s' "$out" | python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin))' >"$script_file"; then
    if out=$(bash "$here/backup-prune.sh" "$script_file" 2>&1); then
      pass "backup script prunes only after a successful backup, keeping keep archives"
    else
      fail "backup script prunes only after a successful backup, keeping keep archives" "$out"
    fi
  else
    fail "backup script generates" "$(printf '%s' "$out" | tail -n 15)"
  fi
  rm -f "$script_file"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
