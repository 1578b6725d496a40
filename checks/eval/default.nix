# Module evaluation tests: `lib.evalModules` over modules/ with stub NixOS
# option declarations and fake packages; nothing is built. Run them with
# checks/eval/run.sh (NIXPKGS_LIB must point at nixpkgs' lib directory).
#
#   nix-instantiate --eval --strict --json checks/eval -A names
#   nix-instantiate --eval --strict --json checks/eval -A tests.<name>
#
# Each test evaluates to { ok = bool; msg = string; }.
{
  libPath ? builtins.getEnv "NIXPKGS_LIB",
}:

let
  lib =
    if libPath == "" then
      throw "NIXPKGS_LIB is not set: point it at nixpkgs' lib directory"
    else
      import libPath;
  tests = import ./tests.nix { inherit lib; };
in
{
  inherit tests;
  names = builtins.attrNames tests;
}
