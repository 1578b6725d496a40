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
# Usage: scripts/acceptance.sh [--release]
#   --release   build the CLI in release mode (default: debug, faster to build)
# Environment: OSPW_MATRIX_BIN (use this CLI binary, skip building it),
#   OSPW_SYNAPSE_PYTHON, OSPW_PG_BIN, OSPW_TEST_USER, OSPW_KEEP_TMP (see
#   tests/acceptance/tests/acceptance.rs).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
profile=debug
cargo_profile=()
for arg in "$@"; do
  case "$arg" in
    --release) profile=release; cargo_profile=(--release) ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "acceptance.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

start=$(date +%s)
if [[ -z "${OSPW_MATRIX_BIN:-}" ]]; then
  echo "acceptance.sh: building the CLI ($profile)"
  cargo build --manifest-path "$repo/Cargo.toml" -p ospw-matrix-cli --locked "${cargo_profile[@]}"
  export OSPW_MATRIX_BIN="$repo/target/$profile/ospw-matrix"
fi
echo "acceptance.sh: building the suite"
cargo test --manifest-path "$repo/tests/acceptance/Cargo.toml" --locked --no-run
built=$(date +%s)
echo "acceptance.sh: build took $((built - start))s; running the suite with $OSPW_MATRIX_BIN"
status=0
cargo test --manifest-path "$repo/tests/acceptance/Cargo.toml" --locked --test acceptance || status=$?
end=$(date +%s)
echo "acceptance.sh: run took $((end - built))s (build $((built - start))s)"
exit "$status"
