# The option reference of services.ospw-matrix as Markdown, generated from
# the module's declarations with nixpkgs' lib alone (the module is evaluated
# with the stub NixOS options and fake packages of checks/eval), so that it
# can be regenerated and checked without nixpkgs:
#
#   NIXPKGS_LIB=/path/to/nixpkgs/lib nix/options-doc.sh   # writes docs/nixos-options.md
#
# `nix build .#docs` renders the same options with nixpkgs' nixosOptionsDoc.
{
  libPath ? builtins.getEnv "NIXPKGS_LIB",
  lib ? import libPath,
}:

let
  pkgs = import ../checks/eval/fake-pkgs.nix { inherit lib; };
  root = toString ../.;

  eval = lib.evalModules {
    modules = [
      ../checks/eval/nixos-stubs.nix
      ../modules
      { _module.args.pkgs = pkgs; }
    ];
  };

  options = lib.filter (opt: opt.visible && !opt.internal) (
    lib.optionAttrSetToDocList eval.options.services.ospw-matrix
  );

  # MyST roles of nixpkgs' option descriptions, as plain Markdown.
  plain = builtins.replaceStrings [ "{option}`" "{file}`" "{manpage}`" "{command}`" ] [ "`" "`" "`" "`" ];

  rendered =
    value:
    if value ? _type && value._type == "literalExpression" then
      if lib.hasInfix "\n" value.text then "\n\n```nix\n${value.text}\n```\n" else " `${value.text}`"
    else if value ? _type && value._type == "literalMD" then
      " ${value.text}"
    else
      " `${builtins.toJSON value}`";

  declaredIn = decl: lib.removePrefix "${root}/" (toString decl);

  entry = opt: ''
    ## `${opt.name}`

    ${lib.trim (plain opt.description)}

    *Type:* ${opt.type}${lib.optionalString opt.readOnly " (read-only)"}

  ''
  + lib.optionalString (opt ? default) ''
    *Default:*${rendered opt.default}

  ''
  + lib.optionalString (opt ? example) ''
    *Example:*${rendered opt.example}

  ''
  + ''
    *Declared in:* ${lib.concatMapStringsSep ", " (d: "`${declaredIn d}`") opt.declarations}

  '';
in
''
  # `services.ospw-matrix` options

  <!-- Generated from modules/ by nix/options-doc.sh; do not edit. -->

  The NixOS module's options. See [nixos.md](nixos.md) for a quick start.
  `nix build .#docs` renders the same reference with nixpkgs' `nixosOptionsDoc`.

''
+ lib.concatMapStrings entry options
