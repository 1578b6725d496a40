{
  security.acme = {
    acceptTerms = true;
    defaults.email = "admin@example.org";
    certs."turn.example.org" = {
      # DNS-01: Caddy answers on port 80, so HTTP-01 cannot work here.
      dnsProvider = "cloudflare"; # any of https://go-acme.github.io/lego/dns/
      environmentFile = "/run/secrets/acme-dns.env"; # the provider's API token
    };
  };

  services.ospw-matrix.turn = {
    host = "turn.example.org";
    tls = {
      enable = true;
      useACMEHost = "turn.example.org";
    };
  };
}
