//! With `metrics.enable`: Synapse's, coturn's and Caddy's metrics answer on
//! loopback (that they are closed from outside is `privacy.metrics`).

use ospw_matrix::host::METRICS_ADDRESS;

use super::report::{CheckId, Findings, Side, Status};
use super::Ctx;
use crate::http::{self, Endpoint};

/// The loopback metrics endpoints of a host with `metrics.enable`: (name,
/// port, path).
pub fn endpoints(ctx: &Ctx) -> Vec<(&'static str, u16, &'static str)> {
    let m = &ctx.host.metrics;
    if !m.enable {
        return Vec::new();
    }
    vec![
        ("synapse", m.synapse_port, "/_synapse/metrics"),
        ("coturn", m.coturn_port, "/metrics"),
        ("caddy", m.caddy_port, "/metrics"),
    ]
}

/// Each endpoint answers 200 with Prometheus' text format.
pub fn inside(ctx: &Ctx, f: &mut Findings) {
    for (name, port, path) in endpoints(ctx) {
        let endpoint = Endpoint::Tcp {
            host: METRICS_ADDRESS.to_owned(),
            port,
        };
        let url = format!("http://{METRICS_ADDRESS}:{port}{path}");
        let hint = Some(match name {
            "coturn" => "coturn serves metrics only when built with Prometheus support (NixOS' coturn is; `turnserver -h` lists --prometheus) and started from the rendered turnserver.conf: restart it and look at its log for \"prometheus\"".to_owned(),
            _ => format!("restart {name} with the rendered configuration (metrics.enable)"),
        });
        match http::request(&endpoint, "GET", path, &[], None, ctx.timeout) {
            Ok(r) if r.status == 200 && looks_like_prometheus(&r.body) => f.add(
                CheckId::MetricsEndpoint,
                Side::Inside,
                Some(name),
                Status::Pass,
                format!("{url} answers ({} bytes of metrics)", r.body.len()),
                None,
            ),
            Ok(r) => f.add(
                CheckId::MetricsEndpoint,
                Side::Inside,
                Some(name),
                Status::Fail,
                format!("{url} answered HTTP {} without metrics", r.status),
                hint,
            ),
            Err(e) => f.add(
                CheckId::MetricsEndpoint,
                Side::Inside,
                Some(name),
                Status::Fail,
                e.to_string(),
                hint,
            ),
        }
    }
}

/// Whether `body` is Prometheus' text exposition format (`# HELP`/`# TYPE`
/// lines, or `name value` samples).
pub fn looks_like_prometheus(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).lines().any(|l| {
        l.starts_with("# TYPE ") || l.starts_with("# HELP ") || {
            let mut parts = l.split_whitespace();
            matches!((parts.next(), parts.next()), (Some(n), Some(v))
                if n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && v.parse::<f64>().is_ok())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_is_recognised() {
        assert!(looks_like_prometheus(
            b"# HELP up x\n# TYPE up gauge\nup 1\n"
        ));
        assert!(looks_like_prometheus(
            b"caddy_http_requests_total{a=\"b\"} 3\n"
        ));
        assert!(!looks_like_prometheus(b"<html>404</html>"));
        assert!(!looks_like_prometheus(b""));
    }
}
