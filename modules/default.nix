# services.ospw-matrix: a private, non-federating Matrix server (Synapse,
# PostgreSQL, coturn, Element Web, Caddy) derived from one host description.
#
# options.nix declares the interface; host-description.nix turns it into the
# host description JSON and renders every component's configuration with
# `ospw-matrix render` at build time; the other files wire one component
# each.
{
  imports = [
    ./options.nix
    ./host-description.nix
    ./assertions.nix
    ./secrets.nix
    ./postgresql.nix
    ./synapse.nix
    ./sso.nix
    ./coturn.nix
    ./caddy.nix
    ./element.nix
    ./firewall.nix
    ./admin-cli.nix
    ./backup.nix
    ./metrics.nix
    ./doctor.nix
  ];
}
