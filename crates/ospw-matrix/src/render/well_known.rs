//! Derives `/.well-known/matrix/client`, the client discovery document.
//!
//! Only `m.homeserver` is published: no identity server (the server has no
//! third-party identifiers) and nothing else that would send clients to a
//! third party. `/.well-known/matrix/server` is never published: the server
//! does not federate.

use crate::host::HostDescription;

/// The client discovery document as a JSON value.
pub fn client_json(host: &HostDescription) -> serde_json::Value {
    serde_json::json!({
        "m.homeserver": {
            "base_url": host.homeserver_url(),
        }
    })
}

/// The client discovery document pointing at the Matrix host, pretty-printed
/// with a final line break (the file `well-known/matrix/client`).
pub fn client(host: &HostDescription) -> String {
    let mut text = serde_json::to_string_pretty(&client_json(host))
        .unwrap_or_else(|_| client_json(host).to_string());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_the_matrix_host() {
        let mut host = crate::load::example_host().unwrap();
        let v: serde_json::Value = serde_json::from_str(&client(&host)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"m.homeserver": {"base_url": "https://matrix.example.org"}})
        );
        host.proxy.https_port = 8443;
        assert_eq!(
            client_json(&host)["m.homeserver"]["base_url"],
            "https://matrix.example.org:8443"
        );
    }
}
