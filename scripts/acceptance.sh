#!/usr/bin/env bash
# Runs the acceptance suite (tests/acceptance): builds the ospw-matrix CLI and
# the suite, then starts a private Matrix stack (PostgreSQL, Synapse, coturn,
# Caddy with `tls internal`) from the CLI's rendered output in a fresh
# temporary directory and exercises it with matrix-sdk. Every process is
# stopped at the end; a failed run's logs are printed and its directory kept.
#
# Prerequisite: scripts/install-test-deps.sh (run as root: packages, Synapse
# venv, and the unprivileged user `ospw_test` the services run as).
#
# Before building, the suite's own code must be formatted (`cargo fmt
# --check`) and clippy clean (`--all-targets -- -D warnings`).
#
# Usage: scripts/acceptance.sh [--release] [--test NAME]... [--no-lint]
#   --release    build the CLI in release mode (default: debug, faster to build)
#   --test NAME  run only this test target of tests/acceptance (repeatable):
#                `acceptance` is the user-level suite, `operations` the
#                admin/backup/migration test, `doctor` the doctor's
#                scenarios; default: every target
#   --no-lint    skip the fmt and clippy check of the suite
# Environment: OSPW_MATRIX_BIN (use this CLI binary, skip building it),
#   OSPW_SYNAPSE_PYTHON, OSPW_PG_BIN, OSPW_TEST_USER, OSPW_KEEP_TMP (see
#   tests/acceptance/tests/acceptance.rs).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
profile=debug
cargo_profile=()
targets=()
lint=1
while (($#)); do
  case "$1" in
    --release) profile=release; cargo_profile=(--release) ;;
    --test) shift; targets+=(--test "${1:?--test needs a name}") ;;
    --no-lint) lint=0 ;;
    -h|--help) sed -n '2,25p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "acceptance.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
((${#targets[@]})) || targets=(--tests)

start=$(date +%s)
suite="$repo/tests/acceptance/Cargo.toml"
if ((lint)); then
  echo "acceptance.sh: checking the suite's format and clippy"
  cargo fmt --manifest-path "$suite" -- --check
  cargo clippy --manifest-path "$suite" --locked --all-targets -- -D warnings
fi
if [[ -z "${OSPW_MATRIX_BIN:-}" ]]; then
  echo "acceptance.sh: building the CLI ($profile)"
  cargo build --manifest-path "$repo/Cargo.toml" -p ospw-matrix-cli "${cargo_profile[@]}"
  export OSPW_MATRIX_BIN="$repo/target/$profile/ospw-matrix"
fi
echo "acceptance.sh: building the suite"
cargo test --manifest-path "$suite" --locked --no-run "${targets[@]}"
built=$(date +%s)
echo "acceptance.sh: lint and build took $((built - start))s; running the suite with $OSPW_MATRIX_BIN"
status=0
cargo test --manifest-path "$suite" --locked "${targets[@]}" || status=$?
end=$(date +%s)
echo "acceptance.sh: run took $((end - built))s (build $((built - start))s)"
exit "$status"
