# Caddy, through services.caddy: the rendered site blocks (Matrix host,
# Element host, base domain for .well-known) are imported from the render
# output, a store path referred to as a string (no import-from-derivation).
# services.caddy keeps the global options (e-mail, admin endpoint, logs).
{
  config,
  lib,
  ...
}:

let
  cfg = config.services.ospw-matrix;
in
{
  config = lib.mkIf cfg.enable {
    services.caddy = {
      enable = true;
      # A default, so that a host whose Caddy already has an e-mail keeps it.
      email = lib.mkIf (cfg.proxy.acmeEmail != null) (lib.mkDefault cfg.proxy.acmeEmail);
      extraConfig = ''
        import ${cfg.renderedConfig}/caddy/sites.caddy
      '';
      # The site addresses carry the ports; Caddy's own HTTP->HTTPS
      # redirects and ACME challenges need to know them too.
      globalConfig = lib.mkMerge [
        (lib.mkIf (cfg.proxy.httpPort != 80) "http_port ${toString cfg.proxy.httpPort}")
        (lib.mkIf (cfg.proxy.httpsPort != 443) "https_port ${toString cfg.proxy.httpsPort}")
        # With its internal CA, Caddy would try to install the CA's root
        # into the system trust store (it cannot, as the `caddy` user, and
        # must not); the standalone Caddyfile says the same.
        (lib.mkIf (cfg.proxy.tls == "internal") "skip_install_trust")
      ];
    };

    systemd.services.caddy = {
      # Proxying to a Synapse that is not up yet only yields 502s, but
      # ordering keeps the first requests after boot clean.
      after = [ "ospw-matrix-synapse.service" ];
      # Caddy reaches Synapse's Unix socket (0660) through Synapse's group,
      # as a supplementary group of the unit rather than of the `caddy`
      # account: nixpkgs only reloads Caddy when its configuration changes
      # (reloadTriggers), so a running Caddy would keep its old groups and
      # answer 502 after a switch to the socket; a change of the unit's
      # SupplementaryGroups= restarts it.
      serviceConfig.SupplementaryGroups = lib.mkIf (cfg.synapse.listen.unixSocket != null) [
        cfg.synapse.database.user
      ];
    };
  };
}
