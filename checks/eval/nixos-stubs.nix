# Declarations of the NixOS options services.ospw-matrix writes or reads,
# typed as NixOS types them (nixos/lib/systemd-unit-options.nix,
# nixos/modules/config/users-groups.nix, services/databases/postgresql.nix,
# services/web-servers/caddy, services/networking/firewall.nix,
# services/monitoring/prometheus, misc/assertions.nix,
# security/acme/default.nix), so that `lib.evalModules` can evaluate modules/
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

  # An option of this type and default.
  opt = type: default: mkOption { inherit type default; };

  units = opt (types.listOf types.str) [ ];
  lines = opt types.lines "";
  unitSettings = opt (types.attrsOf unitOption) { };
  triggers = opt (types.listOf types.unspecified) [ ];

  # nixos/lib/systemd-unit-options.nix: the options every unit has.
  commonUnitOptions = {
    enable = opt types.bool true;
    description = opt types.singleLineStr "";
    documentation = opt (types.listOf types.str) [ ];
    unitConfig = unitSettings;
  }
  // lib.genAttrs [
    "wantedBy"
    "requiredBy"
    "after"
    "before"
    "requires"
    "wants"
    "bindsTo"
    "partOf"
    "conflicts"
  ] (_: units);

  serviceOptions = {
    options = commonUnitOptions // {
      environment = opt (
        with types;
        attrsOf (
          nullOr (oneOf [
            str
            path
            package
          ])
        )
      ) { };
      path = opt (types.listOf (
        types.oneOf [
          types.package
          types.str
        ]
      )) [ ];
      script = lines;
      preStart = lines;
      serviceConfig = unitSettings;
      restartTriggers = triggers;
      reloadTriggers = triggers;
      startLimitIntervalSec = opt (types.nullOr types.int) null;
    };
  };

  # ... and timerConfig.
  timerOptions = {
    options = commonUnitOptions // {
      timerConfig = mkOption {
        type = types.attrsOf unitOption;
      };
    };
  };

  userOptions = {
    options = {
      isSystemUser = opt types.bool false;
      isNormalUser = opt types.bool false;
      group = opt types.str "";
      extraGroups = opt (types.listOf types.str) [ ];
      home = opt (types.passwdEntry types.path) "/var/empty";
      createHome = opt types.bool false;
      description = opt (types.passwdEntry types.str) "";
      uid = opt (types.nullOr types.int) null;
    };
  };

  portRange = types.submodule {
    options = {
      from = mkOption { type = types.port; };
      to = mkOption { type = types.port; };
    };
  };

  enableOnly = {
    enable = opt types.bool false;
  };

  # nixos/modules/security/acme/default.nix (nixos-25.11): the options a
  # certificate may take from security.acme.defaults, ...
  acmeInheritable = defaults: {
    email = opt (types.nullOr types.str) (defaults.email or null);
    group = opt types.str (defaults.group or "acme");
    reloadServices = opt (types.listOf types.str) (defaults.reloadServices or [ ]);
    webroot = opt (types.nullOr types.str) (defaults.webroot or null);
    listenHTTP = opt (types.nullOr types.str) (defaults.listenHTTP or null);
    dnsProvider = opt (types.nullOr types.str) (defaults.dnsProvider or null);
    environmentFile = opt (types.nullOr types.path) (defaults.environmentFile or null);
    credentialFiles = opt (types.attrsOf types.path) (defaults.credentialFiles or { });
    server = opt (types.nullOr types.str) (
      defaults.server or "https://acme-v02.api.letsencrypt.org/directory"
    );
  };
  acme = config.security.acme;
in
{
  options = {
    assertions = opt (types.listOf types.unspecified) [ ];
    warnings = opt (types.listOf types.str) [ ];

    environment.systemPackages = opt (types.listOf types.package) [ ];

    users.users = opt (types.attrsOf (types.submodule userOptions)) { };
    users.groups = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            gid = opt (types.nullOr types.int) null;
            members = opt (types.listOf types.str) [ ];
          };
        }
      );
      default = { };
    };

    systemd.services = opt (types.attrsOf (types.submodule serviceOptions)) { };
    systemd.timers = opt (types.attrsOf (types.submodule timerOptions)) { };
    systemd.targets = opt (types.attrsOf (types.submodule { options = commonUnitOptions; })) { };
    systemd.tmpfiles.rules = opt (types.listOf types.str) [ ];

    networking.firewall = {
      enable = opt types.bool true;
      allowedTCPPorts = opt (types.listOf types.port) [ ];
      allowedUDPPorts = opt (types.listOf types.port) [ ];
      allowedTCPPortRanges = opt (types.listOf portRange) [ ];
      allowedUDPPortRanges = opt (types.listOf portRange) [ ];
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
          options.port = opt types.port 5432;
        };
        default = { };
      };
      dataDir = opt types.path "/var/lib/postgresql/15";
    };

    services.caddy = enableOnly // {
      user = opt types.str "caddy";
      group = opt types.str "caddy";
      email = opt (types.nullOr types.str) null;
      globalConfig = opt types.lines "";
      extraConfig = opt types.lines "";
    };

    # services/databases/redis.nix: one server per name, its user (and
    # group) redis-NAME, its socket /run/redis-NAME/redis.sock, no TCP port
    # unless the name is empty.
    services.redis.servers = mkOption {
      type = types.attrsOf (
        types.submodule (
          { name, ... }:
          {
            options = {
              enable = opt types.bool false;
              user = opt types.str (if name == "" then "redis" else "redis-${name}");
              port = opt types.port (if name == "" then 6379 else 0);
              bind = opt (types.nullOr types.str) "127.0.0.1";
              unixSocket = opt (types.nullOr types.path) (
                if name == "" then "/run/redis/redis.sock" else "/run/redis-${name}/redis.sock"
              );
              unixSocketPerm = opt types.int 660;
              save = opt (types.listOf (types.listOf types.int)) [
                [
                  900
                  1
                ]
                [
                  300
                  10
                ]
                [
                  60
                  10000
                ]
              ];
              appendOnly = opt types.bool false;
              requirePassFile = opt (types.nullOr types.path) null;
            };
          }
        )
      );
      default = { };
    };

    services.prometheus = enableOnly // {
      scrapeConfigs = opt (types.listOf (types.attrsOf types.unspecified)) [ ];
    };

    services.matrix-synapse = enableOnly;
    services.coturn = enableOnly;

    security.acme = {
      acceptTerms = opt types.bool false;
      defaults = mkOption {
        type = types.submodule { options = acmeInheritable { }; };
        default = { };
      };
      # ... and a certificate's own options (certOpts).
      certs = opt (types.attrsOf (
        types.submodule (
          { name, ... }:
          {
            options = acmeInheritable acme.defaults // {
              directory = mkOption {
                type = types.str;
                readOnly = true;
                default = "/var/lib/acme/${name}";
              };
              domain = opt types.str name;
              extraDomainNames = opt (types.listOf types.str) [ ];
              s3Bucket = opt (types.nullOr types.str) null;
            };
          }
        )
      )) { };
    };
  };

  config = lib.mkMerge [
    (lib.mkIf config.services.postgresql.enable {
      services.postgresql.package = lib.mkDefault pkgs.postgresql;
    })
    # security/acme/default.nix's assertions, with its messages.
    (lib.mkIf (acme.certs != { }) {
      assertions = [
        {
          assertion = acme.defaults.email != null || lib.all (c: c.email != null) (lib.attrValues acme.certs);
          message = "You must define `security.acme.certs.<name>.email` or `security.acme.defaults.email` to register with the CA.";
        }
        {
          assertion = acme.acceptTerms;
          message = "You must accept the CA's terms of service before using the ACME module by setting `security.acme.acceptTerms` to `true`.";
        }
      ]
      ++ lib.mapAttrsToList (cert: data: {
        assertion =
          lib.length (
            lib.filter (x: x != null) [
              data.dnsProvider
              data.webroot
              data.listenHTTP
              data.s3Bucket
            ]
          ) == 1;
        message = "Exactly one of the options `security.acme.certs.${cert}.dnsProvider`, `security.acme.certs.${cert}.webroot`, `security.acme.certs.${cert}.listenHTTP` and `security.acme.certs.${cert}.s3Bucket` is required.";
      }) acme.certs;
    })
  ];
}
