#!/usr/bin/env bash
# Regenerates docs/nixos-options.md from the module (see nix/options-doc.nix).
# Needs nix-instantiate and NIXPKGS_LIB (nixpkgs' lib directory).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${NIXPKGS_LIB:?set NIXPKGS_LIB to nixpkgs lib directory (see DEVELOPERS.md)}"
nix-instantiate --eval --strict --json -E "import $root/nix/options-doc.nix { }" \
  | python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin))' \
  > "$root/docs/nixos-options.md"
echo "wrote docs/nixos-options.md"
