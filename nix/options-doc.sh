#!/usr/bin/env bash
# Regenerates docs/nixos-options.md from the module (see nix/options-doc.nix).
# Needs nix-instantiate and nixpkgs' lib directory (NIXPKGS_LIB, or the cache
# location described in nix/nixpkgs-lib.sh). Only nix-instantiate's standard
# output is read; its warnings stay on standard error.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=nixpkgs-lib.sh
. "$root/nix/nixpkgs-lib.sh"
if ! nixpkgs_lib_find; then
  echo "options-doc.sh: $NIXPKGS_LIB_MISSING" >&2
  exit 1
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
nix-instantiate --eval --strict --json -E "import $root/nix/options-doc.nix { }" |
  python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin))' >"$tmp"
cat "$tmp" >"$root/docs/nixos-options.md"
echo "wrote docs/nixos-options.md"
