//! Property tests: any valid host description renders files that parse back
//! and keep every privacy invariant, with the shared values (homeserver URL,
//! TURN secret path, ports) consistent across components. The checks read
//! the emitted text with plain YAML/JSON parsers, independently of the
//! component models, and then with the models' own `privacy_violations()`.

use std::path::PathBuf;

use ospw_matrix::components::coturn::TurnserverConf;
use ospw_matrix::components::element::ElementConfig;
use ospw_matrix::components::synapse::HomeserverConfig;
use ospw_matrix::host::{
    EncryptionDefault, HostDescription, ProxyTls, SecretKind, SynapseListen, TurnTls,
};
use ospw_matrix::{parse_host, render, RenderContext};
use proptest::prelude::*;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}[a-z0-9]".prop_filter("no placeholder", |s| !s.contains("changeme"))
}

fn ipv4() -> impl Strategy<Value = String> {
    (1u8..=223, any::<u8>(), any::<u8>(), 1u8..=254)
        .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}"))
}

prop_compose! {
    fn host()(
        base in (label(), label()).prop_map(|(a, b)| format!("{a}.{b}")),
        sub in label(),
        server_is_base in any::<bool>(),
        unix in any::<bool>(),
        v6 in any::<bool>(),
        // Not 2019, the standalone Caddyfile's admin endpoint.
        ports in proptest::collection::hash_set((1u16..20000).prop_filter("admin port", |p| *p != 2019), 8),
        relay_first in 20000u16..60000,
        relay_len in 1u16..5000,
        tls in any::<bool>(),
        turn_on_own_host in any::<bool>(),
        external in proptest::option::of(ipv4()),
        relay_ip in proptest::option::of(ipv4()),
        presence in any::<bool>(),
        metrics in any::<bool>(),
        previews in any::<bool>(),
        enc in prop_oneof![Just(EncryptionDefault::All), Just(EncryptionDefault::Invite), Just(EncryptionDefault::Off)],
        upload in (1u64..2048, prop_oneof![Just("K"), Just("M"), Just("G"), Just("")]).prop_map(|(n, s)| {
            // At most 100G (validate::MAX_UPLOAD_SIZE).
            if s == "G" { format!("{}G", n % 100 + 1) } else { format!("{n}{s}") }
        }),
        lifetime in prop_oneof![
            (60u64..=604_800).prop_map(|n| format!("{n}s")),
            (1u64..=10_080).prop_map(|n| format!("{n}m")),
            (1u64..=168).prop_map(|n| format!("{n}h")),
            (1u64..=7).prop_map(|n| format!("{n}d")),
        ],
        brand in "[A-Za-z0-9][A-Za-z0-9 '\"#:é]{0,23}".prop_filter("no placeholder", |s| !s.to_ascii_lowercase().contains("change")),
        internal_tls in any::<bool>(),
        explicit_turn_secret in any::<bool>(),
        quota in (1u32..100, 100u32..10000),
        // Single sign-on: no provider, or one that creates no account, asks
        // for a claim, or takes everyone; passwords on or off; mail.
        sso in proptest::option::of((0u8..3, any::<bool>(), any::<bool>(), label())),
        mail in proptest::option::of((0u8..3, any::<bool>(), any::<bool>())),
    ) -> HostDescription {
        let ports: Vec<u16> = ports.into_iter().collect();
        let matrix_host = format!("matrix-{sub}.{base}");
        let mut host = parse_host(
            &format!("base_domain: {base}\nserver_name: {}\nmatrix_host: {matrix_host}\nelement_host: chat-{sub}.{base}\n",
                if server_is_base { base.clone() } else { matrix_host.clone() }),
            "generated",
        ).expect("generated names parse");
        host.synapse.listen = if unix {
            SynapseListen::Unix { path: PathBuf::from(format!("/run/ospw/{sub}.sock")) }
        } else {
            SynapseListen::Tcp { address: if v6 { "::1".into() } else { "127.0.0.1".into() }, port: ports[0] }
        };
        host.proxy.http_port = ports[1];
        host.proxy.https_port = ports[2];
        host.proxy.tls = if internal_tls { ProxyTls::Internal } else { ProxyTls::Acme };
        host.turn.port = ports[3];
        host.turn.tls = tls.then(|| TurnTls {
            port: ports[4],
            cert_file: "/etc/turn/cert.pem".into(),
            key_file: "/etc/turn/key.pem".into(),
        });
        if !turn_on_own_host {
            host.turn.host = Some(format!("turn-{sub}.{base}"));
        }
        host.turn.relay_ports = format!("{relay_first}-{}", relay_first + relay_len);
        host.turn.external_ip = external;
        host.turn.relay_ip = relay_ip;
        host.turn.user_quota = quota.0;
        host.turn.total_quota = quota.1;
        host.turn.credential_lifetime = lifetime;
        host.synapse.presence = presence;
        host.synapse.url_previews = previews;
        host.synapse.encryption_by_default = enc;
        host.synapse.max_upload_size = upload;
        host.element.brand = brand;
        host.metrics.enable = metrics;
        host.metrics.synapse_port = ports[5];
        host.metrics.coturn_port = ports[6];
        host.metrics.caddy_port = ports[7];
        if explicit_turn_secret {
            host.secrets.turn_shared_secret_file = Some("/run/agenix/turn".into());
        }
        if let Some((who, existing, passwords, id)) = sso {
            let who = match who {
                0 => "",
                1 => ", require: [{attribute: groups, value: chat}]",
                _ => ", auto_create: true",
            };
            let provider = format!(
                "{{id: {id}, name: SSO {id}, issuer: 'https://auth.{base}/o/{id}/', client_id: {id}, \
                 client_secret_file: /run/agenix/{id}, allow_existing_users: {existing}{who}}}"
            );
            host.sso.providers = vec![serde_yaml::from_str(&provider).expect("provider")];
            host.sso.password_login = passwords;
        }
        if let Some((tls, reset, notifications)) = mail {
            let (smtp, tls) = match tls {
                0 => (format!("mail.{base}"), "implicit"),
                1 => (format!("mail.{base}"), "starttls"),
                _ => ("127.0.0.1".to_owned(), "'off'"),
            };
            let reset = reset && host.sso.password_login;
            let notifications = notifications || !reset;
            host.email = Some(serde_yaml::from_str(&format!(
                "{{smtp_host: {smtp}, tls: {tls}, user: matrix, password_file: /run/agenix/smtp, \
                 from: 'Chat <noreply@{base}>', password_reset: {reset}, notifications: {notifications}}}"
            )).expect("email"));
        }
        host
    }
}

fn yaml_get<'a>(v: &'a Yaml, key: &str) -> &'a Yaml {
    v.get(key)
        .unwrap_or_else(|| panic!("homeserver.yaml lacks {key}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_valid_host_renders_consistent_private_configs(host in host()) {
        let ctx = RenderContext { output_dir: "/etc/ospw-matrix".into() };
        let rendered = render(&host, &ctx).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let file = |p: &str| rendered.get(p).unwrap_or_else(|| panic!("{p} not rendered")).to_owned();
        let url = host.homeserver_url();

        // Synapse, read as plain YAML.
        let hs_text = file("synapse/homeserver.yaml");
        let hs: Yaml = serde_yaml::from_str(&hs_text).expect("homeserver.yaml parses");
        prop_assert_eq!(yaml_get(&hs, "server_name").as_str(), Some(host.server_name.as_str()));
        prop_assert_eq!(yaml_get(&hs, "public_baseurl").as_str().map(|s| s.trim_end_matches('/')), Some(url.as_str()));
        prop_assert_eq!(yaml_get(&hs, "federation_domain_whitelist"), &Yaml::Sequence(vec![]));
        prop_assert_eq!(yaml_get(&hs, "trusted_key_servers"), &Yaml::Sequence(vec![]));
        for key in ["enable_registration", "allow_guest_access", "report_stats", "turn_allow_guests",
                    "allow_public_rooms_over_federation", "allow_profile_lookup_over_federation", "serve_server_wellknown"] {
            prop_assert_eq!(yaml_get(&hs, key).as_bool(), Some(false), "{}", key);
        }
        let listeners = yaml_get(&hs, "listeners").as_sequence().expect("listeners is a list");
        prop_assert_eq!(listeners.len(), if host.metrics.enable { 2 } else { 1 });
        prop_assert_eq!(yaml_get(&hs, "enable_metrics").as_bool(), Some(host.metrics.enable));
        for l in listeners {
            if l.get("type").and_then(Yaml::as_str) == Some("metrics") {
                // Metrics on loopback only.
                let binds: Vec<&str> = l.get("bind_addresses").and_then(Yaml::as_sequence).expect("bind_addresses")
                    .iter().filter_map(Yaml::as_str).collect();
                prop_assert_eq!(binds, vec!["127.0.0.1"]);
                prop_assert_eq!(l.get("port").and_then(Yaml::as_u64), Some(u64::from(host.metrics.synapse_port)));
                continue;
            }
            for r in l.get("resources").and_then(Yaml::as_sequence).expect("resources") {
                let names: Vec<&str> = r.get("names").and_then(Yaml::as_sequence).expect("names")
                    .iter().filter_map(Yaml::as_str).collect();
                prop_assert_eq!(names, vec!["client"]);
            }
        }
        let turn_secret = host.secrets.path(SecretKind::TurnSharedSecret);
        prop_assert_eq!(yaml_get(&hs, "turn_shared_secret_path").as_str(), turn_secret.to_str());
        let uris: Vec<&str> = yaml_get(&hs, "turn_uris").as_sequence().expect("turn_uris")
            .iter().filter_map(Yaml::as_str).collect();
        let expected_uri = format!("turn:{}:{}?transport=udp", host.turn_host(), host.turn.port);
        prop_assert!(uris.contains(&expected_uri.as_str()), "{:?}", uris);
        prop_assert_eq!(uris.iter().any(|u| u.starts_with("turns:")), host.turn.tls.is_some());
        let model = HomeserverConfig::from_yaml_str(&hs_text).expect("model parses");
        prop_assert!(model.privacy_violations().is_empty(), "{}", model.privacy_violations());
        // Sign-in: a provider creates accounts only when told; secrets by path only.
        for (p, emitted) in host.sso.providers.iter().zip(model.oidc_providers.iter().flatten()) {
            prop_assert_eq!(emitted.enable_registration, Some(p.auto_create || !p.require.is_empty()));
            prop_assert_eq!(emitted.client_secret_path.as_deref(), p.client_secret_file.to_str());
        }
        prop_assert!(!hs_text.contains("client_secret:") && !hs_text.contains("smtp_pass"));
        prop_assert_eq!(
            hs.get("password_config").and_then(|p| p.get("enabled")).and_then(Yaml::as_bool).unwrap_or(true),
            host.sso.password_login
        );

        // coturn, read as lines.
        let conf = file("coturn/turnserver.conf");
        let lines: Vec<&str> = conf.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        for flag in ["use-auth-secret", "no-cli", "no-tcp-relay", "no-multicast-peers"] {
            prop_assert!(lines.contains(&flag), "{} missing", flag);
        }
        prop_assert!(!lines.iter().any(|l| l.starts_with("static-auth-secret")), "template holds a secret");
        prop_assert!(!lines.iter().any(|l| l.starts_with("allow-loopback-peers")));
        for range in ["10.0.0.0-10.255.255.255", "127.0.0.0-127.255.255.255", "192.168.0.0-192.168.255.255"] {
            prop_assert!(lines.iter().any(|l| *l == format!("denied-peer-ip={range}")), "{} not denied", range);
        }
        let realm = format!("realm={}", host.turn_realm());
        prop_assert!(lines.contains(&realm.as_str()));
        let (first, last) = host.turn.relay_ports.split_once('-').expect("range");
        let min_port = format!("min-port={first}");
        let max_port = format!("max-port={last}");
        prop_assert!(lines.contains(&min_port.as_str()));
        prop_assert!(lines.contains(&max_port.as_str()));
        let exporter = format!("prometheus-port={}", host.metrics.coturn_port);
        prop_assert_eq!(lines.contains(&exporter.as_str()), host.metrics.enable);
        prop_assert_eq!(lines.contains(&"prometheus-address=127.0.0.1"), host.metrics.enable);
        prop_assert!(TurnserverConf::parse(&conf).expect("model parses").privacy_violations().is_empty());

        // Element and .well-known, read as plain JSON.
        let element_text = file("element/config.json");
        let element: Json = serde_json::from_str(&element_text).expect("config.json parses");
        prop_assert_eq!(element["default_server_config"]["m.homeserver"]["base_url"].as_str(), Some(url.as_str()));
        prop_assert_eq!(element["default_server_config"]["m.homeserver"]["server_name"].as_str(), Some(host.server_name.as_str()));
        prop_assert_eq!(element["brand"].as_str(), Some(host.element.brand.as_str()));
        prop_assert_eq!(&element["disable_custom_urls"], &Json::Bool(true));
        prop_assert_eq!(&element["default_federate"], &Json::Bool(false));
        prop_assert_eq!(&element["integrations_ui_url"], &Json::Null);
        prop_assert!(element.get("posthog").is_none() && element.get("bug_report_endpoint_url").is_none());
        prop_assert!(ElementConfig::parse(&element_text).expect("model parses").privacy_violations().is_empty());
        let well_known: Json = serde_json::from_str(&file("well-known/matrix/client")).expect("well-known parses");
        prop_assert_eq!(well_known["m.homeserver"]["base_url"].as_str(), Some(url.as_str()));

        // Caddy routes to the listener and serves the hosts.
        let sites = file("caddy/sites.caddy");
        let upstream = match &host.synapse.listen {
            SynapseListen::Tcp { address, port } if address.contains(':') => format!("[{address}]:{port}"),
            SynapseListen::Tcp { address, port } => format!("{address}:{port}"),
            SynapseListen::Unix { path } => format!("unix/{}", path.display()),
        };
        prop_assert!(sites.contains(&upstream), "{} not proxied in\n{}", upstream, sites);
        prop_assert!(sites.contains(&host.matrix_host) && sites.contains(&host.element_host));
        let lines: Vec<&str> = sites.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            if line.contains("/.well-known/matrix/server") {
                prop_assert_eq!(lines.get(i + 1).copied(), Some("respond 404"), "server discovery served:\n{}", sites);
            }
        }

        // Caddy's metrics only in their own loopback site.
        let metrics_site = format!("http://127.0.0.1:{} {{\n\tbind 127.0.0.1\n\tmetrics\n}}\n", host.metrics.caddy_port);
        prop_assert_eq!(sites.contains(&metrics_site), host.metrics.enable);
        prop_assert_eq!(lines.iter().filter(|l| **l == "metrics").count(), usize::from(host.metrics.enable));

        // host.json round-trips to the same description.
        let back = parse_host(&file("host.json"), "host.json").expect("host.json parses");
        prop_assert_eq!(back, host);
    }
}
