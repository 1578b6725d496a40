# What scripts/nix-sandbox.sh needs from the package recipe
# (nix/package.nix), read from the recipe itself so that the simulation
# cannot drift from it: the source fileset, and the attributes that shape
# buildRustPackage's build and check phases.
#
#   nix-instantiate --eval --strict --json scripts/nix-sandbox/recipe.nix \
#     --argstr libPath "$NIXPKGS_LIB"
#
# With nixpkgs' lib (libPath, "" for none) on a Nix that lib.fileset runs on
# (it needs builtins.readFileType, Nix 2.14 and later), the fileset is
# resolved by lib.fileset itself (`files`: every file it holds, relative to
# the repository). Otherwise a stand-in for lib.fileset (and, without
# nixpkgs' lib, for the rest of lib) knows only what the recipe uses today
# (lib.fileset.unions of paths, lib.importTOML) and refuses anything else
# with a message; `paths` then lists the paths of the union (files or
# directories), relative to the repository.
{
  libPath,
}:

let
  root = toString ../..;
  relative =
    path:
    let
      p = toString path;
    in
    if p == root then "." else builtins.substring (builtins.stringLength root + 1) (-1) p;

  unsupported =
    name:
    throw "scripts/nix-sandbox/recipe.nix: nix/package.nix uses lib.${name}, which the stand-in lib (used without nixpkgs' lib) does not implement: set NIXPKGS_LIB (see DEVELOPERS.md)";

  # The source passed to buildRustPackage, kept rather than copied to the
  # store: { root; fileset; }.
  toSource = args: { __ospwSource = args; };

  standIn = {
    importTOML = file: builtins.fromTOML (builtins.readFile file);
    licenses = { };
    platforms = { };
    fileset =
      {
        inherit toSource;
        unions = paths: { __ospwUnion = paths; };
      }
      // builtins.listToAttrs (
        map (name: {
          inherit name;
          value = unsupported "fileset.${name}";
        }) [
          "union"
          "difference"
          "intersection"
          "fileFilter"
          "maybeMissing"
          "gitTracked"
          "gitTrackedWith"
          "fromSource"
          "toList"
        ]
      );
  };

  real = import libPath;
  realFileset = libPath != "" && builtins ? readFileType;
  lib =
    if libPath == "" then
      standIn
    else
      real
      // {
        fileset = if realFileset then real.fileset // { inherit toSource; } else standIn.fileset;
      };

  # Called as callPackage would: lib, a rustPlatform whose buildRustPackage
  # returns its arguments, and for any other argument (a package such as
  # util-linux in nativeCheckInputs) a stand-in that carries its name.
  recipe = import ../../nix/package.nix;
  called = recipe (
    builtins.mapAttrs (name: _: {
      pname = name;
      inherit name;
    }) (builtins.functionArgs recipe)
    // {
      inherit lib;
      rustPlatform.buildRustPackage = attrs: if builtins.isFunction attrs then attrs called else attrs;
    }
  );
  attrs = called;

  source = attrs.src.__ospwSource or (throw "nix/package.nix: src is not lib.fileset.toSource { ... }");
  sourceRoot = relative source.root;

  fileList =
    if !realFileset then
      {
        paths =
          if source.fileset ? __ospwUnion then
            map relative source.fileset.__ospwUnion
          else
            throw "nix/package.nix: the fileset is not lib.fileset.unions [ paths ] (the stand-in lib knows only that): set NIXPKGS_LIB";
      }
    else
      { files = map relative (real.fileset.toList source.fileset); };

  names = map (p: p.pname or p.name or (toString p));
in
fileList
// {
  inherit sourceRoot;
  pname = attrs.pname;
  buildType = attrs.buildType or "release";
  checkType = attrs.checkType or attrs.buildType or "release";
  doCheck = attrs.doCheck or true;
  cargoBuildFlags = attrs.cargoBuildFlags or [ ];
  cargoTestFlags = attrs.cargoTestFlags or [ ];
  checkFlags = attrs.checkFlags or [ ];
  buildNoDefaultFeatures = attrs.buildNoDefaultFeatures or false;
  checkNoDefaultFeatures = attrs.checkNoDefaultFeatures or attrs.buildNoDefaultFeatures or false;
  buildFeatures = attrs.buildFeatures or [ ];
  checkFeatures = attrs.checkFeatures or attrs.buildFeatures or [ ];
  useNextest = attrs.useNextest or false;
  dontUseCargoParallelTests = attrs.dontUseCargoParallelTests or false;
  preCheck = attrs.preCheck or "";
  postCheck = attrs.postCheck or "";
  preBuild = attrs.preBuild or "";
  # Programs the check phase gets beyond stdenv: the simulation must know
  # how to provide each (scripts/nix-sandbox.sh).
  nativeCheckInputs = names (attrs.nativeCheckInputs or [ ]);
  nativeBuildInputs = names (attrs.nativeBuildInputs or [ ]);
  buildInputs = names (attrs.buildInputs or [ ]);
  # Attributes the simulation does not model; it refuses a recipe that
  # sets any of them rather than simulate something else.
  unmodelled = builtins.filter (name: attrs ? ${name}) [
    "checkPhase"
    "buildPhase"
    "env"
    "cargoVendorDir"
    "buildAndTestSubdir"
    "cargoRoot"
    "sourceRoot"
    "postUnpack"
    "prePatch"
    "postPatch"
    "patches"
    "cargoPatches"
    "preConfigure"
    "RUSTFLAGS"
    "checkInputs"
    "__structuredAttrs"
  ];
}
