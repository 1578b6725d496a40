#!/usr/bin/env bash
# The whole test suite, installing what it needs first (Debian 12, as root).
# Stages: dependencies, format, lint, unit + integration tests against real
# Synapse/coturn/Caddy, Nix parsing and module evaluation, acceptance suite.
# Ends with one summary line `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
export CI=${CI:-true}   # tests needing a real program fail instead of skipping
export CARGO_TERM_COLOR=never

passed=0 failed=0 failed_stages=()
stage() {
  local name=$1; shift
  echo "::: $name"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); echo "::: $name: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1)); failed_stages+=("$name"); echo "::: $name: FAILED ($((SECONDS - start)) s)"
  fi
}

# Dependencies first: without them nothing below means anything.
scripts/install-test-deps.sh || { echo "installing the test dependencies failed"; echo "0 passed, 1 failed"; exit 1; }

# nixpkgs' lib for the module evaluation tests (see DEVELOPERS.md).
if [ -z "${NIXPKGS_LIB:-}" ]; then
  snapshot=/work/.mirror/nix-community+nixpkgs.lib/repo
  if [ -d .nixpkgs-lib/lib ]; then
    export NIXPKGS_LIB=$PWD/.nixpkgs-lib/lib
  elif [ -d "$snapshot" ]; then
    mkdir -p .nixpkgs-lib && git --git-dir="$snapshot" archive HEAD | tar -x -C .nixpkgs-lib && export NIXPKGS_LIB=$PWD/.nixpkgs-lib/lib
  fi
fi

stage "cargo fmt" cargo fmt --all -- --check
stage "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
stage "cargo doc" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked -q
stage "cargo test" cargo test --workspace --locked
stage "nix parse" scripts/nix-parse.sh
if [ -x checks/eval/run.sh ]; then
  stage "nix module evaluation" checks/eval/run.sh
fi
if [ -x scripts/acceptance.sh ]; then
  stage "acceptance" scripts/acceptance.sh
fi

echo
if ((failed)); then echo "failed stages: ${failed_stages[*]}"; fi
echo "$passed passed, $failed failed"
((failed == 0))
