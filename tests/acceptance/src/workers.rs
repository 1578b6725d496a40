//! Synapse's workers in a run: the rendered manifest
//! (`synapse/workers.json`), plain HTTP over a worker's Unix socket, and
//! what each process's access log says it served.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One worker of the manifest.
#[derive(Debug, Clone)]
pub struct Worker {
    /// `sync1`, `client1`, ...
    pub name: String,
    /// `sync`, `client`, `event_persister`, `stream_writer`, `media`, `background`.
    pub kind: String,
    /// The Synapse application (`synapse.app.generic_worker`).
    pub app: String,
    /// Its configuration file (absolute).
    pub config: PathBuf,
    /// Its client-facing (or health) Unix socket, if any.
    pub http: Option<PathBuf>,
    /// Its replication Unix socket, if any.
    pub replication: Option<PathBuf>,
    /// Its TCP listeners (`ADDRESS:PORT`; workers on another host), HTTP
    /// then replication.
    pub tcp: Vec<String>,
    /// Its Prometheus metrics listener (`ADDRESS:PORT`), with `metrics.enable`.
    pub metrics: Option<String>,
}

impl Worker {
    /// The socket that answers `/health`: its HTTP listener, else its
    /// replication listener.
    pub fn health_socket(&self) -> Option<&Path> {
        self.http.as_deref().or(self.replication.as_deref())
    }

    /// The service name of its process in the run (`synapse-NAME`).
    pub fn service(&self) -> String {
        format!("synapse-{}", self.name)
    }
}

/// The workers in the rendered output `out` (empty without workers).
pub fn manifest(out: &Path) -> Result<Vec<Worker>> {
    let path = out.join("synapse/workers.json");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?,
    )?;
    let unix = |v: &Value| -> Option<PathBuf> {
        v.as_str()
            .and_then(|s| s.strip_prefix("unix:"))
            .map(PathBuf::from)
    };
    let tcp = |v: &Value| -> Option<String> {
        v.as_str()
            .and_then(|s| s.strip_prefix("tcp:"))
            .map(str::to_owned)
    };
    let mut out_workers = Vec::new();
    for w in v["workers"]
        .as_array()
        .context("no workers in the manifest")?
    {
        let field = |k: &str| -> Result<String> {
            Ok(w[k]
                .as_str()
                .with_context(|| format!("worker without {k}"))?
                .to_owned())
        };
        out_workers.push(Worker {
            name: field("name")?,
            kind: field("kind")?,
            app: field("app")?,
            config: out.join(field("config")?),
            http: unix(&w["http"]),
            replication: unix(&w["replication"]),
            tcp: [tcp(&w["http"]), tcp(&w["replication"])]
                .into_iter()
                .flatten()
                .collect(),
            metrics: tcp(&w["metrics"]),
        });
    }
    Ok(out_workers)
}

/// `GET path` over the Unix socket `socket` (HTTP/1.0): the status and the body.
pub async fn unix_get(socket: &Path, path: &str) -> Result<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::UnixStream::connect(socket)
            .await
            .with_context(|| format!("connect {}", socket.display()))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .with_context(|| format!("no HTTP status from {}", socket.display()))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok::<_, anyhow::Error>((status, body))
    };
    match tokio::time::timeout(Duration::from_secs(10), fut).await {
        Ok(r) => r,
        Err(_) => bail!("GET {path} on {} timed out", socket.display()),
    }
}

/// One request a Synapse process logged (`Processed request: ... "METHOD
/// PATH HTTP/1.1"`, Synapse's access log at INFO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The response status.
    pub status: u16,
}

/// The requests in a Synapse log.
pub fn served(log: &str) -> Vec<Served> {
    log.lines()
        .filter(|l| l.contains("Processed request:"))
        .filter_map(|l| {
            // ... 123B 200 "GET /_matrix/client/v3/sync?x HTTP/1.1" "agent" [..]
            let (before, rest) = l.split_once(" \"")?;
            let status = before.rsplit(' ').next()?.parse().ok()?;
            let request = rest.split('"').next()?;
            let mut parts = request.split(' ');
            let method = parts.next()?.to_owned();
            let target = parts.next()?;
            let path = target.split('?').next()?.to_owned();
            Some(Served {
                method,
                path,
                status,
            })
        })
        .collect()
}

/// Synapse's count of the requests it handled
/// (`synapse_http_server_requests_received_total`), by (method, servlet),
/// from its Prometheus text at `http://ADDRESS:PORT/_synapse/metrics`.
pub async fn requests_handled(
    http: &reqwest::Client,
    address: &str,
) -> Result<std::collections::BTreeMap<(String, String), f64>> {
    let url = format!("http://{address}/_synapse/metrics");
    let text = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .text()
        .await?;
    Ok(parse_requests_handled(&text))
}

/// The `synapse_http_server_requests_received_total` series of a
/// Prometheus text, by (method, servlet).
pub fn parse_requests_handled(text: &str) -> std::collections::BTreeMap<(String, String), f64> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("synapse_http_server_requests_received_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            *out.entry((label("method"), label("servlet")))
                .or_insert(0.0) += v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn prometheus_request_counts_are_read() {
        let text = "# HELP synapse_http_server_requests_received_total\n\
                    synapse_http_server_requests_received_total{method=\"GET\",servlet=\"SyncRestServlet\",server_name=\"example.test\"} 5.0\n\
                    synapse_http_server_requests_received_total{method=\"PUT\",servlet=\"RoomSendEventRestServlet\",server_name=\"example.test\"} 2.0\n\
                    synapse_http_server_responses_total{method=\"GET\",code=\"200\"} 9.0\n";
        let got = super::parse_requests_handled(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[&("GET".to_owned(), "SyncRestServlet".to_owned())], 5.0);
        assert_eq!(
            got[&("PUT".to_owned(), "RoomSendEventRestServlet".to_owned())],
            2.0
        );
    }

    use super::*;

    #[test]
    fn access_log_lines_are_read() {
        let log = "synapse.access.http.8008 - 476 - INFO - GET-3 - 127.0.0.1 - 8008 - {@alice:example.test} Processed request: 0.005sec/0.000sec (0.001sec, 0.000sec) (0.001sec/0.002sec/2) 123B 200 \"GET /_matrix/client/v3/sync?since=s1&timeout=0 HTTP/1.1\" \"matrix-rust-sdk\" [0 dbevts]\n\
                   synapse.access.http.sync1 - 476 - INFO - PUT-9 - 127.0.0.1 - sync1 - {None} Processed request: 0.001sec/0.000sec (0.000sec, 0.000sec) (0.000sec/0.000sec/0) 64B 404 \"PUT /_matrix/client/v3/rooms/!a:b/send/m.room.message/t1 HTTP/1.1\" \"-\" [0 dbevts]\n\
                   something else\n";
        assert_eq!(
            served(log),
            vec![
                Served {
                    method: "GET".into(),
                    path: "/_matrix/client/v3/sync".into(),
                    status: 200
                },
                Served {
                    method: "PUT".into(),
                    path: "/_matrix/client/v3/rooms/!a:b/send/m.room.message/t1".into(),
                    status: 404
                },
            ]
        );
    }
}
