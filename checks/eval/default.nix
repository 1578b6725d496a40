# Module evaluation tests: `lib.evalModules` over modules/ with stub NixOS
# option declarations and fake packages; nothing is built. Run them with
# checks/eval/run.sh (NIXPKGS_LIB must point at nixpkgs' lib directory).
#
#   nix-instantiate --eval --strict --json checks/eval -A names
#   nix-instantiate --eval --strict --json checks/eval -A tests.<name>
#   nix-instantiate --eval --strict --json checks/eval -A vmTestScripts
#   nix-instantiate --eval --strict --json checks/eval -A backupScript
#   nix-instantiate --eval --strict --json checks/eval -A vmTests
#   nix-instantiate --eval --strict --json checks/eval -A failingRenders
#   nix-instantiate --eval --strict --json checks/eval -A moduleEvalSource
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
  all = import ./tests.nix { inherit lib; };
  tests = removeAttrs all [
    "_vmTestScripts"
    "_vmTests"
    "_failingRenders"
    "_moduleEvalSource"
    "_backupScript"
  ];
in
{
  inherit tests;
  names = builtins.attrNames tests;
  # The Python test scripts of the VM tests, which run.sh compiles.
  vmTestScripts = all._vmTestScripts;
  # The backup unit's script (keep = 3), which run.sh runs with a fake CLI.
  backupScript = all._backupScript;
  # The VM tests' nodes, scripts and render derivations, and render
  # derivations that must fail, for scripts/nix-sandbox.sh.
  vmTests = all._vmTests;
  failingRenders = all._failingRenders;
  # The paths the flake's module-eval check is built from.
  moduleEvalSource = all._moduleEvalSource;
}
