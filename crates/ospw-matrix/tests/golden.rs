//! Golden files: the rendered example host, byte for byte. A change to any
//! emitter shows up here as a reviewable diff of `tests/golden/`.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p ospw-matrix --test golden`.

use std::path::{Path, PathBuf};

use ospw_matrix::{example_host, render, RenderContext};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/example")
}

#[test]
fn rendered_example_matches_golden_files() {
    let host = example_host().expect("example parses");
    compare(&host, &golden_dir());
}

/// The example with `synapse.workers: {preset: medium}`: every kind of
/// worker, so a change to the workers' emitter shows up as a diff too.
#[test]
fn rendered_example_with_workers_matches_golden_files() {
    let mut host = example_host().expect("example parses");
    host.synapse.workers = Some(ospw_matrix::host::WorkersSettings {
        preset: Some(ospw_matrix::host::workers::WorkerPreset::Medium),
        ..Default::default()
    });
    compare(
        &host,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/workers-medium"),
    );
}

fn compare(host: &ospw_matrix::HostDescription, dir: &Path) {
    let ctx = RenderContext {
        output_dir: "/etc/ospw-matrix".into(),
    };
    let rendered = render(host, &ctx).expect("example renders");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for file in &rendered.files {
        let golden = dir.join(&file.path);
        if update {
            std::fs::create_dir_all(golden.parent().expect("has parent"))
                .expect("create golden dir");
            std::fs::write(&golden, &file.contents).expect("write golden");
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == file.contents => {}
            Ok(expected) => mismatches.push(format!(
                "{} differs from {}:\n--- expected\n{expected}\n--- rendered\n{}",
                file.path.display(),
                golden.display(),
                file.contents
            )),
            Err(e) => mismatches.push(format!("{}: {e}", golden.display())),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n(if the change is intended: UPDATE_GOLDEN=1 cargo test -p ospw-matrix --test golden)",
        mismatches.join("\n")
    );
}
