# Element Web: the built app from nixpkgs is the webroot Caddy serves
# (services.ospw-matrix.hostDescription.element.webroot); its config.json is
# the rendered one, served by the site block from the render output, so the
# package itself is used unmodified (element-web without `conf` is the
# upstream build).
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
    warnings = lib.optional (cfg.element.package ? conf && cfg.element.package.conf != { }) ''
      services.ospw-matrix.element.package carries its own config.json (element-web.override { conf = ...; }), which is ignored: the rendered config.json is served instead. Use services.ospw-matrix.element.settings.
    '';
  };
}
