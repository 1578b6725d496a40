# Stand-ins for the parts of nixpkgs the module uses. Nothing is built:
# packages and files are attribute sets that look like derivations
# (`type = "derivation"`, an `outPath` under the store directory) and keep
# what they were given (text, build script) so tests can inspect it.
{ lib }:

let
  fakeHash = name: builtins.substring 0 32 (builtins.hashString "sha256" name);

  # A file's path depends on its text too, as in the store, so that a test
  # can tell two files of the same name apart by their paths.
  drv =
    name: attrs:
    let
      hash = fakeHash (name + (attrs.text or ""));
    in
    attrs
    // {
      type = "derivation";
      inherit name;
      outPath = "${builtins.storeDir}/${hash}-${name}";
      drvPath = "${builtins.storeDir}/${hash}-${name}.drv";
      outputs = [ "out" ];
      meta = attrs.meta or { };
    };

  package = name: drv name { meta.mainProgram = name; };

  # nixpkgs' matrix-synapse wrapper: `override` takes the arguments given
  # to it so far (no `extras` until one is given, as with callPackage) and
  # returns the wrapper with them; its name (so its path) carries the extras.
  synapseWrapper =
    args:
    drv "matrix-synapse${lib.concatMapStrings (e: "-" + e) (args.extras or [ ])}" {
      meta.mainProgram = "synapse_homeserver";
    }
    // {
      unwrapped = self.matrix-synapse-unwrapped;
      extras = args.extras or null;
      override = f: synapseWrapper (args // (if builtins.isFunction f then f args else f));
    };

  # The type of pkgs.formats.json's values.
  jsonValue =
    let
      valueType =
        types.nullOr (
          types.oneOf [
            types.bool
            types.int
            types.float
            types.str
            types.path
            (types.attrsOf valueType)
            (types.listOf valueType)
          ]
        )
        // {
          description = "JSON value";
        };
      inherit (lib) types;
    in
    valueType;

  self = {
    writeText = name: text: drv name { inherit text; };
    writeShellScriptBin = name: text: drv name { inherit text; };
    writeShellScript = name: text: drv name { inherit text; };
    runCommand = name: env: script: drv name { inherit env script; };
    formats.json = _: {
      type = jsonValue;
      generate = name: value: self.writeText name (builtins.toJSON value);
    };

    ospw-matrix = package "ospw-matrix";
    # As in nixpkgs: the wrapper (with the extras' Python packages) keeps
    # the unwrapped package in passthru; the unwrapped one lists the extras.
    matrix-synapse = synapseWrapper { };
    matrix-synapse-unwrapped = package "matrix-synapse-unwrapped" // {
      optional-dependencies = {
        postgres = [ ];
      };
    };
    coturn = package "coturn";
    element-web = package "element-web";
    postgresql = package "postgresql";
    coreutils = package "coreutils";
    getent = package "getent";
    systemd = package "systemd";
    caddy = package "caddy";
    python3 = package "python3";
    openssl = package "openssl";
    curl = package "curl";
    jq = package "jq";
    nmap = package "nmap";
    nix = package "nix";
    matrix-commander-rs = package "matrix-commander-rs";
    nixfmt = package "nixfmt";
    clippy = package "clippy";
    rustfmt = package "rustfmt";
    rust-analyzer = package "rust-analyzer";
    mkShell = attrs: drv "nix-shell" attrs;
  };
in
self
