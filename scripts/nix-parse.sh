#!/usr/bin/env bash
# Every tracked .nix file must parse (Debian's nix-bin).
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0 n=0
while IFS= read -r f; do
  n=$((n + 1))
  if ! nix-instantiate --parse "$f" >/dev/null; then echo "does not parse: $f"; bad=$((bad + 1)); fi
done < <(git ls-files '*.nix'; git ls-files --others --exclude-standard '*.nix')
echo "nix parse: $n files, $bad failed"
((n > 0 && bad == 0))
