//! Plain HTTP helpers for the client-server API: JSON GETs, status codes,
//! password login, media upload and download.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId};
use serde_json::{json, Value};

/// A client without any special trust or name resolution.
pub fn plain_client(timeout: Duration) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(timeout).build()?)
}

/// Percent-encodes a path segment (room and event IDs).
pub fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `base`'s URL of one event of a room (client-server API).
pub fn event_url(base: &str, room: &OwnedRoomId, event: &OwnedEventId) -> String {
    format!(
        "{base}/_matrix/client/v3/rooms/{}/event/{}",
        seg(room.as_str()),
        seg(event.as_str())
    )
}

/// The status code of `GET url`.
pub async fn status_of(http: &reqwest::Client, url: &str) -> Result<u16> {
    let r = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    Ok(r.status().as_u16())
}

/// Fails unless `GET url` answers 404.
pub async fn expect_404(http: &reqwest::Client, url: &str) -> Result<String> {
    let s = status_of(http, url).await?;
    ensure!(s == 404, "GET {url} answered {s}, expected 404");
    Ok(format!("{url} → 404"))
}

/// `GET url` (with a bearer token when given), which must succeed with JSON.
pub async fn get_json(http: &reqwest::Client, url: &str, token: Option<&str>) -> Result<Value> {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.with_context(|| format!("GET {url}"))?;
    let status = r.status();
    let text = r.text().await?;
    ensure!(status.is_success(), "GET {url} answered {status}: {text}");
    serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON: {text}"))
}

/// The rooms `token`'s user has joined on `base`.
pub async fn joined_rooms(http: &reqwest::Client, base: &str, token: &str) -> Result<Vec<String>> {
    let v = get_json(
        http,
        &format!("{base}/_matrix/client/v3/joined_rooms"),
        Some(token),
    )
    .await?;
    let rooms = v["joined_rooms"]
        .as_array()
        .with_context(|| format!("no joined_rooms: {v}"))?;
    Ok(rooms
        .iter()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect())
}

/// A password login at `base`: the status code and the JSON answer (Null when none).
pub async fn password_login(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> Result<(u16, Value)> {
    let r = http
        .post(format!("{base}/_matrix/client/v3/login"))
        .json(&json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}))
        .send()
        .await?;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    Ok((status, v))
}

/// Uploads `bytes` to `base`'s media repository; returns the `mxc://` URI.
pub async fn upload(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    bytes: &[u8],
) -> Result<String> {
    let r = http
        .post(format!("{base}/_matrix/media/v3/upload?filename=notes.bin"))
        .bearer_auth(token)
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    ensure!(status.is_success(), "upload answered {status}: {v}");
    v["content_uri"]
        .as_str()
        .map(str::to_owned)
        .context("no content_uri")
}

/// Downloads `mxc` from `base` (authenticated media).
pub async fn download(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    mxc: &str,
) -> Result<Vec<u8>> {
    let rest = mxc.strip_prefix("mxc://").context("not an mxc URI")?;
    let url = format!("{base}/_matrix/client/v1/media/download/{rest}");
    let r = http.get(&url).bearer_auth(token).send().await?;
    ensure!(r.status().is_success(), "GET {url} answered {}", r.status());
    Ok(r.bytes().await?.to_vec())
}
