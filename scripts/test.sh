#!/usr/bin/env bash
# The whole test suite, installing what it needs first (Debian 12, as root).
# Stages: dependencies, format, lint, unit + integration tests against real
# Synapse/coturn/Caddy, Nix parsing and module evaluation, the Nix build
# sandbox simulation (scripts/nix-sandbox.sh), acceptance suite.
# Ends with one summary line `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
export CI=${CI:-true}   # tests needing a real program fail instead of skipping
export CARGO_TERM_COLOR=never

# Each stage's standard output is kept so the test counts of every runner
# (cargo's "test result" lines, the evaluation and acceptance runners' "N
# passed, N failed") add up to the closing line; standard error is shown but
# never parsed (a tool's warnings must not count as anything). A stage that
# fails without a counted failure (fmt, clippy, a build) counts as one
# failure; a stage that prints a line starting with "SKIPPED:" is listed as
# skipped at the end with its reason (a skip counts as neither).
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
tests_passed=0 tests_failed=0 failed_stages=() skipped_stages=()
stage() {
  local name=$1; shift
  local log="$logs/stage.log"
  echo "::: $name"
  local start=$SECONDS status
  "$@" | tee "$log"
  status=${PIPESTATUS[0]}
  local p f
  read -r p f < <(sed -nE \
    -e 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p' \
    -e 's/^([A-Za-z-]+: )?([0-9]+) passed, ([0-9]+) failed.*/\2 \3/p' "$log" |
    awk '{p += $1; f += $2} END {print p + 0, f + 0}')
  tests_passed=$((tests_passed + p)); tests_failed=$((tests_failed + f))
  local line
  while IFS= read -r line; do
    skipped_stages+=("$name: ${line#SKIPPED: }")
  done < <(grep '^SKIPPED:' "$log")
  if ((status == 0)); then
    echo "::: $name: ok ($((SECONDS - start)) s)"
  else
    ((f == 0)) && tests_failed=$((tests_failed + 1))
    failed_stages+=("$name"); echo "::: $name: FAILED ($((SECONDS - start)) s)"
  fi
}

# Dependencies first: without them nothing below means anything.
scripts/install-test-deps.sh || { echo "installing the test dependencies failed"; echo "0 passed, 1 failed"; exit 1; }

# nixpkgs' lib for the module evaluation tests and the sandbox stage's
# render and type checks: NIXPKGS_LIB or the documented cache location (see
# DEVELOPERS.md, "Nix evaluation here"); without it those parts report
# SKIPPED.
# shellcheck source=../nix/nixpkgs-lib.sh
. nix/nixpkgs-lib.sh
nixpkgs_lib_find || true

stage "cargo fmt" cargo fmt --all -- --check
stage "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
stage "cargo doc" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked -q
stage "cargo test" cargo test --workspace --locked
stage "nix parse" scripts/nix-parse.sh
stage "nix module evaluation" checks/eval/run.sh
stage "nix build sandbox" scripts/nix-sandbox.sh
if [ -x scripts/acceptance.sh ]; then
  stage "acceptance" scripts/acceptance.sh
fi

echo
for skipped in "${skipped_stages[@]}"; do echo "skipped: $skipped"; done
if ((${#failed_stages[@]})); then echo "failed stages: ${failed_stages[*]}"; fi
echo "$tests_passed passed, $tests_failed failed"
((${#failed_stages[@]} == 0))
