#!/usr/bin/env bash
# Benchmarks and build figures for BENCHMARKS.md:
#  1. in-process parse + validate + render (cargo bench -p ospw-matrix);
#  2. the CLI as a whole process (hyperfine, from Debian);
#  3. a clean release build of the CLI (wall time on this machine's cores);
#  4. the dependency count of the CLI (normal dependencies, deduplicated).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get update -q && apt-get install -y -q hyperfine; }

echo "## machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(rustc --version)"
echo "## in-process"
cargo bench -q -p ospw-matrix --bench render 2>/dev/null | grep -E 'median'

echo "## clean release build of the CLI"
target=$(mktemp -d)
start=$(date +%s.%N)
CARGO_TARGET_DIR=$target cargo build -q --release --locked -p ospw-matrix-cli
end=$(date +%s.%N)
printf 'clean release build: %.1f s\n' "$(echo "$end - $start" | bc)"
bin=$target/release/ospw-matrix
printf 'binary size: %s bytes\n' "$(stat -c %s "$bin")"

echo "## CLI as a whole process"
out=$(mktemp -d)
hyperfine -N --warmup 20 --runs 200 --export-markdown "$out/hyperfine.md" \
  "$bin render --out $out/r" "$bin check --config examples/host.yaml" >/dev/null 2>&1
sed "s|$bin|ospw-matrix|g; s|$out/r|OUT|g" "$out/hyperfine.md"

echo "## dependencies"
printf 'crates in the CLI build (normal deps, incl. the two workspace crates): %s\n' \
  "$(cargo tree -q -p ospw-matrix-cli -e normal --prefix none --no-dedupe | sed 's/ (\*)//' | sort -u | wc -l)"
printf 'crates in the library build: %s\n' \
  "$(cargo tree -q -p ospw-matrix -e normal --prefix none --no-dedupe | sed 's/ (\*)//' | sort -u | wc -l)"
rm -rf "$target" "$out"
