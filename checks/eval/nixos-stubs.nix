# Declarations of the NixOS options services.ospw-matrix writes or reads,
# typed as NixOS types them (nixos/lib/systemd-unit-options.nix,
# nixos/modules/config/users-groups.nix, services/databases/postgresql.nix,
# services/web-servers/caddy, services/networking/firewall.nix,
# misc/assertions.nix), so that `lib.evalModules` can evaluate modules/
# without nixpkgs' NixOS modules.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;

  # Like NixOS's systemd unit option: definitions that are lists are
  # concatenated, scalars must all be equal.
  unitOption = types.mkOptionType {
    name = "systemd option";
    description = "systemd unit option value";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.any (def: lib.isList def.value) defs' then
        lib.concatMap (def: lib.toList def.value) defs'
      else
        lib.mergeEqualOption loc defs';
  };

  units = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };

  serviceOptions = {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      description = mkOption {
        type = types.singleLineStr;
        default = "";
      };
      documentation = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      wantedBy = units;
      requiredBy = units;
      after = units;
      before = units;
      requires = units;
      wants = units;
      bindsTo = units;
      partOf = units;
      conflicts = units;
      environment = mkOption {
        type =
          with types;
          attrsOf (
            nullOr (oneOf [
              str
              path
              package
            ])
          );
        default = { };
      };
      path = mkOption {
        type = types.listOf (types.oneOf [
          types.package
          types.str
        ]);
        default = [ ];
      };
      script = mkOption {
        type = types.lines;
        default = "";
      };
      preStart = mkOption {
        type = types.lines;
        default = "";
      };
      serviceConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      unitConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      restartTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      reloadTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      startLimitIntervalSec = mkOption {
        type = types.nullOr types.int;
        default = null;
      };
    };
  };

  # nixos/lib/systemd-unit-options.nix: the common unit options and
  # timerConfig.
  timerOptions = {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      description = mkOption {
        type = types.singleLineStr;
        default = "";
      };
      documentation = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      wantedBy = units;
      requiredBy = units;
      after = units;
      before = units;
      requires = units;
      wants = units;
      partOf = units;
      conflicts = units;
      unitConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      timerConfig = mkOption {
        type = types.attrsOf unitOption;
      };
    };
  };

  userOptions = {
    options = {
      isSystemUser = mkOption {
        type = types.bool;
        default = false;
      };
      isNormalUser = mkOption {
        type = types.bool;
        default = false;
      };
      group = mkOption {
        type = types.str;
        default = "";
      };
      extraGroups = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      home = mkOption {
        type = types.passwdEntry types.path;
        default = "/var/empty";
      };
      createHome = mkOption {
        type = types.bool;
        default = false;
      };
      description = mkOption {
        type = types.passwdEntry types.str;
        default = "";
      };
      uid = mkOption {
        type = types.nullOr types.int;
        default = null;
      };
    };
  };

  portRange = types.submodule {
    options = {
      from = mkOption { type = types.port; };
      to = mkOption { type = types.port; };
    };
  };

  enableOnly = {
    enable = mkOption {
      type = types.bool;
      default = false;
    };
  };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };

    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };

    users.users = mkOption {
      type = types.attrsOf (types.submodule userOptions);
      default = { };
    };
    users.groups = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            gid = mkOption {
              type = types.nullOr types.int;
              default = null;
            };
            members = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
          };
        }
      );
      default = { };
    };

    systemd.services = mkOption {
      type = types.attrsOf (types.submodule serviceOptions);
      default = { };
    };
    systemd.timers = mkOption {
      type = types.attrsOf (types.submodule timerOptions);
      default = { };
    };
    systemd.tmpfiles.rules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };

    networking.firewall = {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      allowedTCPPorts = mkOption {
        type = types.listOf types.port;
        default = [ ];
      };
      allowedUDPPorts = mkOption {
        type = types.listOf types.port;
        default = [ ];
      };
      allowedTCPPortRanges = mkOption {
        type = types.listOf portRange;
        default = [ ];
      };
      allowedUDPPortRanges = mkOption {
        type = types.listOf portRange;
        default = [ ];
      };
    };

    # As in nixpkgs 25.11 (nixos/modules/services/databases/postgresql.nix):
    # `package` has no default; the module sets one (by stateVersion) only
    # when PostgreSQL is enabled (see `config` below).
    services.postgresql = enableOnly // {
      package = mkOption {
        type = types.package;
      };
      settings = mkOption {
        type = types.submodule {
          freeformType = (pkgs.formats.json { }).type;
          options.port = mkOption {
            type = types.port;
            default = 5432;
          };
        };
        default = { };
      };
    };

    services.caddy = enableOnly // {
      user = mkOption {
        type = types.str;
        default = "caddy";
      };
      group = mkOption {
        type = types.str;
        default = "caddy";
      };
      email = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      globalConfig = mkOption {
        type = types.lines;
        default = "";
      };
      extraConfig = mkOption {
        type = types.lines;
        default = "";
      };
    };

    services.matrix-synapse = enableOnly;
    services.coturn = enableOnly;
  };

  config = lib.mkIf config.services.postgresql.enable {
    services.postgresql.package = lib.mkDefault pkgs.postgresql;
  };
}
