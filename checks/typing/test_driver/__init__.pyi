# Typed stub of the NixOS test driver (nixpkgs nixos/lib/test-driver,
# Python package `test_driver`), as far as the VM tests in checks/ use it:
# scripts/nix-sandbox.sh type-checks their scripts against it with mypy, as
# nixpkgs' nixos/lib/testing/driver.nix does against the real driver.
