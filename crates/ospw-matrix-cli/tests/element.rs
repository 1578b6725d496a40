//! Element Web: the rendered `config.json` keeps every invariant and points
//! at this server only.

mod support;

use ospw_matrix::components::element::ElementConfig;
use support::{assert_fails_naming, assert_renders, render_to, run, TempDir};

fn render_example(dir: &TempDir) -> (serde_json::Value, ElementConfig) {
    let out = dir.path().join("rendered");
    assert_renders(None, &out);
    let text = std::fs::read_to_string(out.join("element/config.json")).unwrap();
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    let conf = ElementConfig::parse(&text).unwrap();
    (raw, conf)
}

#[test]
fn example_config_keeps_every_invariant() {
    let dir = TempDir::new("element");
    let (raw, conf) = render_example(&dir);
    assert!(
        conf.privacy_violations().is_empty(),
        "{}",
        conf.privacy_violations()
    );
    assert_eq!(
        raw["default_server_config"]["m.homeserver"]["base_url"],
        "https://matrix.example.org"
    );
    assert_eq!(
        raw["default_server_config"]["m.homeserver"]["server_name"],
        "example.org"
    );
    assert!(raw["default_server_config"]
        .get("m.identity_server")
        .is_none());
    assert_eq!(
        raw["room_directory"]["servers"],
        serde_json::json!(["example.org"])
    );
    assert_eq!(raw["brand"], "Example Chat");
    assert_eq!(raw["default_theme"], "dark");
    for key in [
        "disable_custom_urls",
        "disable_guests",
        "disable_3pid_login",
    ] {
        assert_eq!(raw[key], true, "{key}");
    }
    assert_eq!(raw["default_federate"], false);
    // Explicit nulls: Element's defaults would otherwise use scalar.vector.im.
    let obj = raw.as_object().unwrap();
    for key in ["integrations_ui_url", "integrations_rest_url"] {
        assert_eq!(obj.get(key), Some(&serde_json::Value::Null), "{key}");
    }
    for key in [
        "posthog",
        "sentry",
        "piwik",
        "bug_report_endpoint_url",
        "privacy_policy_url",
        "jitsi",
        "element_call",
        "map_style_url",
    ] {
        assert!(!obj.contains_key(key), "{key} must be absent");
    }
    assert_eq!(raw["setting_defaults"]["fallbackICEServerAllowed"], false);
    assert_eq!(raw["setting_defaults"]["UIFeature.widgets"], false);
    // Nothing in the file points at a third party.
    let text = raw.to_string();
    for host in ["element.io", "vector.im", "matrix.org", "posthog", "sentry"] {
        assert!(!text.contains(host), "{host} in {text}");
    }
    // A round trip through the model keeps the file as it is.
    assert_eq!(conf.to_value(), raw);
}

#[test]
fn breaking_settings_are_refused() {
    let dir = TempDir::new("element-bad");
    let host = dir.path().join("host.yaml");
    let example = String::from_utf8(run(&["example"]).stdout).unwrap();
    let yaml = example.replace(
        "  webroot: /var/lib/ospw-matrix/element-web\n",
        "  webroot: /var/lib/ospw-matrix/element-web\n  settings:\n    \
         bug_report_endpoint_url: https://element.io/bugreports/submit\n    \
         default_federate: true\n",
    );
    assert_ne!(yaml, example, "the example changed: update this test");
    std::fs::write(&host, yaml).unwrap();
    let out = dir.path().join("rendered");
    let o = render_to(Some(&host), &out);
    assert_fails_naming(
        &o,
        &[
            "element.settings.bug_report_endpoint_url",
            "element.settings.default_federate",
        ],
    );
    assert!(!out.exists(), "nothing is written on error");
}

/// Every typed Element field set: the rendered `config.json` still has the
/// types Element's `IConfigOptions` declares for each key, keeps every
/// invariant (with the hosts the typed fields name), and carries them.
#[test]
fn typed_fields_render_a_config_element_reads() {
    let dir = TempDir::new("element-typed");
    let host = dir.path().join("host.yaml");
    std::fs::write(
        &host,
        format!(
            "{}element:\n  brand: Our Chat\n  force_turn: true\n  \
             map_style_url: https://tiles.example.org/style.json\n  jitsi_domain: meet.example.org\n  \
             branding:\n    welcome_text: Hello\n    logo_file: /etc/chat/logo.png\n    \
             footer_links: [{{text: Rules, url: 'https://example.org/rules'}}]\n    \
             help_url: https://wiki.example.org/help\n    desktop_download_url: https://example.org/apps\n\
             synapse:\n  presence: false\n",
            support::EXAMPLE_NAMES
        ),
    )
    .unwrap();
    let out = dir.path().join("rendered");
    assert_renders(Some(&host), &out);
    let text = std::fs::read_to_string(out.join("element/config.json")).unwrap();
    let conf = ElementConfig::parse(&text).unwrap();
    assert_eq!(conf.type_errors(), Default::default(), "{text}");
    let mut allowed = conf.own_hosts();
    for h in [
        "tiles.example.org",
        "meet.example.org",
        "example.org",
        "wiki.example.org",
    ] {
        allowed.hosts.push(h.into());
    }
    assert!(
        conf.privacy_violations_allowing(&allowed).is_empty(),
        "{}",
        conf.privacy_violations_allowing(&allowed)
    );
    // Alone, the file names the typed services' hosts as foreign.
    assert!(conf.privacy_violations().mentions("map_style_url"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["setting_defaults"]["webRtcForceTURN"], true);
    assert_eq!(v["map_style_url"], "https://tiles.example.org/style.json");
    assert_eq!(v["jitsi"]["preferred_domain"], "meet.example.org");
    assert_eq!(v["branding"]["auth_header_logo_url"], "branding/logo.png");
    assert_eq!(v["desktop_builds"]["available"], true);
    assert!(v["setting_defaults"]
        .get("UIFeature.locationSharing")
        .is_none());
    assert!(v["setting_defaults"].get("UIFeature.widgets").is_none());
    let page = std::fs::read_to_string(out.join("element/welcome.html")).unwrap();
    assert!(
        page.contains("<h1>Our Chat</h1>") && page.contains("<p>Hello</p>"),
        "{page}"
    );
}
