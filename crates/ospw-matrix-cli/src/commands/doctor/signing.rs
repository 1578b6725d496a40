//! Is the signing key on disk the one Synapse signs with?
//!
//! Synapse serves no key endpoint here (no federation), so the doctor asks
//! it to sign something: the CLI's admin service account keeps one private
//! room of its own (marked by an `org.ospw.matrix.doctor` state event, no
//! other member) and updates that state event on every run. The new event,
//! fetched in its federation form through the admin API
//! (`/_synapse/admin/v1/fetch_event`), carries Synapse's signature, which
//! must be by the key ID of the signing key file and verify with its
//! public key over the event's redacted canonical JSON (Matrix
//! specification, "Signing events").

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use ospw_matrix::secrets::SigningKey;
use serde_json::{json, Map, Value};

use crate::admin_api::{encode_segment, expect_ok, AdminClient};

/// The state event type that marks the doctor's room.
pub const PROBE_TYPE: &str = "org.ospw.matrix.doctor";

/// The top-level keys the redaction algorithm keeps, before room version
/// 11 and from it on (which dropped `origin`, `membership`, `prev_state`).
const KEPT_BEFORE_V11: [&str; 15] = [
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "prev_state",
    "auth_events",
    "origin",
    "origin_server_ts",
    "membership",
];

fn kept(key: &str, v11: bool) -> bool {
    KEPT_BEFORE_V11.contains(&key)
        && !(v11 && matches!(key, "origin" | "membership" | "prev_state"))
}

/// Matrix canonical JSON: object keys sorted by code point, no white
/// space, UTF-8 unescaped.
pub fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(x) = map.get(k) {
                    canonical_json(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The bytes Synapse signed for an event of a custom type (whose content
/// the redaction algorithm empties): the redacted event without
/// `signatures` and `unsigned`, in canonical JSON. `v11` selects the newer
/// redaction rules; `with_event_id` keeps an `event_id` key (rooms of
/// version 1 and 2 have it in the signed form).
pub fn signed_bytes(event: &Map<String, Value>, v11: bool, with_event_id: bool) -> Vec<u8> {
    let mut redacted = Map::new();
    for (k, v) in event {
        if !kept(k, v11) || k == "signatures" || (k == "event_id" && !with_event_id) {
            continue;
        }
        let v = if k == "content" { json!({}) } else { v.clone() };
        redacted.insert(k.clone(), v);
    }
    let mut out = String::new();
    canonical_json(&Value::Object(redacted), &mut out);
    out.into_bytes()
}

/// Whether `signature` (base64) by `key` verifies over one of the signed
/// forms of `event`.
pub fn verifies(key: &SigningKey, event: &Map<String, Value>, signature: &str) -> bool {
    let decode = |s: &str| {
        STANDARD_NO_PAD
            .decode(s.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(s))
            .ok()
    };
    let Some(public) = decode(&key.verify_key_base64()) else {
        return false;
    };
    let Ok(public) = <[u8; 32]>::try_from(public.as_slice()) else {
        return false;
    };
    let Ok(public) = VerifyingKey::from_bytes(&public) else {
        return false;
    };
    let Some(sig) = decode(signature).and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok()) else {
        return false;
    };
    let sig = Signature::from_bytes(&sig);
    [(true, false), (false, false), (true, true), (false, true)]
        .iter()
        .any(|(v11, id)| public.verify(&signed_bytes(event, *v11, *id), &sig).is_ok())
}

/// The doctor's room: an existing one of the service account, or a new
/// private one.
fn probe_room(client: &mut AdminClient) -> Result<String, String> {
    let r = client
        .call("GET", "/_matrix/client/v3/joined_rooms", None)
        .map_err(|e| e.to_string())?;
    expect_ok(&r, "listing the service account's rooms").map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    for room in v["joined_rooms"].as_array().into_iter().flatten() {
        let Some(room) = room.as_str() else { continue };
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{PROBE_TYPE}/",
            encode_segment(room)
        );
        let r = client.call("GET", &path, None).map_err(|e| e.to_string())?;
        if r.status == 200 {
            return Ok(room.to_owned());
        }
    }
    let body = json!({
        "preset": "private_chat",
        "visibility": "private",
        "name": "ospw-matrix doctor",
        "topic": "Kept by `ospw-matrix doctor` to see which key Synapse signs with. No one else is here.",
        "creation_content": {"m.federate": false},
        "initial_state": [{"type": PROBE_TYPE, "state_key": "", "content": {}}],
    });
    let r = client
        .call("POST", "/_matrix/client/v3/createRoom", Some(&body))
        .map_err(|e| e.to_string())?;
    expect_ok(&r, "creating the doctor's room").map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    v["room_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "createRoom answered without a room_id".to_owned())
}

/// A new event signed by Synapse now, in its federation form.
pub fn fresh_signed_event(client: &mut AdminClient) -> Result<Map<String, Value>, String> {
    let room = probe_room(client)?;
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/{PROBE_TYPE}/",
        encode_segment(&room)
    );
    let body = json!({"checked_at": crate::tls::now_secs()});
    let r = client
        .call("PUT", &path, Some(&body))
        .map_err(|e| e.to_string())?;
    expect_ok(&r, "sending the doctor's state event").map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    let event_id = v["event_id"]
        .as_str()
        .ok_or("the state event got no event_id")?
        .to_owned();
    let r = client
        .call(
            "GET",
            &format!(
                "/_synapse/admin/v1/fetch_event/{}",
                encode_segment(&event_id)
            ),
            None,
        )
        .map_err(|e| e.to_string())?;
    expect_ok(&r, "fetching the signed event").map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    match v.get("event") {
        Some(Value::Object(event)) => Ok(event.clone()),
        _ => Err("the admin API's fetch_event answered without the event".into()),
    }
}

/// Synapse's signatures on `event`: (key ID, signature).
pub fn signatures(event: &Map<String, Value>, server_name: &str) -> Vec<(String, String)> {
    event
        .get("signatures")
        .and_then(|s| s.get(server_name))
        .and_then(|s| s.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_drops_white_space() {
        let v: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"z": [true, null, "é\n"], "y": -2}, "A": "x"}"#)
                .unwrap();
        let mut out = String::new();
        canonical_json(&v, &mut out);
        assert_eq!(out, r#"{"A":"x","a":{"y":-2,"z":[true,null,"é\n"]},"b":1}"#);
    }

    /// An event signed the way Synapse signs: redacted, canonical JSON.
    fn signed_event(key: &SigningKey, v11: bool) -> Map<String, Value> {
        let mut event: Map<String, Value> = serde_json::from_value(json!({
            "type": PROBE_TYPE,
            "room_id": "!r:example.org",
            "sender": "@ospw-admin:example.org",
            "state_key": "",
            "content": {"checked_at": 1},
            "hashes": {"sha256": "abc"},
            "depth": 5,
            "prev_events": ["$p"],
            "auth_events": ["$a"],
            "origin_server_ts": 1_700_000_000_000_u64,
            "origin": "example.org",
        }))
        .unwrap();
        let sig = key.sign_base64(&signed_bytes(&event, v11, false));
        event.insert(
            "signatures".into(),
            json!({"example.org": {key.key_id(): sig}}),
        );
        event.insert("unsigned".into(), json!({"age_ts": 1}));
        event.insert("event_id".into(), json!("$e"));
        event
    }

    #[test]
    fn synapse_style_signatures_verify_with_the_right_key_only() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        for v11 in [false, true] {
            let event = signed_event(&key, v11);
            let sigs = signatures(&event, "example.org");
            assert_eq!(sigs.len(), 1);
            assert_eq!(sigs[0].0, key.key_id());
            assert!(verifies(&key, &event, &sigs[0].1), "v11={v11}");
            assert!(!verifies(&other, &event, &sigs[0].1));
            let mut tampered = event.clone();
            tampered.insert("depth".into(), json!(6));
            assert!(!verifies(&key, &tampered, &sigs[0].1));
        }
        assert!(signatures(&signed_event(&key, true), "other.org").is_empty());
    }
}
