//! The committed JSON Schema of the host description is current, and the
//! example host validates against it with an independent validator.

mod support;

use std::path::Path;
use std::process::Command;

fn committed_schema_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/host-description.schema.json")
}

#[test]
fn committed_schema_is_current() {
    let output = support::run(&["schema"]);
    assert!(output.status.success());
    let generated = String::from_utf8(output.stdout).expect("utf-8");
    let committed =
        std::fs::read_to_string(committed_schema_path()).expect("read committed schema");
    assert!(
        generated == committed,
        "schema/host-description.schema.json is stale: run `cargo run -q -p ospw-matrix-cli -- schema > schema/host-description.schema.json`"
    );
}

#[test]
fn example_validates_against_schema_with_python_jsonschema() {
    let Some(python) = support::require(
        "Synapse's venv (python with jsonschema)",
        support::synapse_python(),
    ) else {
        return;
    };
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/host.yaml");
    let script = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.validators.validator_for(schema).check_schema(schema)
v = jsonschema.validators.validator_for(schema)(schema)
good = yaml.safe_load(open(sys.argv[2]))
errors = list(v.iter_errors(good))
assert not errors, errors
bad = dict(good, federation=True)
assert list(v.iter_errors(bad)), "an unknown key must be rejected by the schema"
print("ok")
"#;
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(committed_schema_path())
        .arg(example)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The word lists and example the NixOS module's secret check reads
/// (modules/secret-detect.nix) are the library's current ones.
#[test]
fn committed_secret_rules_are_current() {
    let output = support::run(&["schema", "--secret-rules"]);
    assert!(output.status.success());
    let generated = String::from_utf8(output.stdout).expect("utf-8");
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/secret-rules.json"),
    )
    .expect("read committed secret rules");
    assert!(
        generated == committed,
        "schema/secret-rules.json is stale: run `cargo run -q -p ospw-matrix-cli -- schema --secret-rules > schema/secret-rules.json`"
    );
}
