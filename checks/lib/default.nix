# Shared pieces of the VM tests (checks/*.nix): the test domain, a test CA
# generated at build time, the server and client node modules, and a small
# Matrix client.
{ pkgs }:

let
  inherit (pkgs) lib;

  domain = "example.test";
in
rec {
  names = {
    base = domain;
    matrix = "matrix.${domain}";
    element = "chat.${domain}";
    turn = "turn.${domain}";
  };

  # A throw-away CA for the test network. Caddy issues its `tls internal`
  # certificates from it (the `pki` global option below) instead of from a
  # root it would generate at run time, so the client can trust it from the
  # start. Its key is in the store: fine for a test, never for a server.
  testCA =
    pkgs.runCommand "ospw-matrix-test-ca"
      {
        nativeBuildInputs = [ pkgs.openssl ];
      }
      ''
        mkdir -p $out
        cat > ca.cnf <<'EOF'
        [req]
        distinguished_name = dn
        x509_extensions = v3_ca
        prompt = no
        [dn]
        CN = OSPW Matrix VM test CA
        [v3_ca]
        basicConstraints = critical, CA:TRUE
        keyUsage = critical, keyCertSign, cRLSign
        subjectKeyIdentifier = hash
        EOF
        openssl req -x509 -config ca.cnf -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
          -keyout $out/ca.key -out $out/ca.crt -days 3650
      '';

  matrixTestClient = pkgs.writeScriptBin "matrix-test-client" (
    "#!${pkgs.python3.interpreter}\n" + builtins.readFile ./matrix-test-client.py
  );

  # The commands the test scripts run on the client: the Matrix test client
  # for this server name, and curl trusting the system CA bundle (which
  # holds the test CA).
  commands = {
    client = "matrix-test-client --server-name ${names.base}";
    curl = "curl --cacert /etc/ssl/certs/ca-certificates.crt";
  };

  # A test's `server` (the module from `self` and serverModule) and `client`
  # (clientModule) nodes, each with the test's own additions (attribute
  # sets, which may have their own `imports`).
  serverAndClient =
    self:
    {
      server ? { },
      client ? { },
    }:
    {
      server = server // {
        imports = [
          self.nixosModules.default
          serverModule
        ]
        ++ server.imports or [ ];
      };
      client = client // {
        imports = [ clientModule ] ++ client.imports or [ ];
      };
    };

  # Passwords of the test accounts (created with `ospw-matrix user add`).
  passwords = {
    alice = "alice-correct-horse-battery";
    bob = "bob-correct-horse-battery";
  };

  # The server: services.ospw-matrix with Caddy's internal CA rooted in the
  # test CA, and the test host names.
  serverModule =
    { ... }:
    {
      services.ospw-matrix = {
        enable = true;
        baseDomain = names.base;
        matrixHost = names.matrix;
        elementHost = names.element;
        turn.host = names.turn;
        proxy.tls = "internal";
        element.brand = "OSPW Test Chat";
        # The tests log in more often, from one address, than Synapse's
        # default login rate limits allow.
        synapse.settings.rc_login = lib.genAttrs [ "address" "account" "failed_attempts" ] (_: {
          per_second = 100;
          burst_count = 100;
        });
      };

      # (The module adds skip_install_trust for `tls internal`.)
      services.caddy.globalConfig = ''
        pki {
          ca local {
            root {
              format pem_file
              cert ${testCA}/ca.crt
              key ${testCA}/ca.key
            }
          }
        }
      '';

      security.pki.certificateFiles = [ "${testCA}/ca.crt" ];

      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
        matrixTestClient
      ];

      virtualisation.memorySize = 2048;
      virtualisation.diskSize = 4096;
    };

  # A client on the same network: resolves the test names to the server,
  # trusts the test CA.
  clientModule =
    { nodes, ... }:
    {
      networking.hosts.${nodes.server.networking.primaryIPAddress} = lib.attrValues names;
      security.pki.certificateFiles = [ "${testCA}/ca.crt" ];
      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
        pkgs.nmap
        pkgs.coturn
        matrixTestClient
      ];
    };

  # Python helpers for the test scripts, to interpolate at the top level of
  # a testScript (not inside an indented block).
  helpersScript = ''
    def wait_for_server():
        """Waits until the whole stack on `server` serves."""
        server.wait_for_unit("ospw-matrix-secrets.service")
        server.wait_for_unit("ospw-matrix-db-init.service")
        server.wait_for_unit("ospw-matrix-synapse.service")
        server.wait_for_unit("ospw-matrix-coturn.service")
        server.wait_for_unit("caddy.service")
        server.wait_for_open_port(8008, "127.0.0.1")
        server.wait_for_open_port(443)
        server.wait_for_open_port(3478)


    def create_users():
        """Creates alice (admin) and bob the way an administrator would."""
        for name, password in [("alice", "${passwords.alice}"), ("bob", "${passwords.bob}")]:
            server.succeed(f"install -m 0600 /dev/null /root/{name}.password")
            server.succeed(f"printf %s '{password}' > /root/{name}.password")
        server.succeed("sudo ospw-matrix user add alice --admin --password-file /root/alice.password")
        server.succeed("sudo ospw-matrix user add bob --password-file /root/bob.password")
  '';
}
