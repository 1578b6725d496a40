# The module evaluation tests. See default.nix.
{ lib }:

let
  pkgs = import ./fake-pkgs.nix { inherit lib; };
  schema = builtins.fromJSON (builtins.readFile ../../schema/host-description.schema.json);
  checkSchema = import ./json-schema.nix { inherit lib; } schema;

  eval =
    extra:
    lib.evalModules {
      modules = [
        ./nixos-stubs.nix
        ../../modules
        { _module.args.pkgs = pkgs; }
      ]
      ++ lib.toList extra;
    };

  base = {
    services.ospw-matrix = {
      enable = true;
      baseDomain = "example.org";
      matrixHost = "matrix.example.org";
      elementHost = "chat.example.org";
      proxy.acmeEmail = "admin@example.org";
    };
  };

  configWith = extra: (eval ([ base ] ++ lib.toList extra)).config;
  config = configWith [ ];

  unit = cfg: name: cfg.systemd.services.${name};
  synapse = cfg: unit cfg "ospw-matrix-synapse";
  coturn = cfg: unit cfg "ospw-matrix-coturn";
  backup = cfg: unit cfg "ospw-matrix-backup";

  # nixpkgs' Synapse wrapper with its default extras and `more`.
  withExtras =
    more:
    pkgs.matrix-synapse.override {
      extras = [
        "postgres"
        "url-preview"
        "systemd"
      ]
      ++ more;
    };

  withBackup = {
    services.ospw-matrix.backup.enable = true;
  };

  workersWith = extra: {
    services.ospw-matrix.synapse.workers = {
      enable = true;
    }
    // extra;
  };
  # The layout of checks/workers.nix: a sync and a client worker.
  workersSyncClient = workersWith {
    sync = 1;
    client = 1;
  };
  backupConfig = configWith withBackup;

  # The host description files the module derives for `backup` and
  # `restore`, as their store paths (which depend on their text, see
  # fake-pkgs.nix): the rendered description with another secrets.dir.
  hostFileWith =
    cfg: name: secretsDir:
    "${pkgs.writeText name (
      builtins.toJSON (cfg.services.ospw-matrix.hostDescription // { secrets.dir = secretsDir; })
    )}";
  backupHostFile =
    cfg: hostFileWith cfg "ospw-matrix-backup-host.json" "/run/credentials/ospw-matrix-backup.service";

  # The position of `needle` in `text` (the first), or -1.
  indexOf =
    needle: text:
    let
      parts = lib.splitString needle text;
    in
    if builtins.length parts < 2 then -1 else builtins.stringLength (lib.head parts);

  failedAssertions = cfg: map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);

  # A test: a list of [ description, actual, expected ] triples; it passes
  # when every actual equals its expected value.
  expect =
    checks:
    let
      failures = lib.filter (c: lib.elemAt c 1 != lib.elemAt c 2) checks;
      show =
        c:
        "${lib.elemAt c 0}: expected ${builtins.toJSON (lib.elemAt c 2)}, got ${builtins.toJSON (lib.elemAt c 1)}";
    in
    {
      ok = failures == [ ];
      msg = if failures == [ ] then "" else lib.concatMapStringsSep "; " show failures;
    };

  # Passes when `errors` (a list of strings) is empty.
  noErrors = errors: {
    ok = errors == [ ];
    msg = lib.concatStringsSep "; " errors;
  };

  contains = needle: haystack: lib.hasInfix needle haystack;
  hasAll = needles: list: lib.all (n: lib.elem n list) needles;
  anyContains = needle: lib.any (contains needle);

  render = cfg: "${cfg.services.ospw-matrix.renderedConfig}";
  secretsDir = "/var/lib/ospw-matrix/secrets";
  credentialNames = [
    "signing_key"
    "registration_shared_secret"
    "macaroon_secret_key"
    "form_secret"
    "turn_shared_secret"
  ];

  ports = cfg: {
    tcp = lib.sort lib.lessThan cfg.networking.firewall.allowedTCPPorts;
    udp = lib.sort lib.lessThan cfg.networking.firewall.allowedUDPPorts;
    udpRanges = cfg.networking.firewall.allowedUDPPortRanges;
    tcpRanges = cfg.networking.firewall.allowedTCPPortRanges;
  };

  withTurnTls = {
    services.ospw-matrix.turn.tls = {
      enable = true;
      certFile = "/var/lib/acme/turn.example.org/fullchain.pem";
      keyFile = "/var/lib/acme/turn.example.org/key.pem";
    };
  };

  # Distinctive secret file paths, to find any place they end up in.
  # The secrets.*File options, written out (not read from the module).
  secretFileOptions = [
    "signingKeyFile"
    "registrationSharedSecretFile"
    "macaroonSecretKeyFile"
    "formSecretFile"
    "turnSharedSecretFile"
  ];

  marker = "LEAKCHECK";
  # A provider and mail, with distinctive secret file paths.
  withSsoEmail = {
    services.ospw-matrix = {
      sso.providers = [
        {
          id = "authentik";
          name = "Example SSO";
          issuer = "https://auth.example.org/application/o/matrix/";
          clientId = "matrix";
          clientSecretFile = "/run/secrets/${marker}-oidc";
          scopes = [
            "openid"
            "profile"
            "email"
          ];
          userMapping.email = "{{ user.email }}";
          require = [
            {
              attribute = "groups";
              value = "chat-users";
            }
          ];
        }
      ];
      email = {
        enable = true;
        smtpHost = "mail.example.org";
        user = "matrix@example.org";
        passwordFile = "/run/secrets/${marker}-smtp";
        from = "Example Chat <noreply@example.org>";
        passwordReset = true;
        notifications = true;
      };
    };
  };
  leakConfig = configWith [
    withTurnTls
    withBackup
    {
      services.ospw-matrix.secrets = lib.genAttrs secretFileOptions (
        name: "/run/secrets/${marker}-${name}"
      );
      services.ospw-matrix.turn.tls.keyFile = lib.mkForce "/run/keys/${marker}-turn-key.pem";
    }
  ];
  # The flake's outputs, evaluated with a stand-in for nixpkgs: enough to
  # see the VM tests collected from checks/ and the module wired to the
  # package, without building anything.
  flakePkgs =
    system:
    pkgs
    // {
      inherit lib;
      stdenv.hostPlatform.system = system;
      callPackage = _fn: _args: pkgs.ospw-matrix;
      testers.runNixOSTest = test: test;
      writeScriptBin = name: text: pkgs.writeText name text;
      python3 = pkgs.python3 // {
        interpreter = "${pkgs.python3}/bin/python3";
      };
    };
  flakeWith =
    lib:
    let
      outputs = (import ../../flake.nix).outputs {
        self = outputs // {
          outPath = toString ../..;
        };
        nixpkgs = {
          inherit lib;
          outPath = "${builtins.storeDir}/00000000000000000000000000000000-nixpkgs";
          legacyPackages = lib.genAttrs [
            "x86_64-linux"
            "aarch64-linux"
          ] flakePkgs;
        };
      };
    in
    outputs;
  flake = flakeWith lib;

  # The source of the flake's module-eval check: the paths of its
  # lib.fileset.unions, relative to the repository (lib.fileset.toSource
  # kept instead of copying to the store).
  moduleEvalSource =
    let
      root = toString ../..;
      keep = lib // {
        fileset = lib.fileset // {
          toSource = args: args;
          unions = paths: { __unions = paths; };
        };
      };
      src = (flakeWith keep).checks.x86_64-linux.module-eval.env.src;
    in
    assert toString src.root == root;
    map (p: lib.removePrefix "${root}/" (toString p)) src.fileset.__unions;

  vmTestNames = lib.filter (lib.hasPrefix "vm-") (lib.attrNames flake.checks.x86_64-linux);

  # The fake `nodes` a testScript function is called with.
  fakeNodes = {
    server = {
      services.ospw-matrix.renderedConfig = "${builtins.storeDir}/00000000000000000000000000000000-ospw-matrix-config";
      networking.primaryIPAddress = "192.168.1.3";
    };
    client.networking.primaryIPAddress = "192.168.1.1";
    peer.networking.primaryIPAddress = "192.168.1.2";
  };

  # The Python test scripts of the VM tests (run.sh compiles them).
  vmTestScripts = lib.genAttrs vmTestNames (
    name:
    let
      test = flake.checks.x86_64-linux.${name};
    in
    if builtins.isFunction test.testScript then test.testScript { nodes = fakeNodes; } else test.testScript
  );

  # A VM test's node evaluated as far as services.ospw-matrix goes: the
  # stubs, the flake's module (from the node's own imports) and the node's
  # settings; definitions of NixOS options the stubs do not declare (the
  # test network, virtualisation, ...) are ignored (`_module.check = false`).
  vmNodeConfig =
    nodeName: node:
    (lib.evalModules {
      modules = [
        ./nixos-stubs.nix
        {
          _module.check = false;
          _module.args = {
            pkgs = flakePkgs "x86_64-linux";
            nodes = fakeNodes;
            name = nodeName;
          };
        }
        node
      ];
    }).config;

  # What a node's render derivation (modules/host-description.nix) is given
  # and runs: the host description file, the package, $out and the build
  # script, all as the store paths the module refers to.
  renderCase = cfg: {
    hostFile = {
      path = "${cfg.services.ospw-matrix.hostDescriptionFile}";
      inherit (cfg.services.ospw-matrix.hostDescriptionFile) text;
    };
    package = "${cfg.services.ospw-matrix.package}";
    nativeBuildInputs = map toString cfg.services.ospw-matrix.renderedConfig.env.nativeBuildInputs;
    out = "${cfg.services.ospw-matrix.renderedConfig}";
    inherit (cfg.services.ospw-matrix.renderedConfig) script;
  };

  # Per VM test: its nodes (names, for the test driver's type hints), its
  # test script, and the render derivation of every node that runs
  # services.ospw-matrix.
  vmTests = lib.genAttrs vmTestNames (
    name:
    let
      test = flake.checks.x86_64-linux.${name};
      configs = lib.mapAttrs vmNodeConfig test.nodes;
    in
    {
      nodes = lib.attrNames test.nodes;
      testScript = vmTestScripts.${name};
      renders = lib.mapAttrs (_: renderCase) (
        lib.filterAttrs (_: cfg: cfg.services.ospw-matrix.enable or false) configs
      );
    }
  );
in
{
  # Not a test: the VM tests' Python scripts, for run.sh to compile.
  _vmTestScripts = vmTestScripts;

  # Not a test: the VM tests' nodes, scripts and render derivations, for
  # scripts/nix-sandbox.sh (which runs the renders in a simulated build
  # sandbox and type-checks the scripts as the NixOS test driver does).
  _vmTests = vmTests;

  # Not a test: the paths of the flake's module-eval source, for
  # scripts/nix-sandbox.sh (which runs run.sh on only those files).
  _moduleEvalSource = moduleEvalSource;

  # Not a test: render derivations that must fail, with what the failure
  # must say (scripts/nix-sandbox.sh runs them too).
  _failingRenders = {
    invalid-matrix-host = renderCase (configWith {
      services.ospw-matrix.matrixHost = lib.mkForce "matrix..example.org";
    }) // {
      mustSay = "services.ospw-matrix.matrixHost";
    };
  };

  # Not a test: the backup unit's script with keep = 3, which run.sh runs
  # against a fake CLI to check what the pruning deletes.
  _backupScript = (backup (configWith [
    withBackup
    { services.ospw-matrix.backup.keep = 3; }
  ])).script;

  flake-outputs = expect [
    [
      "systems"
      (lib.attrNames flake.packages)
      [
        "aarch64-linux"
        "x86_64-linux"
      ]
    ]
    [
      "checks: every checks/<name>.nix as vm-<name>, plus the crate's"
      (lib.attrNames flake.checks.x86_64-linux)
      (lib.sort lib.lessThan (
        [
          "clippy"
          "module-eval"
          "package"
          "rustfmt"
        ]
        ++ lib.mapAttrsToList (file: _: "vm-${lib.removeSuffix ".nix" file}") (
          lib.filterAttrs (file: type: type == "regular" && lib.hasSuffix ".nix" file) (builtins.readDir ../.)
        )
      ))
    ]
    [
      "the scenarios"
      vmTestNames
      [
        "vm-backup"
        "vm-basic"
        "vm-calls"
        "vm-restart"
        "vm-workers"
      ]
    ]
    [
      "packages"
      (lib.attrNames flake.packages.aarch64-linux)
      [
        "default"
        "docs"
        "ospw-matrix"
      ]
    ]
    [
      "module outputs"
      (lib.attrNames flake.nixosModules)
      [
        "default"
        "ospw-matrix"
      ]
    ]
    [
      "formatter"
      (flake.formatter ? x86_64-linux)
      true
    ]
    [
      "dev shell"
      (flake.devShells.x86_64-linux ? default)
      true
    ]
  ];

  # nixpkgs 25.11: `nixfmt` is the RFC 166 formatter and
  # `nixfmt-rfc-style` an alias that warns on every evaluation
  # (pkgs/top-level/aliases.nix, "Added 2025-07-14"); the fake pkgs have
  # no such alias, so using it fails here.
  flake-formatter-is-nixfmt = expect [
    [
      "formatter"
      (map (system: flake.formatter.${system}.name) [
        "x86_64-linux"
        "aarch64-linux"
      ])
      [
        "nixfmt"
        "nixfmt"
      ]
    ]
    [
      "dev shell has nixfmt"
      (lib.elem pkgs.nixfmt flake.devShells.x86_64-linux.default.packages)
      true
    ]
  ];

  # The module-eval check runs run.sh in the build sandbox: python3 must be
  # there, or the VM script compilation and the backup pruning test are
  # skipped without a word.
  flake-module-eval-check-has-python = expect [
    [
      "module-eval nativeBuildInputs"
      (map (p: p.name) flake.checks.x86_64-linux.module-eval.env.nativeBuildInputs)
      [
        "nix"
        "python3"
      ]
    ]
  ];

  flake-vm-tests-well-formed = noErrors (
    lib.concatMap (
      name:
      let
        test = flake.checks.x86_64-linux.${name};
        script = vmTestScripts.${name};
      in
      lib.optional (!lib.hasPrefix "ospw-matrix-" test.name) "${name}: name ${test.name}"
      ++ lib.optional (
        !(test.nodes ? server && test.nodes ? client)
      ) "${name}: needs server and client nodes"
      ++ lib.optional (!lib.hasInfix "start_all()" script) "${name}: testScript does not start the machines"
      ++ lib.optional (!lib.hasInfix "wait_for_server()" script) "${name}: testScript does not wait for the server"
    ) vmTestNames
  );

  # The basic VM test drives a real E2E client (matrix-commander-rs, on
  # matrix-rust-sdk) on the client machine: log in, a room created without
  # asking for encryption, a message sent and decrypted by the other user,
  # and the server's copy checked for ciphertext only.
  flake-basic-uses-a-real-e2e-client =
    let
      test = flake.checks.x86_64-linux.vm-basic;
      script = vmTestScripts.vm-basic;
    in
    expect [
      [
        "client machine has matrix-commander-rs"
        (lib.elem pkgs.matrix-commander-rs (test.nodes.client.environment.systemPackages or [ ]))
        true
      ]
      [
        "script steps"
        (map (step: contains step script) [
          "matrix-commander-rs --timeout"
          "--login password"
          "--plain true"
          "--room-invite"
          "--room-join"
          "--message"
          "--tail"
          "room-events"
        ])
        (lib.replicate 8 true)
      ]
    ];

  flake-module-sets-the-package =
    let
      cfg =
        (lib.evalModules {
          modules = [
            ./nixos-stubs.nix
            flake.nixosModules.default
            { _module.args.pkgs = flakePkgs "x86_64-linux"; }
            base
          ];
        }).config;
    in
    expect [
      [
        "package"
        cfg.services.ospw-matrix.package
        pkgs.ospw-matrix
      ]
      [
        "assertions"
        (failedAssertions cfg)
        [ ]
      ]
    ];

  # docs/nixos-options.md lists exactly the module's options (regenerate
  # it with nix/options-doc.sh). Only the headings are compared, so that
  # another nixpkgs lib's rendering of types and defaults does not matter.
  options-doc-current =
    let
      headings = text: lib.filter (lib.hasPrefix "## ") (lib.splitString "\n" text);
    in
    expect [
      [
        "option headings"
        (headings (builtins.readFile ../../docs/nixos-options.md))
        (headings (import ../../nix/options-doc.nix { inherit lib; }))
      ]
    ];

  units-exist = expect [
    [
      "ospw-matrix units"
      (lib.filter (lib.hasPrefix "ospw-matrix-") (lib.attrNames config.systemd.services))
      [
        "ospw-matrix-coturn"
        "ospw-matrix-db-init"
        "ospw-matrix-secrets"
        "ospw-matrix-synapse"
      ]
    ]
    [
      "caddy enabled"
      config.services.caddy.enable
      true
    ]
    [
      "postgresql enabled"
      config.services.postgresql.enable
      true
    ]
  ];

  disabled-does-nothing =
    let
      cfg = (eval [ { services.ospw-matrix.enable = false; } ]).config;
    in
    expect [
      [
        "units"
        (lib.attrNames cfg.systemd.services)
        [ ]
      ]
      [
        "firewall TCP"
        cfg.networking.firewall.allowedTCPPorts
        [ ]
      ]
      [
        "caddy"
        cfg.services.caddy.enable
        false
      ]
      [
        "assertions"
        (failedAssertions cfg)
        [ ]
      ]
    ];

  good-config-passes-assertions = expect [
    [
      "failed assertions"
      (failedAssertions config)
      [ ]
    ]
    [
      "warnings"
      config.warnings
      [ ]
    ]
  ];

  synapse-ordering =
    let
      s = synapse config;
    in
    expect [
      [
        "wantedBy"
        s.wantedBy
        [ "multi-user.target" ]
      ]
      [
        "after has secrets, postgresql, db-init"
        (hasAll [
          "ospw-matrix-secrets.service"
          "postgresql.target"
          "ospw-matrix-db-init.service"
          "network-online.target"
        ] s.after)
        true
      ]
      [
        "requires has secrets, postgresql, db-init"
        (hasAll [
          "ospw-matrix-secrets.service"
          "postgresql.target"
          "ospw-matrix-db-init.service"
        ] s.requires)
        true
      ]
      [
        "wants network-online"
        s.wants
        [ "network-online.target" ]
      ]
    ];

  synapse-exec-and-user =
    let
      sc = (synapse config).serviceConfig;
    in
    expect [
      [
        "ExecStart runs synapse_homeserver on the rendered homeserver.yaml"
        sc.ExecStart
        "${pkgs.matrix-synapse}/bin/synapse_homeserver --config-path ${render config}/synapse/homeserver.yaml --keys-directory \"/var/lib/ospw-matrix/synapse\""
      ]
      [
        "Type"
        sc.Type
        "notify"
      ]
      [
        "User"
        sc.User
        "synapse"
      ]
      [
        "Group"
        sc.Group
        "synapse"
      ]
      [
        "StateDirectory"
        sc.StateDirectory
        "ospw-matrix/synapse"
      ]
      [
        "StateDirectoryMode"
        sc.StateDirectoryMode
        "0700"
      ]
      [
        "Restart"
        sc.Restart
        "on-failure"
      ]
      [
        "system user"
        {
          inherit (config.users.users.synapse) isSystemUser group home;
        }
        {
          isSystemUser = true;
          group = "synapse";
          home = "/var/lib/ospw-matrix/synapse";
        }
      ]
      [
        "group"
        (config.users.groups ? synapse)
        true
      ]
    ];

  synapse-hardening =
    let
      sc = (synapse config).serviceConfig;
      # At least nixpkgs' matrix-synapse module's set
      # (nixos/modules/services/matrix/synapse.nix), written out here rather
      # than taken from modules/lib.nix, so that a change there shows.
      required =
        lib.genAttrs [
          "LockPersonality"
          "NoNewPrivileges"
          "PrivateDevices"
          "PrivateTmp"
          "PrivateUsers"
          "ProtectClock"
          "ProtectControlGroups"
          "ProtectHome"
          "ProtectHostname"
          "ProtectKernelLogs"
          "ProtectKernelModules"
          "ProtectKernelTunables"
          "RemoveIPC"
          "RestrictNamespaces"
          "RestrictRealtime"
          "RestrictSUIDSGID"
        ] (_: true)
        // {
          CapabilityBoundingSet = [ "" ];
          ProcSubset = "pid";
          ProtectProc = "invisible";
          ProtectSystem = "strict";
          RestrictAddressFamilies = [
            "AF_INET"
            "AF_INET6"
            "AF_UNIX"
          ];
          SystemCallArchitectures = "native";
          UMask = "0077";
        };
    in
    expect (
      lib.mapAttrsToList (name: value: [
        name
        (sc.${name} or null)
        value
      ]) required
      ++ [
        [
          "SystemCallFilter has @system-service"
          (lib.elem "@system-service" sc.SystemCallFilter)
          true
        ]
        [
          "ReadWritePaths"
          sc.ReadWritePaths
          [ "/var/lib/ospw-matrix/synapse" ]
        ]
      ]
    );

  # Every long-running or scheduled unit applies modules/lib.nix's shared
  # sandboxing, relaxing or replacing only the entries named here.
  units-apply-shared-hardening =
    let
      ospwLib = import ../../modules/lib.nix { inherit lib; };
      changed =
        sc:
        lib.filter (name: (sc.${name} or null) != ospwLib.hardening.${name}) (
          lib.attrNames ospwLib.hardening
        );
    in
    expect [
      [
        "ospw-matrix-synapse"
        (changed (synapse config).serviceConfig)
        [ "MemoryDenyWriteExecute" ]
      ]
      [
        "ospw-matrix-coturn"
        (changed (coturn config).serviceConfig)
        [
          "RestrictAddressFamilies"
          "SystemCallFilter"
        ]
      ]
      [
        "ospw-matrix-backup"
        (changed (backup backupConfig).serviceConfig)
        [
          "CapabilityBoundingSet"
          "SystemCallFilter"
        ]
      ]
    ];

  synapse-credentials-default = expect [
    [
      "LoadCredential"
      (synapse config).serviceConfig.LoadCredential
      (map (n: "${n}:${secretsDir}/${n}") (lib.sort lib.lessThan credentialNames))
    ]
  ];

  synapse-credentials-file-override =
    let
      cfg = configWith {
        services.ospw-matrix.secrets.signingKeyFile = "/run/secrets/matrix/signing.key";
        services.ospw-matrix.secrets.turnSharedSecretFile = "/run/agenix/turn";
      };
      creds = (synapse cfg).serviceConfig.LoadCredential;
    in
    expect [
      [
        "signing_key from the *File option"
        (lib.elem "signing_key:/run/secrets/matrix/signing.key" creds)
        true
      ]
      [
        "turn_shared_secret from the *File option"
        (lib.elem "turn_shared_secret:/run/agenix/turn" creds)
        true
      ]
      [
        "the others still generated"
        (hasAll [
          "registration_shared_secret:${secretsDir}/registration_shared_secret"
          "macaroon_secret_key:${secretsDir}/macaroon_secret_key"
          "form_secret:${secretsDir}/form_secret"
        ] creds)
        true
      ]
      [
        "five credentials"
        (builtins.length creds)
        5
      ]
      [
        "coturn gets the same TURN secret"
        (coturn cfg).serviceConfig.LoadCredential
        [ "turn_shared_secret:/run/agenix/turn" ]
      ]
    ];

  secrets-unit =
    let
      s = unit config "ospw-matrix-secrets";
    in
    expect [
      [
        "Type"
        s.serviceConfig.Type
        "oneshot"
      ]
      [
        "RemainAfterExit"
        s.serviceConfig.RemainAfterExit
        true
      ]
      [
        "ExecStart"
        s.serviceConfig.ExecStart
        "${pkgs.ospw-matrix}/bin/ospw-matrix secrets init --dir ${secretsDir}"
      ]
      [
        "StateDirectory"
        s.serviceConfig.StateDirectory
        "ospw-matrix/secrets"
      ]
      [
        "StateDirectoryMode"
        s.serviceConfig.StateDirectoryMode
        "0700"
      ]
      [
        "UMask"
        s.serviceConfig.UMask
        "0077"
      ]
      [
        "before synapse and coturn"
        (hasAll [
          "ospw-matrix-synapse.service"
          "ospw-matrix-coturn.service"
        ] s.before)
        true
      ]
      [
        "no network"
        s.serviceConfig.PrivateNetwork
        true
      ]
    ];

  secrets-unit-all-provided =
    let
      cfg = configWith {
        services.ospw-matrix.secrets = lib.genAttrs secretFileOptions (
          name: "/run/secrets/${name}"
        );
      };
      s = unit cfg "ospw-matrix-secrets";
    in
    expect [
      [
        "nothing generated"
        s.serviceConfig.ExecStart
        "${pkgs.coreutils}/bin/true"
      ]
      [
        "synapse still ordered after it"
        (lib.elem "ospw-matrix-secrets.service" (synapse cfg).requires)
        true
      ]
    ];

  db-init-unit =
    let
      d = unit config "ospw-matrix-db-init";
    in
    expect [
      [
        "after postgresql.target"
        d.after
        [ "postgresql.target" ]
      ]
      [
        "requires postgresql.target"
        d.requires
        [ "postgresql.target" ]
      ]
      [
        "before synapse"
        d.before
        [ "ospw-matrix-synapse.service" ]
      ]
      [
        "runs as postgres"
        d.serviceConfig.User
        "postgres"
      ]
      [
        "oneshot, remains"
        [
          d.serviceConfig.Type
          d.serviceConfig.RemainAfterExit
        ]
        [
          "oneshot"
          true
        ]
      ]
      [
        "creates the role only if missing"
        (contains "FROM pg_roles WHERE rolname = 'synapse'" d.script && contains ''CREATE ROLE "synapse" LOGIN'' d.script)
        true
      ]
      [
        "creates the database with C collation from template0, only if missing"
        (
          contains "FROM pg_database WHERE datname = 'synapse'" d.script
          && contains "CREATE DATABASE \\\"synapse\\\" OWNER \\\"synapse\\\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'" d.script
        )
        true
      ]
      [
        "checks the collation of an existing database"
        (contains "datcollate" d.script)
        true
      ]
      [
        "no password anywhere"
        (contains "PASSWORD" d.script)
        false
      ]
      [
        "sandboxed: no network but PostgreSQL's Unix socket, read-only system, no capabilities"
        {
          inherit (d.serviceConfig)
            RemoveIPC
            PrivateNetwork
            RestrictAddressFamilies
            ProtectSystem
            ProtectHome
            PrivateTmp
            NoNewPrivileges
            CapabilityBoundingSet
            SystemCallFilter
            ;
        }
        {
          # As `postgres`, RemoveIPC would remove the server's shared memory
          # whenever this unit stops.
          RemoveIPC = false;
          PrivateNetwork = true;
          RestrictAddressFamilies = [ "AF_UNIX" ];
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          NoNewPrivileges = true;
          CapabilityBoundingSet = [ "" ];
          SystemCallFilter = [
            "@system-service"
            "~@privileged"
            "~@resources"
          ];
        }
      ]
    ];

  # nixpkgs' services.postgresql.package has no default unless PostgreSQL is
  # enabled on the host, so the PostgreSQL client programs come from
  # synapse.database.package: with a database not managed by this module,
  # the admin wrapper and the backup unit still evaluate and use it.
  database-package =
    let
      wrapperText =
        cfg: (lib.head (lib.filter (p: p.name == "ospw-matrix") cfg.environment.systemPackages)).text;
      pg17 = pkgs.postgresql // {
        outPath = "${builtins.storeDir}/00000000000000000000000000000000-postgresql-17";
      };
      notLocal = configWith [
        withBackup
        { services.ospw-matrix.synapse.database.createLocally = false; }
      ];
      notLocalPinned = configWith [
        withBackup
        {
          services.ospw-matrix.synapse.database = {
            createLocally = false;
            package = pg17;
          };
        }
      ];
      local = configWith [
        withBackup
        { services.postgresql.package = pg17; }
      ];
    in
    expect [
      [
        "not local: default pkgs.postgresql, in the wrapper and the backup unit"
        [
          (contains "OSPW_MATRIX_PG_BIN_DIR:-${pkgs.postgresql}/bin}" (wrapperText notLocal))
          (contains "--pg-bin-dir ${pkgs.postgresql}/bin \\" (backup notLocal).script)
        ]
        [
          true
          true
        ]
      ]
      [
        "not local, pinned: the option's package"
        [
          (contains "OSPW_MATRIX_PG_BIN_DIR:-${pg17}/bin}" (wrapperText notLocalPinned))
          (contains "--pg-bin-dir ${pg17}/bin \\" (backup notLocalPinned).script)
        ]
        [
          true
          true
        ]
      ]
      [
        "local: services.postgresql.package, also for db-init's psql"
        [
          (local.services.ospw-matrix.synapse.database.package == pg17)
          (contains "OSPW_MATRIX_PG_BIN_DIR:-${pg17}/bin}" (wrapperText local))
          (contains "--pg-bin-dir ${pg17}/bin \\" (backup local).script)
          (contains "${pg17}/bin/psql" (unit local "ospw-matrix-db-init").script)
        ]
        [
          true
          true
          true
          true
        ]
      ]
    ];

  database-not-local =
    let
      cfg = configWith { services.ospw-matrix.synapse.database.createLocally = false; };
    in
    expect [
      [
        "no db-init unit"
        (cfg.systemd.services ? ospw-matrix-db-init)
        false
      ]
      [
        "postgresql not enabled"
        cfg.services.postgresql.enable
        false
      ]
      [
        "synapse does not require postgresql"
        (synapse cfg).requires
        [ "ospw-matrix-secrets.service" ]
      ]
    ];

  coturn-unit =
    let
      c = coturn config;
      sc = c.serviceConfig;
    in
    expect [
      [
        "wantedBy"
        c.wantedBy
        [ "multi-user.target" ]
      ]
      [
        "Type=notify, as nixpkgs' services.coturn (its coturn tells systemd when it is ready)"
        sc.Type
        "notify"
      ]
      [
        "requires secrets"
        c.requires
        [ "ospw-matrix-secrets.service" ]
      ]
      [
        "after secrets"
        (lib.elem "ospw-matrix-secrets.service" c.after)
        true
      ]
      [
        "LoadCredential"
        sc.LoadCredential
        [ "turn_shared_secret:${secretsDir}/turn_shared_secret" ]
      ]
      [
        "ExecStartPre materializes from the credential"
        sc.ExecStartPre
        "${pkgs.ospw-matrix}/bin/ospw-matrix materialize coturn --template ${render config}/coturn/turnserver.conf --secret-file %d/turn_shared_secret --out /run/ospw-matrix-coturn/turnserver.conf"
      ]
      [
        "ExecStart reads the runtime config"
        (lib.hasPrefix "${pkgs.coturn}/bin/turnserver -c /run/ospw-matrix-coturn/turnserver.conf" sc.ExecStart)
        true
      ]
      [
        "DynamicUser"
        sc.DynamicUser
        true
      ]
      [
        "RuntimeDirectory"
        [
          sc.RuntimeDirectory
          sc.RuntimeDirectoryMode
        ]
        [
          "ospw-matrix-coturn"
          "0700"
        ]
      ]
      [
        "no capabilities for ports >= 1024"
        [
          (sc.AmbientCapabilities or null)
          sc.CapabilityBoundingSet
        ]
        [
          null
          [ "" ]
        ]
      ]
      [
        "hardened"
        [
          sc.ProtectSystem
          sc.NoNewPrivileges
          sc.PrivateDevices
          sc.PrivateTmp
          sc.ProtectHome
          sc.UMask
          (lib.elem "@system-service" sc.SystemCallFilter)
        ]
        [
          "strict"
          true
          true
          true
          true
          "0077"
          true
        ]
      ]
    ];

  coturn-low-port-capability =
    let
      sc = (coturn (configWith { services.ospw-matrix.turn.port = 478; })).serviceConfig;
    in
    expect [
      [
        "AmbientCapabilities"
        sc.AmbientCapabilities
        [ "CAP_NET_BIND_SERVICE" ]
      ]
      [
        "CapabilityBoundingSet"
        sc.CapabilityBoundingSet
        [ "CAP_NET_BIND_SERVICE" ]
      ]
      [
        "PrivateUsers off (it would drop the capability)"
        sc.PrivateUsers
        false
      ]
    ];

  coturn-tls-credentials =
    let
      cfg = configWith withTurnTls;
      tls = cfg.services.ospw-matrix.hostDescription.turn.tls;
    in
    expect [
      [
        "LoadCredential"
        (coturn cfg).serviceConfig.LoadCredential
        [
          "turn_shared_secret:${secretsDir}/turn_shared_secret"
          "turn_tls_cert:/var/lib/acme/turn.example.org/fullchain.pem"
          "turn_tls_key:/var/lib/acme/turn.example.org/key.pem"
        ]
      ]
      [
        "host description points into the credentials"
        tls
        {
          port = 5349;
          cert_file = "/run/credentials/ospw-matrix-coturn.service/turn_tls_cert";
          key_file = "/run/credentials/ospw-matrix-coturn.service/turn_tls_key";
        }
      ]
    ];

  # TURN over TLS with a certificate from security.acme (DNS-01), exactly as
  # docs/nixos.md shows it: the document's example is this file.
  turn-tls-acme-docs-example =
    let
      docs = builtins.readFile ../../docs/nixos.md;
      section = lib.elemAt (lib.splitString "### TURN over TLS" docs) 1;
      shown = lib.head (lib.splitString "```" (lib.elemAt (lib.splitString "```nix\n" section) 1));
      cfg = configWith (import ./examples/turn-tls-acme.nix);
      c = coturn cfg;
    in
    expect [
      [
        "docs/nixos.md shows checks/eval/examples/turn-tls-acme.nix"
        shown
        (builtins.readFile ./examples/turn-tls-acme.nix)
      ]
      [
        "no failed assertion (nixpkgs' security.acme ones included)"
        (failedAssertions cfg)
        [ ]
      ]
      [
        "coturn loads the ACME certificate and key"
        c.serviceConfig.LoadCredential
        [
          "turn_shared_secret:${secretsDir}/turn_shared_secret"
          "turn_tls_cert:/var/lib/acme/turn.example.org/fullchain.pem"
          "turn_tls_key:/var/lib/acme/turn.example.org/key.pem"
        ]
      ]
      [
        "coturn wants and starts after the certificate's unit"
        [
          (lib.elem "acme-turn.example.org.service" c.wants)
          (lib.elem "acme-turn.example.org.service" c.after)
        ]
        [
          true
          true
        ]
      ]
      [
        "a renewal restarts coturn"
        cfg.security.acme.certs."turn.example.org".reloadServices
        [ "ospw-matrix-coturn.service" ]
      ]
      [
        "TURN over TLS in the host description"
        cfg.services.ospw-matrix.hostDescription.turn.tls.port
        5349
      ]
    ];

  # What docs/nixos.md showed before (certificate paths and reloadServices
  # only) does not evaluate on NixOS: security.acme wants its terms accepted,
  # an e-mail and one challenge method.
  turn-tls-acme-incomplete-fails = expect [
    [
      "nixpkgs' ACME assertions fire"
      (map (needle: anyContains needle (
        failedAssertions (configWith [
          withTurnTls
          { security.acme.certs."turn.example.org".reloadServices = [ "ospw-matrix-coturn.service" ]; }
        ])
      )) [ "acceptTerms" "security.acme.defaults.email" "Exactly one of the options" ])
      [
        true
        true
        true
      ]
    ]
    [
      "useACMEHost without configuring the certificate: the same assertions"
      (map (needle: anyContains needle (
        failedAssertions (configWith {
          services.ospw-matrix.turn.tls = {
            enable = true;
            useACMEHost = "turn.example.org";
          };
        })
      )) [ "acceptTerms" "security.acme.certs.turn.example.org.dnsProvider" ])
      [
        true
        true
      ]
    ]
  ];

  firewall-default = expect [
    [
      "ports (UDP 443: HTTP/3)"
      (ports config)
      {
        tcp = [
          80
          443
          3478
        ];
        udp = [
          443
          3478
        ];
        udpRanges = [
          {
            from = 49152;
            to = 65535;
          }
        ];
        tcpRanges = [ ];
      }
    ]
  ];

  firewall-turn-tls = expect [
    [
      "ports"
      (ports (configWith [
        withTurnTls
        {
          services.ospw-matrix.turn.relayPortRange = {
            from = 50000;
            to = 50100;
          };
        }
      ]))
      {
        tcp = [
          80
          443
          3478
          5349
        ];
        udp = [
          443
          3478
          5349
        ];
        udpRanges = [
          {
            from = 50000;
            to = 50100;
          }
        ];
        tcpRanges = [ ];
      }
    ]
  ];

  firewall-closed = expect [
    [
      "ports"
      (ports (configWith { services.ospw-matrix.openFirewall = false; }))
      {
        tcp = [ ];
        udp = [ ];
        udpRanges = [ ];
        tcpRanges = [ ];
      }
    ]
  ];

  firewall-never-synapse-or-postgres =
    let
      cfg = configWith [
        withTurnTls
        { services.ospw-matrix.synapse.listen.port = 8448; }
      ];
      all = cfg.networking.firewall.allowedTCPPorts ++ cfg.networking.firewall.allowedUDPPorts;
    in
    expect [
      [
        "8448, 8008, 5432 not opened"
        (lib.filter (
          p:
          lib.elem p [
            8448
            8008
            5432
          ]
        ) all)
        [ ]
      ]
      [
        "listener on loopback in the host description"
        cfg.services.ospw-matrix.hostDescription.synapse.listen
        {
          tcp = {
            address = "127.0.0.1";
            port = 8448;
          };
        }
      ]
    ];

  caddy-config = expect [
    [
      "enabled"
      config.services.caddy.enable
      true
    ]
    [
      "email from proxy.acmeEmail"
      config.services.caddy.email
      "admin@example.org"
    ]
    [
      "imports the rendered sites"
      (contains "import ${render config}/caddy/sites.caddy" config.services.caddy.extraConfig)
      true
    ]
    [
      "no global port overrides by default"
      config.services.caddy.globalConfig
      ""
    ]
    [
      "after synapse"
      config.systemd.services.caddy.after
      [ "ospw-matrix-synapse.service" ]
    ]
  ];

  caddy-no-socket-no-extra-group = expect [
    [
      "no SupplementaryGroups with a TCP listener"
      (config.systemd.services.caddy.serviceConfig.SupplementaryGroups or null)
      null
    ]
  ];

  caddy-internal-ca-skips-trust-store =
    let
      internal = configWith { services.ospw-matrix.proxy.tls = "internal"; };
      lines = cfg: lib.splitString "\n" cfg.services.caddy.globalConfig;
    in
    expect [
      [
        "skip_install_trust with tls internal"
        (lib.elem "skip_install_trust" (lines internal))
        true
      ]
      [
        "not with ACME"
        (lib.elem "skip_install_trust" (lines config))
        false
      ]
    ];

  caddy-without-email =
    let
      cfg = configWith { services.ospw-matrix.proxy.acmeEmail = lib.mkForce null; };
    in
    expect [
      [
        "email"
        cfg.services.caddy.email
        null
      ]
      [
        "warns"
        (anyContains "acmeEmail" cfg.warnings)
        true
      ]
      [
        "no acme_email in the host description"
        (cfg.services.ospw-matrix.hostDescription.proxy ? acme_email)
        false
      ]
    ];

  caddy-ports-and-socket =
    let
      cfg = configWith {
        services.ospw-matrix.proxy = {
          httpPort = 8080;
          httpsPort = 8443;
        };
        services.ospw-matrix.synapse.listen.unixSocket = "/run/ospw-matrix-synapse/client.sock";
      };
    in
    expect [
      [
        "global ports"
        (
          contains "http_port 8080" cfg.services.caddy.globalConfig
          && contains "https_port 8443" cfg.services.caddy.globalConfig
        )
        true
      ]
      [
        "firewall follows"
        (ports cfg).tcp
        [
          3478
          8080
          8443
        ]
      ]
      [
        "caddy's unit gets synapse's group (a change restarts caddy; nixpkgs only reloads it for a new configuration)"
        (cfg.systemd.services.caddy.serviceConfig.SupplementaryGroups or null)
        [ "synapse" ]
      ]
      [
        "the caddy account is left alone"
        (cfg.users.users.caddy.extraGroups or [ ])
        [ ]
      ]
      [
        "synapse runtime directory for the socket"
        [
          (synapse cfg).serviceConfig.RuntimeDirectory
          (synapse cfg).serviceConfig.RuntimeDirectoryMode
        ]
        [
          "ospw-matrix-synapse"
          "0750"
        ]
      ]
      [
        "unix listener in the host description"
        cfg.services.ospw-matrix.hostDescription.synapse.listen
        { unix.path = "/run/ospw-matrix-synapse/client.sock"; }
      ]
    ];

  assertion-conflicting-synapse = expect [
    [
      "fires"
      (anyContains "services.matrix-synapse must not be enabled" (
        failedAssertions (configWith { services.matrix-synapse.enable = true; })
      ))
      true
    ]
  ];

  assertion-conflicting-coturn = expect [
    [
      "fires"
      (anyContains "services.coturn must not be enabled" (
        failedAssertions (configWith { services.coturn.enable = true; })
      ))
      true
    ]
  ];

  assertion-unwrapped-synapse = expect [
    [
      "the unwrapped Synapse (no psycopg2) is refused"
      (anyContains "has no PostgreSQL driver (psycopg2)" (
        failedAssertions (configWith { services.ospw-matrix.synapse.package = pkgs.matrix-synapse-unwrapped; })
      ))
      true
    ]
    [
      "the wrapped one passes"
      (anyContains "psycopg2" (failedAssertions config))
      false
    ]
  ];

  assertion-unset-host-names =
    let
      cfg =
        (eval {
          services.ospw-matrix = {
            enable = true;
            baseDomain = "example.org";
          };
        }).config;
    in
    expect [
      [
        "failed assertions"
        (failedAssertions cfg)
        [
          "services.ospw-matrix.matrixHost is not set: set it to a DNS name that points at this host (see docs/nixos.md)."
          "services.ospw-matrix.elementHost is not set: set it to a DNS name that points at this host (see docs/nixos.md)."
        ]
      ]
    ];

  assertion-turn-tls-needs-files = expect [
    [
      "fires"
      (anyContains "turn.tls.certFile and" (
        failedAssertions (configWith { services.ospw-matrix.turn.tls.enable = true; })
      ))
      true
    ]
  ];

  assertion-inline-secrets =
    let
      failed = failedAssertions (configWith {
        services.ospw-matrix.synapse.settings.registration_shared_secret = "hunter2";
        services.ospw-matrix.turn.settings.static-auth-secret = "hunter2";
      });
    in
    expect [
      [
        "synapse"
        (anyContains "synapse.settings.registration_shared_secret would put a secret into the world-readable Nix store: remove it and use services.ospw-matrix.secrets.registrationSharedSecretFile" failed)
        true
      ]
      [
        "turn"
        (anyContains "turn.settings.static-auth-secret would put a secret" failed)
        true
      ]
    ];

  # The module's detector (modules/secret-detect.nix) finds what the
  # library finds in the example the library itself wrote into
  # schema/secret-rules.json (`ospw-matrix schema --secret-rules`).
  secret-detector-agrees-with-the-library =
    let
      rules = builtins.fromJSON (builtins.readFile ../../schema/secret-rules.json);
      detect = import ../../modules/secret-detect.nix { inherit lib; };
      found = lib.sort (a: b: a < b) (
        map (f: f.path) (detect.findSecrets "s" rules.example.settings)
      );
    in
    expect [
      [
        "same findings"
        found
        rules.example.found
      ]
    ];

  assertion-secrets-by-shape =
    let
      failed = failedAssertions (configWith {
        services.ospw-matrix.synapse.settings.modules = [
          {
            module = "bot.Module";
            config.api_tokens = [ "abc" ];
            config.APIToken = "abc";
          }
        ];
        services.ospw-matrix.synapse.settings.notes = "ed25519 a_AbCd nJ3aZkS0kD2fFq9Y0rC1mV6oQ8yXhT4uWbE7pLs5gIw";
        services.ospw-matrix.turn.settings.redis-statsdb = "ip=127.0.0.1 password=hunter2";
        services.ospw-matrix.element.settings.posthog.project_api_key = "phc_x";
        services.ospw-matrix.element.settingDefaults.myTokens = [ "abc" ];
        services.ospw-matrix.synapse.settings.oidc_providers = [ { client_secret_path = ./tests.nix; } ];
      });
      clean = failedAssertions (configWith {
        services.ospw-matrix.synapse.settings = {
          password_config.policy.minimum_length = 8;
          oidc_providers = [
            {
              client_secret_path = "/run/agenix/oidc";
              token_endpoint = "https://id.example.org/t";
            }
          ];
          trusted_key_servers = [ ];
        };
        services.ospw-matrix.turn.settings.stale-nonce = 600;
      });
      fires = path: anyContains "services.ospw-matrix.${path} holds a secret" failed;
    in
    expect [
      [
        "a list item under a secret name"
        (fires "synapse.settings.modules[0].config.api_tokens[0]")
        true
      ]
      [
        "an acronym"
        (fires "synapse.settings.modules[0].config.APIToken")
        true
      ]
      [
        "a signing key by its shape"
        (fires "synapse.settings.notes")
        true
      ]
      [
        "a password in a connection string"
        (fires "turn.settings.redis-statsdb")
        true
      ]
      [
        "Element"
        (fires "element.settings.posthog.project_api_key")
        true
      ]
      [
        "Element's setting defaults"
        (fires "element.settingDefaults.myTokens[0]")
        true
      ]
      [
        "a path literal copied into the store"
        (anyContains "synapse.settings.oidc_providers[0].client_secret_path is a Nix path literal" failed)
        true
      ]
      [
        "no value printed back"
        (anyContains "hunter2" failed || anyContains "nJ3a" failed)
        false
      ]
      [
        "harmless settings pass"
        clean
        [ ]
      ]
    ];

  assertion-secret-file-in-store = expect [
    [
      "fires"
      (anyContains "secrets.formSecretFile" (
        failedAssertions (configWith {
          services.ospw-matrix.secrets.formSecretFile = "${builtins.storeDir}/0000-form-secret";
        })
      ))
      true
    ]
    [
      "relative path fires"
      (anyContains "must be an absolute path" (
        failedAssertions (configWith { services.ospw-matrix.secrets.formSecretFile = "secrets/form"; })
      ))
      true
    ]
  ];

  secret-options-take-paths-only =
    let
      opts = (eval base).options.services.ospw-matrix.secrets;
    in
    expect [
      [
        "every secrets option is a *File"
        (lib.filter (name: !lib.hasSuffix "File" name) (lib.attrNames opts))
        [ ]
      ]
      [
        "a path literal is refused (it would be copied into the store)"
        (builtins.tryEval (configWith { services.ospw-matrix.secrets.formSecretFile = ./tests.nix; })
        .services.ospw-matrix.secrets.formSecretFile
        ).success
        false
      ]
    ];

  host-description-matches-schema = noErrors (
    checkSchema config.services.ospw-matrix.hostDescription
  );

  host-description-full-matches-schema =
    let
      cfg = configWith [
        withTurnTls
        {
          services.ospw-matrix = {
            serverName = "example.org";
            synapse = {
              listen.unixSocket = "/run/ospw-matrix-synapse/client.sock";
              mediaStorePath = "/srv/media";
              settings.max_image_pixels = "64M";
            };
            turn = {
              host = "turn.example.org";
              realm = "turn.example.org";
              listeningIps = [ "192.0.2.7" ];
              externalIp = "192.0.2.7";
              relayIp = "192.0.2.7";
              settings.stale-nonce = 600;
            };
            element = {
              settingDefaults.UIFeature.feedback = false;
              settings.show_labs_settings = false;
              forceTurn = true;
              mapStyleUrl = "https://tiles.example.org/style.json";
              jitsiDomain = "meet.example.org";
              branding = {
                welcomeText = "Welcome";
                logoFile = "/etc/chat/logo.svg";
                footerLinks = [
                  {
                    text = "Rules";
                    url = "https://example.org/rules";
                  }
                ];
                helpUrl = "https://example.org/help";
                desktopDownloadUrl = "https://example.org/apps";
              };
            };
            proxy = {
              tls = "internal";
              bind = [ "192.0.2.7" ];
              serveBaseDomain = false;
            };
          };
        }
      ];
    in
    noErrors (checkSchema cfg.services.ospw-matrix.hostDescription);

  schema-checker-catches-mistakes =
    let
      desc = config.services.ospw-matrix.hostDescription;
    in
    expect [
      [
        "unknown field"
        (checkSchema (desc // { synapse = desc.synapse // { dataDir = "/x"; }; }))
        [ "..synapse.dataDir: unknown field (not in the schema)" ]
      ]
      [
        "bad enum"
        (builtins.length (checkSchema (desc // { proxy = desc.proxy // { tls = "self-signed"; }; })))
        1
      ]
    ];

  # Class 3 for systemd: paths that go into unit files, tmpfiles rules,
  # /etc/passwd and unit scripts are refused unless every reader takes them
  # literally; ExecStart= arguments are quoted as systemd reads them.
  unit-file-paths-are-plain =
    let
      refused =
        option: value:
        let
          failed = failedAssertions (configWith { services.ospw-matrix = lib.setAttrByPath (lib.splitString "." option) value; });
        in
        lib.any (m: lib.hasPrefix "services.ospw-matrix.${option} = " m && lib.hasInfix "not a plain absolute path" m) failed;
      bad = [
        [ "synapse.dataDir" "/var/lib/synapse\nExecStartPre=/bin/sh -c id" ]
        [ "synapse.dataDir" "/var/lib/ospw matrix" ]
        [ "synapse.dataDir" "/var/lib/%i" ]
        [ "synapse.mediaStorePath" "/srv/media$HOME" ]
        [ "synapse.listen.unixSocket" "/run/ospw-matrix-synapse/a;b.sock" ]
        [ "synapse.database.socketDir" "/run/postgresql$(id)" ]
        [ "secrets.signingKeyFile" "/run/secrets/key\nLoadCredential=x:/etc/shadow" ]
        [ "secrets.turnSharedSecretFile" "/run/secrets/%d" ]
        [ "secrets.formSecretFile" "/run/secrets/\"quoted\"" ]
        [ "turn.tls.certFile" "/var/lib/acme/turn/cert .pem" ]
        [ "turn.tls.keyFile" "/var/lib/acme/turn/key\\x20.pem" ]
      ];
      good = [
        [ "synapse.dataDir" "/var/lib/ospw-matrix/synapse" ]
        [ "synapse.mediaStorePath" "/srv/media_store-2.old+x=y,z:w@host" ]
        [ "secrets.signingKeyFile" "/run/secrets/ospw-matrix/signing_key" ]
        [ "synapse.dataDir" "/srv/chät" ]
      ];
    in
    expect (
      map (c: [
        "refused: ${lib.elemAt c 0} = ${builtins.toJSON (lib.elemAt c 1)}"
        (refused (lib.elemAt c 0) (lib.elemAt c 1))
        true
      ]) bad
      ++ map (c: [
        "accepted: ${lib.elemAt c 0} = ${builtins.toJSON (lib.elemAt c 1)}"
        (refused (lib.elemAt c 0) (lib.elemAt c 1))
        false
      ]) good
      ++ [
        [
          "ExecStart quotes and escapes the data directory"
          (lib.hasSuffix "--keys-directory \"/srv/chät\"" (synapse (configWith { services.ospw-matrix.synapse.dataDir = "/srv/chät"; })).serviceConfig.ExecStart)
          true
        ]
        [
          "escapeExecArg doubles % and $ and uses C escapes"
          ((import ../../modules/lib.nix { inherit lib; }).escapeExecArg "a b%c$d\"e\\f\ng")
          "\"a b%%c$$d\\\"e\\\\f\\ng\""
        ]
      ]
    );

  host-description-values = expect [
    [
      "names"
      {
        inherit (config.services.ospw-matrix.hostDescription)
          base_domain
          server_name
          matrix_host
          element_host
          ;
      }
      {
        base_domain = "example.org";
        server_name = "example.org";
        matrix_host = "matrix.example.org";
        element_host = "chat.example.org";
      }
    ]
    [
      "secrets: the credentials directory, no *_file"
      config.services.ospw-matrix.hostDescription.secrets
      { dir = "/run/credentials/ospw-matrix-synapse.service"; }
    ]
    [
      "database"
      config.services.ospw-matrix.hostDescription.synapse.database
      {
        name = "synapse";
        user = "synapse";
        socket_dir = "/run/postgresql";
        port = 5432;
      }
    ]
    [
      "relay ports"
      config.services.ospw-matrix.hostDescription.turn.relay_ports
      "49152-65535"
    ]
    [
      "no TURN TLS"
      (config.services.ospw-matrix.hostDescription.turn ? tls)
      false
    ]
    [
      "element webroot is the package"
      config.services.ospw-matrix.hostDescription.element.webroot
      "${pkgs.element-web}"
    ]
    [
      "the JSON file holds the description"
      (builtins.fromJSON config.services.ospw-matrix.hostDescriptionFile.text)
      config.services.ospw-matrix.hostDescription
    ]
  ];

  render-derivation =
    let
      r = config.services.ospw-matrix.renderedConfig;
    in
    expect [
      [
        "runs ospw-matrix render on the host description"
        (contains ''ospw-matrix render --config ${config.services.ospw-matrix.hostDescriptionFile} --out "$out"'' r.script)
        true
      ]
      [
        "the CLI is a build input"
        r.env.nativeBuildInputs
        [ pkgs.ospw-matrix ]
      ]
      [
        "errors are translated to option names"
        (contains "echo \"  matrix_host: services.ospw-matrix.matrixHost\"" r.script)
        true
      ]
    ];

  admin-cli-wrapper =
    let
      wrappers = lib.filter (p: p.name == "ospw-matrix") config.environment.systemPackages;
      text = (lib.head wrappers).text;
    in
    expect [
      [
        "one ospw-matrix on PATH"
        (builtins.length wrappers)
        1
      ]
      [
        "OSPW_MATRIX_CONFIG is the rendered host.json"
        (contains "${render config}/host.json" text && contains "export OSPW_MATRIX_CONFIG=" text)
        true
      ]
      [
        "registration secret from Synapse's credentials"
        (contains "OSPW_MATRIX_REGISTRATION_SECRET_FILE:-/run/credentials/ospw-matrix-synapse.service/registration_shared_secret" text)
        true
      ]
      [
        "execs the CLI"
        (contains ''exec ${pkgs.ospw-matrix}/bin/ospw-matrix "$@"'' text)
        true
      ]
    ];

  no-secret-paths-in-store =
    let
      cfg = leakConfig;
      # Everything below ends up in the store, except LoadCredential=,
      # whose whole point is naming the file systemd reads at start (the
      # unit file names the path; the value never leaves the file).
      servicesWithoutCredentials = lib.mapAttrs (
        _: s:
        s
        // {
          serviceConfig = removeAttrs s.serviceConfig [ "LoadCredential" ];
        }
      ) cfg.systemd.services;
      storeTexts = {
        "host description" = cfg.services.ospw-matrix.hostDescriptionFile.text;
        "render build" = cfg.services.ospw-matrix.renderedConfig.script;
        "systemd units" = builtins.toJSON servicesWithoutCredentials;
        "systemd timers" = builtins.toJSON cfg.systemd.timers;
        # The backup's host description: the rendered one (checked above)
        # with another secrets.dir, its path showing its text.
        "backup host description" =
          if contains "--config ${backupHostFile cfg} " (backup cfg).script then
            (pkgs.writeText "x" (
              builtins.toJSON (cfg.services.ospw-matrix.hostDescription // { secrets.dir = "/run/credentials/ospw-matrix-backup.service"; })
            )).text
          else
            "${marker}: the backup's --config is not the expected file";
        "caddy" = cfg.services.caddy.extraConfig + cfg.services.caddy.globalConfig;
        "packages" = lib.concatMapStrings (p: p.text or "") cfg.environment.systemPackages;
        "tmpfiles" = lib.concatStrings cfg.systemd.tmpfiles.rules;
      };
      leaks = lib.attrNames (lib.filterAttrs (_: text: contains marker text) storeTexts);
      credentials = lib.concatStrings (
        (synapse cfg).serviceConfig.LoadCredential ++ (coturn cfg).serviceConfig.LoadCredential
      );
      backupCredentials = lib.concatStrings (backup cfg).serviceConfig.LoadCredential;
    in
    expect [
      [
        "texts naming a secret file"
        leaks
        [ ]
      ]
      [
        "the credentials do name them (sanity check of the marker)"
        (lib.all (name: contains "${marker}-${name}" credentials) (
          secretFileOptions ++ [ "turn-key.pem" ]
        ))
        true
      ]
      [
        "the backup's credentials name the *File secrets too"
        (lib.all (name: contains "${marker}-${name}" backupCredentials) secretFileOptions)
        true
      ]
      [
        "assertions pass"
        (failedAssertions cfg)
        [ ]
      ]
    ];

  custom-data-dir =
    let
      cfg = configWith {
        services.ospw-matrix.synapse.dataDir = "/srv/synapse";
        services.ospw-matrix.synapse.mediaStorePath = "/srv/media";
      };
      sc = (synapse cfg).serviceConfig;
    in
    expect [
      [
        "no StateDirectory"
        (sc ? StateDirectory)
        false
      ]
      [
        "tmpfiles creates them"
        cfg.systemd.tmpfiles.rules
        [
          "d /srv/synapse 0700 synapse synapse - -"
          "d /srv/media 0700 synapse synapse - -"
        ]
      ]
      [
        "writable"
        sc.ReadWritePaths
        [
          "/srv/synapse"
          "/srv/media"
        ]
      ]
      [
        "media store in the host description"
        cfg.services.ospw-matrix.hostDescription.synapse.media_store_path
        "/srv/media"
      ]
    ];
  backup-off-by-default = expect [
    [
      "no backup unit"
      (config.systemd.services ? ospw-matrix-backup)
      false
    ]
    [
      "no timer"
      (lib.attrNames config.systemd.timers)
      [ ]
    ]
    [
      "no backup directory"
      (anyContains "/var/backup" config.systemd.tmpfiles.rules)
      false
    ]
  ];

  backup-units =
    let
      cfg = backupConfig;
      s = backup cfg;
      t = cfg.systemd.timers.ospw-matrix-backup;
    in
    expect [
      [
        "ospw-matrix units"
        (lib.filter (lib.hasPrefix "ospw-matrix-") (lib.attrNames cfg.systemd.services))
        [
          "ospw-matrix-backup"
          "ospw-matrix-coturn"
          "ospw-matrix-db-init"
          "ospw-matrix-secrets"
          "ospw-matrix-synapse"
        ]
      ]
      [
        "timers"
        (lib.attrNames cfg.systemd.timers)
        [ "ospw-matrix-backup" ]
      ]
      [
        "timer enabled with timers.target"
        t.wantedBy
        [ "timers.target" ]
      ]
      [
        "timer defaults"
        t.timerConfig
        {
          OnCalendar = "daily";
          Persistent = true;
          RandomizedDelaySec = "0";
        }
      ]
      [
        "the service is started by the timer only"
        s.wantedBy
        [ ]
      ]
      [
        "oneshot"
        s.serviceConfig.Type
        "oneshot"
      ]
      [
        "after synapse, postgresql, db-init and secrets"
        (lib.sort lib.lessThan s.after)
        [
          "ospw-matrix-db-init.service"
          "ospw-matrix-secrets.service"
          "ospw-matrix-synapse.service"
          "postgresql.target"
        ]
      ]
      [
        "requires postgresql and the secrets, not synapse (a stopped server is backed up without being started)"
        (lib.sort lib.lessThan s.requires)
        [
          "ospw-matrix-secrets.service"
          "postgresql.target"
        ]
      ]
      [
        "backup directory created 0700 root"
        cfg.systemd.tmpfiles.rules
        [ "d /var/backup/ospw-matrix 0700 root root - -" ]
      ]
      [
        "assertions"
        (failedAssertions cfg)
        [ ]
      ]
    ];

  backup-timer-options =
    let
      cfg = configWith [
        withBackup
        {
          services.ospw-matrix.backup = {
            schedule = "*-*-* 03:15:00";
            persistent = false;
            randomizedDelaySec = "30min";
          };
        }
      ];
    in
    expect [
      [
        "timerConfig"
        cfg.systemd.timers.ospw-matrix-backup.timerConfig
        {
          OnCalendar = "*-*-* 03:15:00";
          Persistent = false;
          RandomizedDelaySec = "30min";
        }
      ]
    ];

  backup-remote-database =
    let
      s = backup (configWith [
        withBackup
        { services.ospw-matrix.synapse.database.createLocally = false; }
      ]);
    in
    expect [
      [
        "no postgresql.target or db-init without a local database"
        (lib.filter (u: lib.elem u [
          "postgresql.target"
          "ospw-matrix-db-init.service"
        ]) (s.after ++ s.requires))
        [ ]
      ]
    ];

  backup-command =
    let
      cfg = backupConfig;
      script = (backup cfg).script;
      lines = map lib.trim (lib.splitString "\n" script);
      date = "${pkgs.coreutils}/bin/date";
    in
    expect [
      [
        "the archive: the directory, a UTC timestamp"
        (lib.elem "archive=/var/backup/ospw-matrix/ospw-matrix-$(${date} -u +%Y%m%dT%H%M%SZ).tar" lines)
        true
      ]
      [
        "runs the CLI's backup with these arguments, in this order"
        (lib.elem ''${pkgs.ospw-matrix}/bin/ospw-matrix backup \'' lines)
        true
      ]
      [
        "arguments"
        (lib.filter (lib.hasPrefix "--") lines)
        [
          "--config ${backupHostFile cfg} \\"
          ''--out "$archive" \''
          "--db-os-user synapse \\"
          "--pg-bin-dir ${pkgs.postgresql}/bin \\"
          "--state-dir /var/lib/ospw-matrix/secrets"
        ]
      ]
      [
        "strict shell"
        (lib.head lines)
        "set -euo pipefail"
      ]
      [
        "getent on PATH (--db-os-user looks the user up)"
        (backup cfg).path
        [ pkgs.getent ]
      ]
    ];

  backup-command-custom =
    let
      cfg = configWith [
        withBackup
        {
          services.ospw-matrix.backup.directory = "/srv/backups/matrix";
          services.ospw-matrix.synapse.database.user = "matrix";
          services.postgresql.package = pkgs.postgresql // {
            outPath = "${builtins.storeDir}/00000000000000000000000000000000-postgresql-17";
          };
        }
      ];
      s = backup cfg;
    in
    expect [
      [
        "archive in the directory"
        (contains "archive=/srv/backups/matrix/ospw-matrix-$(" s.script)
        true
      ]
      [
        "database user"
        (contains "--db-os-user matrix \\" s.script)
        true
      ]
      [
        "the server's PostgreSQL programs"
        (contains "--pg-bin-dir ${builtins.storeDir}/00000000000000000000000000000000-postgresql-17/bin \\" s.script)
        true
      ]
      [
        "pruning looks in the directory"
        (contains "for file in /srv/backups/matrix/ospw-matrix-[0-9]" s.script)
        true
      ]
      [
        "writable"
        s.serviceConfig.ReadWritePaths
        [ "/srv/backups/matrix" ]
      ]
      [
        "created"
        cfg.systemd.tmpfiles.rules
        [ "d /srv/backups/matrix 0700 root root - -" ]
      ]
    ];

  # The pruning's behaviour is checked by run.sh (it runs the script); here
  # its place: after the backup and the check that the archive exists.
  backup-prunes-after-the-backup =
    let
      script = (backup (configWith [
        withBackup
        { services.ospw-matrix.backup.keep = 3; }
      ])).script;
      at = needle: indexOf needle script;
      backupAt = at "/bin/ospw-matrix backup";
      checkAt = at ''if [ ! -s "$archive" ]; then'';
      rmAt = at "/bin/rm -f -- ";
    in
    expect [
      [
        "backup, then the check that the archive exists, then rm"
        (
          backupAt >= 0 && checkAt > backupAt && rmAt > checkAt
        )
        true
      ]
      [
        "one rm"
        (builtins.length (lib.splitString "/bin/rm " script))
        2
      ]
      [
        "keeps the new archive and keep - 1 others"
        (contains "excess=$(( \${#others[@]} - 2 ))" script)
        true
      ]
      [
        "only the archives' names"
        (contains "/var/backup/ospw-matrix/ospw-matrix-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z.tar; do" script)
        true
      ]
      [
        "the new archive is never a candidate"
        (contains ''if [ "$file" != "$archive" ] && [ -f "$file" ]; then'' script)
        true
      ]
    ];

  backup-credentials =
    let
      cfg = configWith [
        withBackup
        {
          services.ospw-matrix.secrets.signingKeyFile = "/run/secrets/matrix/signing.key";
        }
      ];
    in
    expect [
      [
        "the same credentials as Synapse, *File options included"
        (backup cfg).serviceConfig.LoadCredential
        (synapse cfg).serviceConfig.LoadCredential
      ]
      [
        "signing key from the file"
        (lib.elem "signing_key:/run/secrets/matrix/signing.key" (backup cfg).serviceConfig.LoadCredential)
        true
      ]
      [
        "its host description is the rendered one with secrets.dir = its credentials directory"
        (contains "--config ${backupHostFile cfg} " (backup cfg).script)
        true
      ]
    ];

  backup-hardening =
    let
      sc = (backup backupConfig).serviceConfig;
    in
    expect [
      [
        "root (media store, uid switch for pg_dump)"
        [
          sc.User
          sc.Group
        ]
        [
          "root"
          "root"
        ]
      ]
      [
        "capabilities: read any file, switch user"
        (lib.sort lib.lessThan sc.CapabilityBoundingSet)
        [
          "CAP_DAC_READ_SEARCH"
          "CAP_SETGID"
          "CAP_SETUID"
        ]
      ]
      [
        "system calls: @setuid allowed again after ~@privileged"
        sc.SystemCallFilter
        [
          "@system-service"
          "~@privileged"
          "~@resources"
          "@setuid"
        ]
      ]
      [
        "no private user namespace (it would break the uid switch)"
        (sc.PrivateUsers or false)
        false
      ]
      [
        "writes only the backup directory"
        [
          sc.ProtectSystem
          sc.ReadWritePaths
        ]
        [
          "strict"
          [ "/var/backup/ospw-matrix" ]
        ]
      ]
      (
        let
          on = [
            "NoNewPrivileges"
            "PrivateTmp"
            "PrivateDevices"
            "ProtectHome"
            "ProtectKernelTunables"
            "RestrictNamespaces"
          ];
        in
        [
          "the shared sandboxing"
          (lib.genAttrs (on ++ [ "UMask" ]) (name: sc.${name}))
          (lib.genAttrs on (_: true) // { UMask = "0077"; })
        ]
      )
      [
        "loopback only"
        [
          sc.IPAddressDeny
          sc.IPAddressAllow
        ]
        [
          "any"
          "localhost"
        ]
      ]
    ];

  assertion-backup-keep = expect [
    [
      "keep = 0"
      (failedAssertions (configWith [
        withBackup
        { services.ospw-matrix.backup.keep = 0; }
      ]))
      [
        "services.ospw-matrix.backup.keep = 0: it must be at least 1 (the number of newest archives kept; 7 keeps a week of daily backups)."
      ]
    ]
    [
      "keep = -2"
      (anyContains "backup.keep = -2: it must be at least 1" (failedAssertions (configWith [
        withBackup
        { services.ospw-matrix.backup.keep = -2; }
      ])))
      true
    ]
    [
      "keep = 1 is fine"
      (failedAssertions (configWith [
        withBackup
        { services.ospw-matrix.backup.keep = 1; }
      ]))
      [ ]
    ]
  ];

  assertion-backup-directory =
    let
      failedWith = dir: failedAssertions (configWith [
        withBackup
        { services.ospw-matrix.backup.directory = dir; }
      ]);
      fires = dir: anyContains "services.ospw-matrix.backup.directory = \"${dir}\" must be an absolute path" (failedWith dir);
    in
    expect [
      [
        "relative"
        (fires "backups")
        true
      ]
      [
        "in the store"
        (fires "${builtins.storeDir}/backups")
        true
      ]
      [
        "white space"
        (fires "/var/my backups")
        true
      ]
      [
        "/"
        (fires "/")
        true
      ]
      [
        "an absolute path is fine"
        (failedWith "/mnt/backup/matrix")
        [ ]
      ]
    ];

  assertion-backup-without-server =
    let
      cfg = (eval [ withBackup ]).config;
    in
    expect [
      [
        "failed assertions"
        (failedAssertions cfg)
        [
          "services.ospw-matrix.backup.enable is set but services.ospw-matrix.enable is not: backups need the server; enable it or remove services.ospw-matrix.backup.enable."
        ]
      ]
      [
        "no units"
        [
          (lib.attrNames cfg.systemd.services)
          (lib.attrNames cfg.systemd.timers)
        ]
        [
          [ ]
          [ ]
        ]
      ]
    ];

  admin-cli-backup-and-restore =
    let
      text = (lib.head (lib.filter (p: p.name == "ospw-matrix") config.environment.systemPackages)).text;
      restoreHost = hostFileWith config "ospw-matrix-restore-host.json" secretsDir;
    in
    expect [
      [
        "restore writes the secrets where Synapse's credentials come from"
        (contains ''OSPW_MATRIX_CONFIG="''${OSPW_MATRIX_CONFIG:-${restoreHost}}"'' text)
        true
      ]
      [
        "the admin account's state in the generated-secrets directory"
        (contains ''OSPW_MATRIX_STATE_DIR="''${OSPW_MATRIX_STATE_DIR:-${secretsDir}}"'' text)
        true
      ]
      [
        "pg programs as the database user"
        (
          contains ''OSPW_MATRIX_DB_OS_USER="''${OSPW_MATRIX_DB_OS_USER:-synapse}"'' text
          && contains ''OSPW_MATRIX_PG_BIN_DIR="''${OSPW_MATRIX_PG_BIN_DIR:-${pkgs.postgresql}/bin}"'' text
        )
        true
      ]
    ];

  # ---------------------------------------------------------------- workers

  workers-off-by-default = expect [
    [
      "no Redis server"
      (config.services.redis.servers ? ospw-matrix)
      false
    ]
    [
      "no target"
      (config.systemd.targets ? ospw-matrix-synapse)
      false
    ]
    [
      "no worker unit"
      (lib.filter (lib.hasPrefix "ospw-matrix-synapse-worker-") (lib.attrNames config.systemd.services))
      [ ]
    ]
    [
      "no workers in the host description"
      (config.services.ospw-matrix.hostDescription.synapse ? workers)
      false
    ]
    [
      "no replication secret loaded"
      (lib.any (contains "worker_replication_secret") (synapse config).serviceConfig.LoadCredential)
      false
    ]
  ];

  workers-sync-client-units = expect (
    let
      c = configWith workersSyncClient;
      names = [
        "sync1"
        "client1"
      ];
      workerUnits = map (n: "ospw-matrix-synapse-worker-${n}") names;
    in
    [
      [
        "units"
        c.services.ospw-matrix.synapse.workers.units
        (map (u: "${u}.service") workerUnits)
      ]
      [
        "the target wants Synapse and every worker"
        c.systemd.targets.ospw-matrix-synapse.wants
        ([ "ospw-matrix-synapse.service" ] ++ map (u: "${u}.service") workerUnits)
      ]
      [
        "the target is wanted at boot"
        c.systemd.targets.ospw-matrix-synapse.wantedBy
        [ "multi-user.target" ]
      ]
      [
        "the main unit is part of the target, after and requiring Redis"
        (
          let
            m = synapse c;
          in
          [
            m.partOf
            (lib.elem "redis-ospw-matrix.service" m.after)
            (lib.elem "redis-ospw-matrix.service" m.requires)
          ]
        )
        [
          [ "ospw-matrix-synapse.target" ]
          true
          true
        ]
      ]
    ]
    ++ map (u: [
      "${u}: ordered after, requiring, and part of the main unit and the target"
      (
        let
          w = unit c u;
        in
        {
          inherit (w) after requires partOf wantedBy;
        }
      )
      {
        after = [
          "ospw-matrix-synapse.service"
          "redis-ospw-matrix.service"
        ];
        requires = [
          "ospw-matrix-synapse.service"
          "redis-ospw-matrix.service"
        ];
        partOf = [
          "ospw-matrix-synapse.target"
          "ospw-matrix-synapse.service"
        ];
        wantedBy = [ "ospw-matrix-synapse.target" ];
      }
    ]) workerUnits
    ++ map (n: [
      "worker ${n} runs synapse_worker with the shared and its own configuration"
      (unit c "ospw-matrix-synapse-worker-${n}").serviceConfig.ExecStart
      "${withExtras [ "redis" ]}/bin/synapse_worker --config-path ${render c}/synapse/homeserver.yaml --config-path ${render c}/synapse/workers/${n}.yaml"
    ]) names
  );

  # The Synapse every unit runs has the Python packages of what is turned
  # on: nixpkgs' wrapper has only postgres, url-preview and systemd by
  # default, and without txredisapi no process starts with `redis.enabled`
  # (nor single sign-on without authlib).
  synapse-extras =
    let
      mainOf = c: (synapse c).serviceConfig.ExecStart;
      workerOf = c: (unit c "ospw-matrix-synapse-worker-sync1").serviceConfig.ExecStart;
      own = pkgs.matrix-synapse.override {
        extras = [
          "postgres"
          "systemd"
        ];
      };
      ownWorkers = configWith [
        workersSyncClient
        withSsoEmail
        { services.ospw-matrix.synapse.package = own; }
      ];
      # A package that cannot be overridden is used as given.
      plain = removeAttrs pkgs.matrix-synapse [ "override" ];
    in
    expect [
      [
        "without workers or single sign-on: the package as given"
        (lib.hasPrefix "${pkgs.matrix-synapse}/bin/" (mainOf config))
        true
      ]
      [
        "with workers: the main process has the redis extra"
        (lib.hasPrefix "${withExtras [ "redis" ]}/bin/" (mainOf (configWith workersSyncClient)))
        true
      ]
      [
        "with workers: so has every worker"
        (lib.hasPrefix "${withExtras [ "redis" ]}/bin/" (workerOf (configWith workersSyncClient)))
        true
      ]
      [
        "a package without override: as given"
        (lib.hasPrefix "${plain}/bin/" (
          mainOf (configWith [
            workersSyncClient
            { services.ospw-matrix.synapse.package = plain; }
          ])
        ))
        true
      ]
      [
        "an override of the wrapper keeps its extras; redis and oidc are added"
        [
          (mainOf ownWorkers)
          (workerOf ownWorkers)
        ]
        (
          let
            p = own.override {
              extras = [
                "postgres"
                "systemd"
                "redis"
                "oidc"
              ];
            };
          in
          [
            "${p}/bin/synapse_homeserver --config-path ${render ownWorkers}/synapse/homeserver.yaml --config-path /run/ospw-matrix-synapse/secrets.yaml --keys-directory \"/var/lib/ospw-matrix/synapse\""
            "${p}/bin/synapse_worker --config-path ${render ownWorkers}/synapse/homeserver.yaml --config-path ${render ownWorkers}/synapse/workers/sync1.yaml"
          ]
        )
      ]
    ];

  workers-same-hardening-and-credentials = noErrors (
    let
      c = configWith workersSyncClient;
      main = removeAttrs (synapse c).serviceConfig [
        "ExecStart"
        "ExecReload"
        "RuntimeDirectory"
        "RuntimeDirectoryMode"
      ];
    in
    lib.concatMap (
      n:
      let
        w = removeAttrs (unit c "ospw-matrix-synapse-worker-${n}").serviceConfig [ "ExecStart" ];
      in
      lib.optional (w != main) "worker ${n}: ${builtins.toJSON w} differs from the main unit's ${builtins.toJSON main}"
    ) [
      "sync1"
      "client1"
    ]
    ++ lib.optional (!(lib.elem "worker_replication_secret:${secretsDir}/worker_replication_secret" (synapse c).serviceConfig.LoadCredential)) "the replication secret is not a credential"
    ++ lib.optional (!(lib.elem "/run/ospw-matrix-workers" (synapse c).serviceConfig.ReadWritePaths)) "the socket directory is not writable"
    # The sandboxing of lib.nix, unrelaxed but for what the main unit relaxes.
    ++ lib.concatLists (
      lib.mapAttrsToList (
        k: v:
        lib.optional (
          !(lib.elem k [ "MemoryDenyWriteExecute" ]) && (unit c "ospw-matrix-synapse-worker-sync1").serviceConfig.${k} or null != v
        ) "worker sync1: ${k} is not the shared hardening's"
      ) (import ../../modules/lib.nix { inherit lib; }).hardening
    )
  );

  workers-redis-groups-sockets-and-host-description = expect (
    let
      c = configWith workersSyncClient;
      hd = c.services.ospw-matrix.hostDescription.synapse.workers;
    in
    [
      [
        "Redis: enabled, no TCP port, nothing saved, socket 0660"
        {
          inherit (c.services.redis.servers.ospw-matrix)
            enable
            port
            save
            appendOnly
            unixSocketPerm
            ;
        }
        {
          enable = true;
          port = 0;
          save = [ ];
          appendOnly = false;
          unixSocketPerm = 660;
        }
      ]
      [
        "Synapse's user is in Redis's group"
        (lib.elem "redis-ospw-matrix" c.users.users.synapse.extraGroups)
        true
      ]
      [
        "Caddy is in Synapse's group (the workers' sockets)"
        (lib.elem "synapse" c.users.users.caddy.extraGroups)
        true
      ]
      [
        "the socket directory"
        (lib.elem "d /run/ospw-matrix-workers 0750 synapse synapse - -" c.systemd.tmpfiles.rules)
        true
      ]
      [
        "the host description's workers"
        hd
        {
          preset = "small";
          sync = 1;
          client = 1;
          socket_dir = "/run/ospw-matrix-workers";
          redis.unix.path = "/run/redis-ospw-matrix/redis.sock";
          credentials_dir = "/run/credentials/ospw-matrix-synapse-worker-{name}.service";
        }
      ]
      [
        "each worker's credentials directory is its unit's"
        (map (n: builtins.replaceStrings [ "{name}" ] [ n ] hd.credentials_dir) [
          "sync1"
          "client1"
        ])
        (map (u: "/run/credentials/${u}") c.services.ospw-matrix.synapse.workers.units)
      ]
      [
        "Caddy starts after the workers"
        (lib.all (u: lib.elem u c.systemd.services.caddy.after) c.services.ospw-matrix.synapse.workers.units)
        true
      ]
    ]
  );

  workers-presets-and-counts = expect [
    [
      "small (the default): the crate's preset, one sync worker"
      (configWith (workersWith { })).services.ospw-matrix.synapse.workers.units
      [ "ospw-matrix-synapse-worker-sync1.service" ]
    ]
    [
      "medium: the crate's presets, in the crate's order"
      (configWith (workersWith { preset = "medium"; })).services.ospw-matrix.synapse.workers.units
      (map (n: "ospw-matrix-synapse-worker-${n}.service") [
        "sync1"
        "sync2"
        "client1"
        "client2"
        "event_persister1"
        "stream_writer1"
        "media1"
        "background1"
      ])
    ]
    [
      "explicit counts replace the preset's"
      (configWith (workersWith {
        sync = 2;
        client = 0;
        eventPersister = 1;
      })).services.ospw-matrix.synapse.workers.units
      (map (n: "ospw-matrix-synapse-worker-${n}.service") [
        "sync1"
        "sync2"
        "event_persister1"
      ])
    ]
    [
      "explicit counts are in the host description"
      (configWith (workersWith {
        sync = 2;
        streamWriter = 1;
      })).services.ospw-matrix.hostDescription.synapse.workers.stream_writer
      1
    ]
  ];

  # ------------------------------------------------------------ doctor
  doctor-off-by-default = expect [
    [
      "no doctor unit or timer"
      (
        config.systemd.services ? ospw-matrix-doctor || config.systemd.timers ? ospw-matrix-doctor
      )
      false
    ]
    [
      "sudo ospw-matrix doctor is preconfigured all the same"
      (
        let
          text = (lib.head (lib.filter (p: p.name == "ospw-matrix") config.environment.systemPackages)).text;
        in
        map (v: contains v text) [
          ''if [ "''${1:-}" = doctor ]; then''
          ''OSPW_MATRIX_DOCTOR_UNITS="''${OSPW_MATRIX_DOCTOR_UNITS:-ospw-matrix-synapse.service,ospw-matrix-coturn.service,caddy.service,postgresql.service}"''
          ''OSPW_MATRIX_DOCTOR_SECRETS_DIR="''${OSPW_MATRIX_DOCTOR_SECRETS_DIR:-${secretsDir}}"''
          ''OSPW_MATRIX_DB_DATA_DIR="''${OSPW_MATRIX_DB_DATA_DIR:-/var/lib/postgresql/15}"''
        ]
      )
      [
        true
        true
        true
        true
      ]
    ]
  ];

  doctor-units =
    let
      cfg = configWith { services.ospw-matrix.doctor.enable = true; };
      s = cfg.systemd.services.ospw-matrix-doctor;
      t = cfg.systemd.timers.ospw-matrix-doctor;
    in
    expect [
      [
        "timer: weekly, made up after downtime"
        t.timerConfig
        {
          OnCalendar = "weekly";
          Persistent = true;
          RandomizedDelaySec = "1h";
        }
      ]
      [
        "timer enabled with timers.target"
        t.wantedBy
        [ "timers.target" ]
      ]
      [
        "the service is started by the timer (or by hand) only"
        s.wantedBy
        [ ]
      ]
      [
        "a oneshot whose failure fails the unit (shown by systemctl --failed)"
        {
          inherit (s.serviceConfig) Type ExecStart;
          ignoresFailure = s.serviceConfig ? SuccessExitStatus || lib.hasPrefix "-" s.serviceConfig.ExecStart;
          restarts = s.serviceConfig ? Restart;
        }
        {
          Type = "oneshot";
          ExecStart = "${pkgs.ospw-matrix}/bin/ospw-matrix doctor";
          ignoresFailure = false;
          restarts = false;
        }
      ]
      [
        "runs as root, writes only the admin account's state"
        {
          inherit (s.serviceConfig) User ReadWritePaths ProtectSystem;
        }
        {
          User = "root";
          ReadWritePaths = [ secretsDir ];
          ProtectSystem = "strict";
        }
      ]
      [
        "environment"
        s.environment
        {
          OSPW_MATRIX_CONFIG = "${render cfg}/host.json";
          OSPW_MATRIX_REGISTRATION_SECRET_FILE = "/run/credentials/ospw-matrix-synapse.service/registration_shared_secret";
          OSPW_MATRIX_STATE_DIR = secretsDir;
          OSPW_MATRIX_DB_OS_USER = "synapse";
          OSPW_MATRIX_PG_BIN_DIR = "${pkgs.postgresql}/bin";
          OSPW_MATRIX_DOCTOR_SECRETS_DIR = secretsDir;
          OSPW_MATRIX_DOCTOR_UNITS = "ospw-matrix-synapse.service,ospw-matrix-coturn.service,caddy.service,postgresql.service";
          OSPW_MATRIX_DB_DATA_DIR = "/var/lib/postgresql/15";
        }
      ]
      [
        "df, getent and systemctl on its PATH"
        s.path
        [
          pkgs.coreutils
          pkgs.getent
          pkgs.systemd
        ]
      ]
      [
        "after the services it checks"
        (hasAll [
          "ospw-matrix-synapse.service"
          "ospw-matrix-coturn.service"
          "caddy.service"
          "postgresql.service"
        ] s.after)
        true
      ]
      [
        "assertions"
        (failedAssertions cfg)
        [ ]
      ]
    ];

  doctor-with-backups-and-a-remote-database =
    let
      cfg = configWith [
        withBackup
        {
          services.ospw-matrix.doctor = {
            enable = true;
            schedule = "daily";
            backupMaxAge = "8d";
          };
          services.ospw-matrix.synapse.database.createLocally = false;
        }
      ];
      s = cfg.systemd.services.ospw-matrix-doctor;
    in
    expect [
      [
        "the schedule"
        cfg.systemd.timers.ospw-matrix-doctor.timerConfig.OnCalendar
        "daily"
      ]
      [
        "the backups checked, with their maximum age"
        {
          inherit (s.environment) OSPW_MATRIX_BACKUP_DIR OSPW_MATRIX_BACKUP_MAX_AGE;
        }
        {
          OSPW_MATRIX_BACKUP_DIR = "/var/backup/ospw-matrix";
          OSPW_MATRIX_BACKUP_MAX_AGE = "8d";
        }
      ]
      [
        "no local PostgreSQL unit or data directory"
        {
          units = s.environment.OSPW_MATRIX_DOCTOR_UNITS;
          dataDir = s.environment ? OSPW_MATRIX_DB_DATA_DIR;
        }
        {
          units = "ospw-matrix-synapse.service,ospw-matrix-coturn.service,caddy.service";
          dataDir = false;
        }
      ]
    ];

  assertion-doctor = expect [
    [
      "backupMaxAge must be a duration"
      (failedAssertions (configWith {
        services.ospw-matrix.doctor = {
          enable = true;
          backupMaxAge = "two days";
        };
      }))
      [
        "services.ospw-matrix.doctor.backupMaxAge = \"two days\" is not a duration: expected a number with a unit, such as 2d or 36h."
      ]
    ]
    [
      "the doctor needs the server"
      (failedAssertions (
        eval {
          services.ospw-matrix.doctor.enable = true;
        }
      ).config)
      [
        "services.ospw-matrix.doctor.enable is set but services.ospw-matrix.enable is not: the doctor checks that server; enable it or remove services.ospw-matrix.doctor.enable."
      ]
    ]
  ];

  # ------------------------------------------------------------ metrics
  metrics-off-by-default = expect [
    [
      "the host description says off"
      config.services.ospw-matrix.hostDescription.metrics
      {
        enable = false;
        synapse_port = 9000;
        coturn_port = 9641;
        caddy_port = 9180;
      }
    ]
    [
      "no scrape configs"
      config.services.prometheus.scrapeConfigs
      [ ]
    ]
  ];

  metrics-enabled =
    let
      cfg = configWith {
        services.ospw-matrix.metrics = {
          enable = true;
          synapsePort = 9100;
          coturnPort = 9101;
          caddyPort = 9102;
        };
      };
      desc = cfg.services.ospw-matrix.hostDescription;
    in
    expect [
      [
        "the host description turns them on, with the ports"
        desc.metrics
        {
          enable = true;
          synapse_port = 9100;
          coturn_port = 9101;
          caddy_port = 9102;
        }
      ]
      [
        "it matches the schema"
        (checkSchema desc)
        [ ]
      ]
      [
        "the firewall opens no metrics port"
        (lib.filter (p: lib.elem p [
          9100
          9101
          9102
        ]) ((ports cfg).tcp ++ (ports cfg).udp))
        [ ]
      ]
      [
        "no scrape configs unless asked"
        cfg.services.prometheus.scrapeConfigs
        [ ]
      ]
      [
        "assertions"
        (failedAssertions cfg)
        [ ]
      ]
    ];

  metrics-scrape-configs =
    let
      cfg = configWith {
        services.ospw-matrix.metrics = {
          enable = true;
          caddyPort = 9102;
          addScrapeConfigs = true;
        };
        services.prometheus.enable = true;
      };
    in
    expect [
      [
        "three loopback jobs"
        cfg.services.prometheus.scrapeConfigs
        [
          {
            job_name = "ospw-matrix-synapse";
            metrics_path = "/_synapse/metrics";
            static_configs = [ { targets = [ "127.0.0.1:9000" ]; } ];
          }
          {
            job_name = "ospw-matrix-coturn";
            metrics_path = "/metrics";
            static_configs = [ { targets = [ "127.0.0.1:9641" ]; } ];
          }
          {
            job_name = "ospw-matrix-caddy";
            metrics_path = "/metrics";
            static_configs = [ { targets = [ "127.0.0.1:9102" ]; } ];
          }
        ]
      ]
      [
        "assertions"
        (failedAssertions cfg)
        [ ]
      ]
    ];

  # With workers, each worker's metrics listener follows the main
  # process's port (the crate's render/workers.rs, metrics_port).
  metrics-scrape-configs-workers =
    let
      cfg = configWith [
        workersSyncClient
        {
          services.ospw-matrix.metrics = {
            enable = true;
            synapsePort = 9100;
            addScrapeConfigs = true;
          };
          services.prometheus.enable = true;
        }
      ];
    in
    expect [
      [
        "one Synapse target per process"
        (lib.head cfg.services.prometheus.scrapeConfigs).static_configs
        [
          {
            targets = [
              "127.0.0.1:9100"
              "127.0.0.1:9101"
              "127.0.0.1:9102"
            ];
          }
        ]
      ]
    ];

  assertion-metrics-scrape = expect [
    [
      "scrape configs need the metrics and a Prometheus on this host"
      (failedAssertions (configWith {
        services.ospw-matrix.metrics.addScrapeConfigs = true;
      }))
      [
        "services.ospw-matrix.metrics.addScrapeConfigs is set but services.ospw-matrix.metrics.enable is not: there is nothing to scrape; enable the metrics or remove addScrapeConfigs."
        "services.ospw-matrix.metrics.addScrapeConfigs adds scrape targets for a Prometheus on this host, but services.prometheus.enable is not set: enable it, or scrape 127.0.0.1 through your own tooling and remove addScrapeConfigs."
      ]
    ]
  ];

  # Single sign-on and mail: the user's secret files become credentials of
  # Synapse's unit and never reach the host description; the SMTP password
  # is materialized before Synapse starts and read as a second config file.
  sso-email-credentials =
    let
      cfg = configWith withSsoEmail;
      s = synapse cfg;
      hd = cfg.services.ospw-matrix.hostDescription;
      credentialsDir = "/run/credentials/ospw-matrix-synapse.service";
    in
    expect [
      [
        "the client secret and SMTP password are credentials"
        (hasAll [
          "sso_client_secret_authentik:/run/secrets/${marker}-oidc"
          "smtp_password:/run/secrets/${marker}-smtp"
        ] s.serviceConfig.LoadCredential)
        true
      ]
      [
        "the generated secrets still are"
        (hasAll (map (n: "${n}:${secretsDir}/${n}") credentialNames) s.serviceConfig.LoadCredential)
        true
      ]
      [
        "materialize synapse-secrets runs before Synapse, as Synapse's user"
        s.serviceConfig.ExecStartPre
        [
          "${pkgs.ospw-matrix}/bin/ospw-matrix materialize synapse-secrets --config ${render cfg}/host.json --out /run/ospw-matrix-synapse/secrets.yaml"
        ]
      ]
      [
        "Synapse reads the runtime secrets after homeserver.yaml"
        s.serviceConfig.ExecStart
        "${withExtras [ "oidc" ]}/bin/synapse_homeserver --config-path ${render cfg}/synapse/homeserver.yaml --config-path /run/ospw-matrix-synapse/secrets.yaml --keys-directory \"/var/lib/ospw-matrix/synapse\""
      ]
      [
        "runtime directory"
        [
          s.serviceConfig.RuntimeDirectory
          s.serviceConfig.RuntimeDirectoryMode
        ]
        [
          "ospw-matrix-synapse"
          "0750"
        ]
      ]
      [
        "the host description names the credentials"
        [
          (lib.head hd.sso.providers).client_secret_file
          hd.email.password_file
        ]
        [
          "${credentialsDir}/sso_client_secret_authentik"
          "${credentialsDir}/smtp_password"
        ]
      ]
      [
        "no path of the user's secret files in the host description"
        (contains marker (builtins.toJSON hd))
        false
      ]
      [
        "claims, requirements and mail settings carried"
        [
          (lib.head hd.sso.providers).user_mapping.email
          (lib.head hd.sso.providers).require
          hd.email.tls
          hd.email.notifications
        ]
        [
          "{{ user.email }}"
          [
            {
              attribute = "groups";
              value = "chat-users";
              one_of = [ ];
            }
          ]
          "starttls"
          true
        ]
      ]
      [
        "assertions"
        (failedAssertions cfg)
        [ ]
      ]
    ];

  sso-email-off-by-default =
    let
      s = synapse config;
      hd = config.services.ospw-matrix.hostDescription;
    in
    expect [
      [
        "no materialize step"
        (s.serviceConfig ? ExecStartPre)
        false
      ]
      [
        "no runtime directory without a socket"
        (s.serviceConfig ? RuntimeDirectory)
        false
      ]
      [
        "no mail, passwords on, no provider"
        [
          (hd ? email)
          hd.sso
        ]
        [
          false
          {
            password_login = true;
            providers = [ ];
          }
        ]
      ]
    ];

  host-description-sso-email-matches-schema = noErrors (
    checkSchema (configWith withSsoEmail).services.ospw-matrix.hostDescription
  );

  assertion-sso-email =
    let
      failedWith = extra: failedAssertions (configWith extra);
      provider = extra: {
        services.ospw-matrix.sso.providers = [
          (
            {
              id = "corp";
              name = "Corp";
              issuer = "https://auth.example.org/";
              clientId = "matrix";
            }
            // extra
          )
        ];
      };
    in
    expect [
      [
        "a provider without a secret file"
        (failedWith (provider { }))
        [
          "services.ospw-matrix.sso.providers: provider corp has no clientSecretFile: set it to the file holding the client secret the provider issued (sops-nix, agenix); it is never written into the configuration."
        ]
      ]
      [
        "a client secret in the store"
        (failedWith (provider {
          # builtins.storeDir, not /nix/store: the flake's module-eval check
          # evaluates with a store of its own.
          clientSecretFile = "${builtins.storeDir}/abc-secret";
        }))
        [
          "services.ospw-matrix.sso.providers: provider corp's clientSecretFile \"${builtins.storeDir}/abc-secret\" must be an absolute path outside the Nix store (the store is world-readable)."
        ]
      ]
      [
        "mail without a host"
        (failedWith {
          services.ospw-matrix.email = {
            enable = true;
            notifications = true;
          };
        })
        [
          "services.ospw-matrix.email.enable is set, so services.ospw-matrix.email.smtpHost and services.ospw-matrix.email.from must be set too."
        ]
      ]
      [
        "an SMTP password in the store"
        (builtins.length (failedWith {
          services.ospw-matrix.email = {
            enable = true;
            smtpHost = "mail.example.org";
            from = "noreply@example.org";
            user = "matrix";
            passwordFile = "${builtins.storeDir}/abc-smtp";
            notifications = true;
          };
        }))
        1
      ]
    ];
}
