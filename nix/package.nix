# The `ospw-matrix` command (the CLI crate of this workspace).
#
# Built with `rustPlatform.buildRustPackage` from the committed Cargo.lock.
# The source is filtered to what the build and its tests read: the
# workspace manifests, the crates, the example host description (embedded
# with include_str!) and the committed JSON Schema (a test checks that it is
# current).
{
  lib,
  rustPlatform,
}:

let
  workspace = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "ospw-matrix";
  inherit (workspace.workspace.package) version;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../crates
      ../examples
      ../schema
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # Only the binary crate is installed; `cargo test` still runs the whole
  # workspace (library unit tests, doc tests, CLI tests).
  cargoBuildFlags = [
    "--package"
    "ospw-matrix-cli"
  ];
  cargoTestFlags = [ "--workspace" ];

  # Tests that need real programs (Synapse, PostgreSQL, coturn, Caddy) skip
  # with a message unless `CI` is set; none of those programs exist in the
  # build sandbox, so make sure `CI` is not inherited.
  preCheck = ''
    unset CI
  '';

  meta = {
    description = "Turns one host description into a private, non-federating Matrix server";
    homepage = workspace.workspace.package.repository;
    license = lib.licenses.agpl3Plus;
    mainProgram = "ospw-matrix";
    platforms = lib.platforms.linux;
  };
}
