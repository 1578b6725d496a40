{
  description = "OSPW Matrix: one host description becomes a private, non-federating Matrix server (Synapse, PostgreSQL, coturn, Element Web, Caddy)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];

      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Every `checks/<name>.nix` is a NixOS VM test; `checks/eval/` (module
      # evaluation tests) and `checks/lib/` (shared test helpers) are not.
      vmTestFiles = lib.filterAttrs (
        name: type: type == "regular" && lib.hasSuffix ".nix" name
      ) (builtins.readDir ./checks);

      vmTests =
        pkgs:
        lib.mapAttrs' (
          file: _:
          lib.nameValuePair "vm-${lib.removeSuffix ".nix" file}" (
            pkgs.testers.runNixOSTest (
              import (./checks + "/${file}") {
                inherit pkgs self;
                testLib = import ./checks/lib { inherit pkgs; };
              }
            )
          )
        ) vmTestFiles;
    in
    {
      overlays.default = final: _prev: {
        ospw-matrix = final.callPackage ./nix/package.nix { };
      };

      # The module. It builds the `ospw-matrix` command with the host's own
      # nixpkgs; set `services.ospw-matrix.package` to use another build.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./modules ];
          services.ospw-matrix.package = lib.mkDefault (pkgs.callPackage ./nix/package.nix { });
        };
      nixosModules.ospw-matrix = self.nixosModules.default;

      packages = forAllSystems (
        pkgs:
        let
          ospw-matrix = pkgs.callPackage ./nix/package.nix { };

          # The option reference, generated from the module's declarations.
          optionsDoc = pkgs.nixosOptionsDoc {
            options =
              (lib.nixosSystem {
                modules = [
                  self.nixosModules.default
                  {
                    nixpkgs.hostPlatform = pkgs.stdenv.hostPlatform.system;
                    system.stateVersion = "25.11";
                  }
                ];
              }).options.services.ospw-matrix;
            # Point declarations at the repository instead of the store.
            transformOptions =
              opt:
              opt
              // {
                declarations = map (
                  decl:
                  let
                    path = toString decl;
                    root = toString ./.;
                  in
                  if lib.hasPrefix root path then
                    {
                      name = "<ospw-matrix${lib.removePrefix root path}>";
                      url = "https://github.com/ospw/ospw-matrix/blob/main${lib.removePrefix root path}";
                    }
                  else
                    decl
                ) opt.declarations;
              };
          };
        in
        {
          default = ospw-matrix;
          inherit ospw-matrix;
          docs = pkgs.runCommand "ospw-matrix-options-doc" { } ''
            mkdir -p $out
            cp ${optionsDoc.optionsCommonMark} $out/options.md
            cp ${optionsDoc.optionsJSON}/share/doc/nixos/options.json $out/options.json
          '';
        }
      );

      checks = forAllSystems (
        pkgs:
        let
          ospw-matrix = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        in
        vmTests pkgs
        // {
          package = ospw-matrix;

          clippy = ospw-matrix.overrideAttrs (old: {
            pname = "ospw-matrix-clippy";
            nativeBuildInputs = old.nativeBuildInputs ++ [ pkgs.clippy ];
            buildPhase = ''
              runHook preBuild
              cargo clippy --workspace --all-targets --offline -- -D warnings
              runHook postBuild
            '';
            doCheck = false;
            installPhase = ''
              touch $out
            '';
            dontFixup = true;
          });

          rustfmt =
            pkgs.runCommand "ospw-matrix-rustfmt"
              {
                nativeBuildInputs = [ pkgs.rustfmt ];
              }
              ''
                cd ${ospw-matrix.src}
                find crates -name '*.rs' -print0 | xargs -0 rustfmt --edition 2021 --check
                touch $out
              '';

          # The module evaluation tests (checks/eval), against the real
          # nixpkgs lib.
          module-eval =
            pkgs.runCommand "ospw-matrix-module-eval"
              {
                # python3: run.sh compiles the VM tests' scripts and runs the
                # backup script's pruning test with it (both are skipped
                # without it).
                nativeBuildInputs = [
                  pkgs.nix
                  pkgs.python3
                ];
                src = lib.fileset.toSource {
                  root = ./.;
                  fileset = lib.fileset.unions [
                    ./flake.nix
                    ./nix
                    ./modules
                    ./checks
                    ./schema
                    ./docs/nixos-options.md
                    # The TURN-over-TLS example is evaluated from here.
                    ./docs/nixos.md
                    # The worker presets, which modules/synapse-workers.nix
                    # shares with the crate.
                    ./crates/ospw-matrix/src/host/worker-presets.json
                  ];
                };
              }
              ''
                # A private Nix state for nix-instantiate inside the build
                # (as nixpkgs' own lib tests do).
                export HOME=$TMPDIR
                export NIX_CONF_DIR=$TMPDIR/etc
                export NIX_LOCALSTATE_DIR=$TMPDIR/var
                export NIX_LOG_DIR=$TMPDIR/var/log/nix
                export NIX_STATE_DIR=$TMPDIR/var/nix
                export NIX_STORE_DIR=$TMPDIR/store
                nix-store --init
                export NIXPKGS_LIB=${nixpkgs}/lib
                bash $src/checks/eval/run.sh
                touch $out
              '';
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.default ];
          packages = [
            pkgs.clippy
            pkgs.rustfmt
            pkgs.rust-analyzer
            pkgs.nixfmt
            pkgs.jq
          ];
          NIXPKGS_LIB = "${nixpkgs}/lib";
        };
      });

      # The RFC 166 formatter. In nixpkgs 25.11 `nixfmt` is that formatter;
      # `nixfmt-rfc-style` is an alias that warns on every evaluation.
      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}
