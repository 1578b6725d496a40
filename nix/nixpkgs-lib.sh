# Finds nixpkgs' lib directory for the scripts that evaluate Nix without a
# Nix store (checks/eval/run.sh, nix/options-doc.sh, scripts/nix-sandbox.sh).
# Source it, then call `nixpkgs_lib_find`: it exports NIXPKGS_LIB and
# returns 0; or returns 1 (nothing found: callers skip) or 2 (NIXPKGS_LIB is
# set but wrong: callers fail), with the reason in NIXPKGS_LIB_MISSING.
#
# Where it looks, in order:
#   1. $NIXPKGS_LIB, when set (it must hold default.nix);
#   2. ${XDG_CACHE_HOME:-$HOME/.cache}/ospw-matrix/nixpkgs-lib/lib, the
#      documented cache location (see DEVELOPERS.md, "Nix evaluation here",
#      for how to fill it from nixpkgs at the flake's pinned revision).

nixpkgs_lib_cache() {
  printf '%s\n' "${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/ospw-matrix/nixpkgs-lib"
}

nixpkgs_lib_find() {
  NIXPKGS_LIB_MISSING=
  if [ -n "${NIXPKGS_LIB:-}" ]; then
    if [ -f "$NIXPKGS_LIB/default.nix" ]; then
      export NIXPKGS_LIB
      return 0
    fi
    NIXPKGS_LIB_MISSING="NIXPKGS_LIB=$NIXPKGS_LIB holds no default.nix (it must be the lib directory of nixpkgs)"
    return 2
  fi
  local cached
  cached="$(nixpkgs_lib_cache)/lib"
  if [ -f "$cached/default.nix" ]; then
    export NIXPKGS_LIB=$cached
    return 0
  fi
  NIXPKGS_LIB_MISSING="nixpkgs' lib was not found: NIXPKGS_LIB is not set and $cached holds no default.nix (fill that cache as DEVELOPERS.md describes under \"Nix evaluation here\", or export NIXPKGS_LIB=/path/to/nixpkgs/lib)"
  return 1
}
