//! In-process benchmark: parse + validate + render the embedded example host.
//! No framework (keeps the dependency tree small): a warm-up, then the
//! median, mean and 99th percentile over many runs. `cargo bench -p ospw-matrix`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ospw_matrix::{parse_host, render, validate, RenderContext, EXAMPLE_HOST_YAML};

fn measure(name: &str, runs: usize, mut f: impl FnMut()) {
    for _ in 0..runs / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / runs as u32;
    let median = samples[runs / 2];
    let p99 = samples[runs * 99 / 100];
    println!(
        "{name:<32} median {median:>10.2?}  mean {mean:>10.2?}  p99 {p99:>10.2?}  ({runs} runs)"
    );
}

fn main() {
    let ctx = RenderContext {
        output_dir: "/etc/ospw-matrix".into(),
    };
    let host = parse_host(EXAMPLE_HOST_YAML, "example").expect("example parses");
    measure("parse example host", 5000, || {
        black_box(parse_host(black_box(EXAMPLE_HOST_YAML), "example").ok());
    });
    measure("validate example host", 5000, || {
        black_box(validate(black_box(&host)).ok());
    });
    measure("parse + validate + render", 5000, || {
        let host = parse_host(black_box(EXAMPLE_HOST_YAML), "example").expect("parses");
        black_box(render(&host, &ctx).ok());
    });
    // Deep nesting is refused, in time that does not grow with the depth.
    for (name, depth) in [
        ("refuse 100,000 flow levels", 100_000),
        ("refuse 1,000 flow levels", 1_000),
        ("refuse 65 flow levels", 65),
    ] {
        let text = format!(
            "{EXAMPLE_HOST_YAML}\nextra:\n  x: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        measure(name, 200, || {
            black_box(parse_host(black_box(&text), "deep").err());
        });
    }
}
