#!/usr/bin/env bash
# Every tracked .nix file must parse (Debian's nix-bin). nix-instantiate's
# standard error (e.g. Debian's warning that the group `nixbld` does not
# exist) is shown only when a file does not parse.
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0 n=0
while IFS= read -r f; do
  n=$((n + 1))
  if ! err=$(nix-instantiate --parse "$f" 2>&1 >/dev/null); then
    echo "does not parse: $f"
    printf '%s\n' "$err" | sed 's/^/    /'
    bad=$((bad + 1))
  fi
done < <(git ls-files '*.nix'; git ls-files --others --exclude-standard '*.nix')
echo "nix parse: $n files, $bad failed"
((n > 0 && bad == 0))
