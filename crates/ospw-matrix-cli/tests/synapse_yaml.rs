//! What Synapse's own reader makes of what we write and of what we refuse:
//!
//! - every value the emitter writes into `homeserver.yaml` is read back by
//!   Synapse's loader (`read_config_files`, PyYAML's `safe_load`) as
//!   exactly the value that was checked, however it is spelt (`yes`,
//!   `0660`, `1:30`, `<<`, `=`, line separators, huge floats, …);
//! - each outbound-range setting the renderer refuses is one that Synapse
//!   would apply, opening a private or loopback address to its outbound
//!   requests (checked with Synapse's own `_is_ip_blocked`), and a merge
//!   key in the file would be applied by Synapse, while the same key
//!   written by our emitter is not.
//!
//! Needs Synapse's virtual environment (`OSPW_SYNAPSE_PYTHON`); under CI a
//! missing one fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use ospw_matrix::components::pyyaml;
use ospw_matrix::components::synapse::HomeserverConfig;
use serde_json::Value as Json;
use serde_yaml::Value;
use support::{require, run, synapse_python, TempDir, EXAMPLE_NAMES};

/// Reads each file with Synapse's own config-file reader and prints it as
/// JSON, floats as `{"$float": repr}` so they compare exactly.
const READ: &str = r#"
import sys, json
from synapse.config._base import read_config_files
def conv(v):
    if isinstance(v, float):
        return {"$float": repr(v)}
    if isinstance(v, dict):
        return {k: conv(x) for k, x in v.items()}
    if isinstance(v, list):
        return [conv(x) for x in v]
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return {"$type": type(v).__name__, "repr": repr(v)}
for path in sys.argv[1:]:
    d = read_config_files([path])
    assert all(isinstance(k, str) for k in d), [k for k in d if not isinstance(k, str)]
    print(json.dumps(conv(d)))
"#;

/// Loads each file with Synapse's `HomeServerConfig` and prints which
/// probe addresses its outbound requests may reach, using Synapse's own
/// `_is_ip_blocked` with the allow- and blocklists it built.
const REACH: &str = r#"
import sys, json
from netaddr import IPAddress
from synapse.config.homeserver import HomeServerConfig
from synapse.http.client import _is_ip_blocked
PROBES = ["127.0.0.1", "10.1.2.3", "192.168.1.1", "169.254.169.254", "100.64.0.1",
          "::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1"]
def reach(allow, block):
    return [p for p in PROBES if not _is_ip_blocked(IPAddress(p), allow, block)]
for path in sys.argv[1:]:
    c = HomeServerConfig.load_config("", ["-c", path])
    s, m = c.server, c.media
    print(json.dumps({
        "outbound": reach(s.ip_range_allowlist, s.ip_range_blocklist),
        "federation": reach(s.federation_ip_range_allowlist, s.federation_ip_range_blocklist),
        "previews": reach(m.url_preview_ip_range_allowlist, m.url_preview_ip_range_blocklist)
            if m.url_preview_enabled else [],
    }))
"#;

fn python() -> Option<PathBuf> {
    require("Synapse's Python (OSPW_SYNAPSE_PYTHON)", synapse_python())
}

/// Runs `script` over `files`, one JSON line per file.
fn per_file(python: &Path, script: &str, files: &[PathBuf]) -> Vec<Json> {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Json> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("probe JSON"))
        .collect();
    assert_eq!(lines.len(), files.len());
    lines
}

/// `ours` (the checked value) and `theirs` (what PyYAML read, floats as
/// `{"$float": repr}`) are the same value.
fn same(ours: &Json, theirs: &Json, path: &str) -> Result<(), String> {
    match (ours, theirs) {
        (Json::Number(n), Json::Object(t)) if n.is_f64() => {
            let repr = t.get("$float").and_then(Json::as_str).unwrap_or_default();
            let theirs: f64 = repr.parse().map_err(|_| format!("{path}: {repr}"))?;
            let mine = n.as_f64().unwrap_or(f64::NAN);
            if mine.to_bits() == theirs.to_bits() {
                Ok(())
            } else {
                Err(format!("{path}: {mine:?} read as {repr}"))
            }
        }
        (Json::Array(a), Json::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (x, y))| same(x, y, &format!("{path}[{i}]"))),
        (Json::Object(a), Json::Object(b)) if a.len() == b.len() => {
            a.iter().try_for_each(|(k, x)| {
                let y = b
                    .get(k)
                    .ok_or_else(|| format!("{path}: key {k:?} missing (keys {:?})", b.keys()))?;
                same(x, y, &format!("{path}.{k}"))
            })
        }
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{path}: {a} read as {b}")),
    }
}

/// A deterministic source of tricky strings: fragments YAML readers treat
/// specially, glued together at random.
fn tricky_strings() -> Vec<String> {
    const FRAGMENTS: [&str; 64] = [
        "yes",
        "No",
        "ON",
        "off",
        "y",
        "n",
        "true",
        "False",
        "null",
        "Null",
        "~",
        "<<",
        "=",
        "0",
        "1",
        "0660",
        "0o17",
        "0x1F",
        "0b101",
        "1_000",
        "1:30",
        "190:20:30",
        ".inf",
        "-.Inf",
        ".nan",
        "1e3",
        "1.0e+3",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "#",
        " #",
        ": ",
        ":",
        "-",
        "- ",
        "?",
        "'",
        "\"",
        "\\",
        "!",
        "!!str",
        "&a",
        "*a",
        "%",
        "@",
        "`",
        "[",
        "]",
        "{",
        "}",
        ",",
        "|",
        ">",
        "é",
        "😀",
        "\u{85}",
        "\u{2028}",
        "\u{feff}",
        "\u{7f}",
    ];
    let mut out: Vec<String> = FRAGMENTS.iter().map(|s| (*s).to_owned()).collect();
    out.extend(
        [
            "",
            "\u{1}",
            "\u{0}",
            "a\u{2029}b",
            "x\u{a0}",
            "\u{fffd}",
            "\u{10ffff}",
        ]
        .map(String::from),
    );
    // Keys longer than PyYAML's simple keys (1024 characters), also once
    // escaped, and one holding a mapping and a list.
    out.push("k".repeat(1100));
    out.push("\u{1}".repeat(300));
    out.push(format!("{}: x", "\u{2028}".repeat(200)));
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..1500 {
        let len = (next() % 4 + 1) as usize;
        let s: String = (0..len)
            .map(|_| FRAGMENTS[(next() % FRAGMENTS.len() as u64) as usize])
            .collect();
        out.push(s);
    }
    out
}

#[test]
fn emitted_values_mean_to_synapse_what_was_checked() {
    let Some(python) = python() else { return };
    let tmp = TempDir::new("synapse-yaml-values");
    let strings = tricky_strings();
    let mut values = serde_yaml::Mapping::new();
    for (i, s) in strings.iter().enumerate() {
        // Each string as a key, as a value, and inside a list and a map.
        values.insert(Value::String(s.clone()), Value::String(s.clone()));
        values.insert(
            Value::String(format!("list-{i}")),
            Value::Sequence(vec![Value::String(s.clone()), Value::Sequence(vec![])]),
        );
    }
    let numbers: Vec<Value> = [
        serde_yaml::Number::from(0u64),
        serde_yaml::Number::from(u64::MAX),
        serde_yaml::Number::from(i64::MIN),
        serde_yaml::Number::from(1e300),
        serde_yaml::Number::from(1.5e-7),
        serde_yaml::Number::from(-0.0),
        serde_yaml::Number::from(0.1),
        serde_yaml::Number::from(f64::MAX),
        serde_yaml::Number::from(f64::MIN_POSITIVE),
        serde_yaml::Number::from(5e-324),
        serde_yaml::Number::from(123_456.789),
        serde_yaml::Number::from(3.0),
    ]
    .into_iter()
    .map(Value::Number)
    .collect();
    values.insert(Value::String("numbers".into()), Value::Sequence(numbers));
    values.insert(
        Value::String("m".repeat(2000)),
        serde_yaml::from_str("{a: [1, {b: 2}], c: [[x]]}").expect("yaml"),
    );
    values.insert(
        Value::String("s".repeat(2000)),
        serde_yaml::from_str("[{a: 1}, [b], c]").expect("yaml"),
    );
    values.insert(
        Value::String("nested".into()),
        serde_yaml::from_str("{a: [{b: {c: [[], {}, null, true, false]}}], '': {'': ''}}")
            .expect("yaml"),
    );
    // Synapse's reader wants report_stats set.
    let mut config = HomeserverConfig {
        server_name: Some("example.org".into()),
        report_stats: Some(false),
        ..HomeserverConfig::default()
    };
    config
        .extra
        .insert("x_ospw_probe".into(), Value::Mapping(values));
    let text = config.to_yaml_string().expect("emits");
    let file = tmp.path().join("homeserver.yaml");
    std::fs::write(&file, &text).expect("write");
    let read = per_file(&python, READ, std::slice::from_ref(&file));
    let ours = serde_json::to_value(config.to_yaml_value().expect("value")).expect("json");
    if let Err(e) = same(&ours, &read[0], "") {
        panic!("Synapse reads the emitted file differently: {e}");
    }
    // And our own reader agrees, so a round trip keeps every value (it
    // refuses a key `<<`, quoted or not: without it, the rest).
    if let Some(Value::Mapping(values)) = config.extra.get_mut("x_ospw_probe") {
        values.remove("<<");
    }
    let text = config.to_yaml_string().expect("emits");
    let again = HomeserverConfig::from_yaml_str(&text).expect("re-reads");
    assert_eq!(again, config);
}

/// Renders the example (with `extra` appended to the host description)
/// with real secrets, returning the output's `homeserver.yaml` path.
fn render_example(tmp: &Path, tag: &str, extra: &str) -> PathBuf {
    let dir = tmp.join(tag);
    let secrets = dir.join("secrets");
    let out = run(&["secrets", "init", "--dir", secrets.to_str().expect("utf8")]);
    assert!(out.status.success(), "secrets init: {out:?}");
    let host = dir.join("host.yaml");
    std::fs::write(
        &host,
        format!(
            "{EXAMPLE_NAMES}synapse:\n  data_dir: {dir}/data\n{extra}secrets:\n  dir: {dir}/secrets\n",
            dir = dir.display()
        ),
    )
    .expect("write host");
    support::assert_renders(Some(&host), &dir.join("out"));
    dir.join("out/synapse/homeserver.yaml")
}

/// `homeserver` with the top-level keys of `settings` replaced, written
/// by the emitter without the privacy check: what Synapse would read had
/// the setting been accepted.
fn with_settings(homeserver: &Path, settings: &str, dest: PathBuf) -> PathBuf {
    let text = std::fs::read_to_string(homeserver).expect("read");
    let mut value = HomeserverConfig::from_yaml_str(&text)
        .expect("parses")
        .to_yaml_value()
        .expect("value");
    let patch: serde_yaml::Mapping = serde_yaml::from_str(settings).expect("settings");
    if let Value::Mapping(map) = &mut value {
        for (k, v) in patch {
            map.insert(k, v);
        }
    }
    std::fs::write(&dest, pyyaml::to_string(&value).expect("emits")).expect("write");
    dest
}

#[test]
fn refused_outbound_settings_are_ones_synapse_would_apply() {
    let Some(python) = python() else { return };
    let tmp = TempDir::new("synapse-yaml-reach");
    let plain = render_example(tmp.path(), "plain", "");
    let previews = render_example(tmp.path(), "previews", "  url_previews: true\n");
    // (base, settings, which reach list opens, an address it opens)
    let cases: [(&Path, &str, &str, &str); 10] = [
        (
            &plain,
            "ip_range_whitelist: ['127.0.0.1']",
            "outbound",
            "127.0.0.1",
        ),
        (
            &plain,
            "ip_range_whitelist: ['0.0.0.0/0']",
            "outbound",
            "10.1.2.3",
        ),
        (&plain, "ip_range_whitelist: ['::/0']", "outbound", "::1"),
        (
            &plain,
            "ip_range_whitelist: ['::ffff:0:0/96']",
            "outbound",
            "::ffff:127.0.0.1",
        ),
        (
            &plain,
            "ip_range_whitelist: ['169.254.169.254']",
            "outbound",
            "169.254.169.254",
        ),
        (
            &plain,
            "ip_range_whitelist: ['fd00::/8']",
            "outbound",
            "fd00::1",
        ),
        (&plain, "ip_range_blacklist: []", "outbound", "127.0.0.1"),
        (
            &plain,
            "federation_ip_range_blacklist: []",
            "federation",
            "127.0.0.1",
        ),
        (
            &previews,
            "url_preview_ip_range_whitelist: ['192.168.0.0/16']",
            "previews",
            "192.168.1.1",
        ),
        (
            &previews,
            "url_preview_ip_range_blacklist: ['127.0.0.0/8']",
            "previews",
            "10.1.2.3",
        ),
    ];
    let mut files = vec![plain.clone(), previews.clone()];
    for (i, (base, settings, _, _)) in cases.iter().enumerate() {
        files.push(with_settings(
            base,
            settings,
            tmp.path().join(format!("case-{i}.yaml")),
        ));
        // The renderer refuses the same setting, naming it.
        let key = settings.split(':').next().unwrap_or_default();
        let host = tmp.path().join(format!("host-{i}.yaml"));
        let previews_on = if std::ptr::eq(*base, previews.as_path()) {
            "  url_previews: true\n"
        } else {
            ""
        };
        std::fs::write(
            &host,
            format!("{EXAMPLE_NAMES}synapse:\n{previews_on}  settings:\n    {settings}\n"),
        )
        .expect("write host");
        let check = run(&["check", "--config", host.to_str().expect("utf8")]);
        support::assert_fails_naming(&check, &[&format!("synapse.settings.{key}")]);
    }
    let reach = per_file(&python, REACH, &files);
    // What we render opens nothing.
    for r in &reach[..2] {
        for list in ["outbound", "federation", "previews"] {
            assert_eq!(r[list], Json::Array(vec![]), "rendered config reaches {r}");
        }
    }
    for ((_, settings, list, addr), r) in cases.iter().zip(&reach[2..]) {
        let opened: Vec<&str> = r[list]
            .as_array()
            .map(|a| a.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        assert!(
            opened.contains(addr),
            "Synapse with {settings} does not reach {addr} ({list}: {opened:?}): the case proves nothing"
        );
    }
}

#[test]
fn merge_keys_are_applied_by_synapse_and_never_reach_it() {
    let Some(python) = python() else { return };
    let tmp = TempDir::new("synapse-yaml-merge");
    let plain = render_example(tmp.path(), "plain", "");
    let rendered = std::fs::read_to_string(&plain).expect("read");
    let merge = "<<: {ip_range_whitelist: ['127.0.0.1/32']}\n";
    // A merge key in the file: Synapse applies it ...
    let merged = tmp.path().join("merged.yaml");
    std::fs::write(&merged, format!("{rendered}{merge}")).expect("write");
    // ... our reader of an existing file refuses it, naming it ...
    let err =
        HomeserverConfig::from_yaml_str(&format!("{rendered}{merge}")).expect_err("merge key");
    assert!(err.to_string().contains("<<"), "{err}");
    // ... and a key `<<` that reaches the emitter is written so that
    // Synapse reads it as an ordinary (ignored) key.
    let mut config = HomeserverConfig::from_yaml_str(&rendered).expect("parses");
    config.extra.insert(
        "<<".into(),
        serde_yaml::from_str("{ip_range_whitelist: ['127.0.0.1/32']}").expect("yaml"),
    );
    let emitted = tmp.path().join("emitted.yaml");
    std::fs::write(&emitted, config.to_yaml_string().expect("emits")).expect("write");
    let reach = per_file(&python, REACH, &[merged, emitted.clone()]);
    let opened = reach[0]["outbound"].as_array().cloned().unwrap_or_default();
    assert!(opened.contains(&Json::from("127.0.0.1")), "{}", reach[0]);
    assert_eq!(reach[1]["outbound"], serde_json::json!([]), "{}", reach[1]);
    let read = per_file(&python, READ, &[emitted]);
    assert!(read[0].get("<<").is_some(), "the key stays a key");
    // The host description with the merge key is refused (the bad-input
    // table checks the field); so is the same in JSON.
    let host = tmp.path().join("host.yaml");
    std::fs::write(
        &host,
        format!("{EXAMPLE_NAMES}synapse:\n  settings:\n    {merge}"),
    )
    .expect("write");
    let check = run(&["check", "--config", host.to_str().expect("utf8")]);
    support::assert_fails_naming(&check, &["synapse.settings.<<", "merge key"]);
}
