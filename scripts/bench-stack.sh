#!/usr/bin/env bash
# The stack benchmark (BENCHMARKS.md, "Stack: workers"): a closed-loop chat
# workload (20 users in 5 private rooms, 20 concurrent senders, one /sync
# receiver per room, a 60 s window after a 5 s warm-up) against three
# stacks, interleaved run by run on this machine:
#
#   stock     Synapse's own --generate-config output (PostgreSQL, port and
#             rate limits changed only), behind a Caddy proxying everything
#   monolith  ospw-matrix's rendered stack, one Synapse process
#   small     the same with synapse.workers: {preset: small} (and Redis)
#
# Each run starts a fresh stack (its own PostgreSQL cluster, as the
# acceptance suite does: run as root, with scripts/install-test-deps.sh
# done), runs `ospw-load` through Caddy and records sends/s, send and
# delivery latency (p50, p99), lost messages, the CPU of every process (and
# of the load generator and of other processes on the machine, to flag
# disturbed runs) and the stack's memory idle and at the end. The report
# (medians per configuration, every run listed) goes to OUT/report.md.
#
# Usage: scripts/bench-stack.sh [--runs 3] [--duration 60] [--warmup 5]
#          [--configs "stock monolith small"] [--workers 'sync: 1, client: 1']
#          [--profile] [--out DIR]
#   --workers  another body of synapse.workers for the `small` runs (to
#              compare layouts), one line of flow YAML
#   --profile  also record each Synapse process with py-spy (on PATH:
#              `pip install py-spy`) during the window, into OUT/profile-RUN-CONFIG/
# Environment: OSPW_MATRIX_BIN (the CLI; default: built here, release).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=3 duration=60 warmup=5 configs="stock monolith small" profile=0 workers=""
out="$repo/target/bench-stack/$(date -u +%Y%m%dT%H%M%SZ)"
while (($#)); do
  case "$1" in
    --runs) runs=${2:?}; shift ;;
    --duration) duration=${2:?}; shift ;;
    --warmup) warmup=${2:?}; shift ;;
    --configs) configs=${2:?}; shift ;;
    --workers) workers=${2:?}; shift ;;
    --profile) profile=1 ;;
    --out) out=${2:?}; shift ;;
    -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench-stack.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

if [[ -z "${OSPW_MATRIX_BIN:-}" ]]; then
  cargo build --release --manifest-path "$repo/Cargo.toml" -p ospw-matrix-cli
  export OSPW_MATRIX_BIN="$repo/target/release/ospw-matrix"
fi
suite="$repo/tests/acceptance/Cargo.toml"
# Without the Matrix client library: the load generator and runner only.
cargo build --release --manifest-path "$suite" --no-default-features --bin ospw-load --bin ospw-bench
bench="$repo/tests/acceptance/target/release/ospw-bench"
mkdir -p "$out"
echo "bench-stack.sh: results in $out"

for ((run = 1; run <= runs; run++)); do
  for config in $configs; do
    echo "bench-stack.sh: run $run, $config; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    args=(run --config "$config" --run "$run" --duration "$duration" --warmup "$warmup"
      --out "$out/$run-$config.json")
    if [[ "$config" == small && -n "$workers" ]]; then args+=(--workers "$workers"); fi
    if ((profile)); then args+=(--profile "$out/profile-$run-$config"); fi
    "$bench" "${args[@]}"
  done
done

"$bench" report "$out"/*.json | tee "$out/report.md"
