# Prometheus metrics (opt-in): `metrics.enable` turns on Synapse's metrics
# listener, coturn's Prometheus exporter and Caddy's metrics, each on
# 127.0.0.1 only (the rendered configuration does it: see the `metrics`
# section of the host description). None of them is ever routed through
# Caddy's public sites, which `ospw-matrix render` refuses, and the
# firewall opens none of their ports. `metrics.addScrapeConfigs` adds the
# three endpoints to services.prometheus on this host. docs/monitoring.md
# has the alert rules.
{
  config,
  lib,
  ...
}:

let
  inherit (lib) mkOption types;

  cfg = config.services.ospw-matrix;
  mcfg = cfg.metrics;
  opt = "services.ospw-matrix.metrics";

  portOption =
    default: what:
    mkOption {
      type = types.port;
      inherit default;
      description = "The port of ${what} on 127.0.0.1 (with {option}`${opt}.enable`).";
    };

  target = port: "127.0.0.1:${toString port}";
in
{
  options.services.ospw-matrix.metrics = {
    enable = lib.mkEnableOption ''
      Prometheus metrics of Synapse (`/_synapse/metrics`), coturn
      (`/metrics`, when coturn is built with Prometheus support, as
      nixpkgs' coturn is) and Caddy (`/metrics`), each on 127.0.0.1 only,
      never through the public sites'';

    synapsePort = portOption 9000 "Synapse's metrics listener";
    coturnPort = portOption 9641 "coturn's Prometheus exporter";
    caddyPort = portOption 9180 "Caddy's metrics site";

    addScrapeConfigs = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether to add the three loopback endpoints to
        {option}`services.prometheus.scrapeConfigs` (jobs
        `ospw-matrix-synapse`, `ospw-matrix-coturn` and
        `ospw-matrix-caddy`), for a Prometheus running on this host.
        Needs {option}`${opt}.enable`.
      '';
    };
  };

  config = lib.mkMerge [
    {
      assertions = lib.optionals mcfg.addScrapeConfigs [
        {
          assertion = mcfg.enable;
          message = "${opt}.addScrapeConfigs is set but ${opt}.enable is not: there is nothing to scrape; enable the metrics or remove addScrapeConfigs.";
        }
        {
          assertion = config.services.prometheus.enable;
          message = "${opt}.addScrapeConfigs adds scrape targets for a Prometheus on this host, but services.prometheus.enable is not set: enable it, or scrape 127.0.0.1 through your own tooling and remove addScrapeConfigs.";
        }
      ];
    }
    (lib.mkIf (cfg.enable && mcfg.enable && mcfg.addScrapeConfigs) {
      services.prometheus.scrapeConfigs = [
        {
          job_name = "ospw-matrix-synapse";
          metrics_path = "/_synapse/metrics";
          static_configs = [ { targets = [ (target mcfg.synapsePort) ]; } ];
        }
        {
          job_name = "ospw-matrix-coturn";
          metrics_path = "/metrics";
          static_configs = [ { targets = [ (target mcfg.coturnPort) ]; } ];
        }
        {
          job_name = "ospw-matrix-caddy";
          metrics_path = "/metrics";
          static_configs = [ { targets = [ (target mcfg.caddyPort) ]; } ];
        }
      ];
    })
  ];
}
