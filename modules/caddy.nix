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
      ];
    };

    # Caddy reaches Synapse's Unix socket through Synapse's group.
    users.users = lib.mkIf (cfg.synapse.listen.unixSocket != null) {
      ${config.services.caddy.user}.extraGroups = [ cfg.synapse.database.user ];
    };

    systemd.services.caddy = {
      # Proxying to a Synapse that is not up yet only yields 502s, but
      # ordering keeps the first requests after boot clean.
      after = [ "ospw-matrix-synapse.service" ];
    };
  };
}
