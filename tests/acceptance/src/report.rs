//! One line per check, and the summary line `N passed, N failed`.

use std::time::Instant;

/// The checks run so far.
pub struct Report {
    started: Instant,
    passed: usize,
    failed: Vec<String>,
    prefix: String,
}

impl Default for Report {
    fn default() -> Self {
        Self::new()
    }
}

impl Report {
    /// An empty report; the clock starts now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            passed: 0,
            failed: Vec::new(),
            prefix: String::new(),
        }
    }

    /// Prefixes the names of the checks and sections that follow (e.g.
    /// `[workers] `, when the same checks run against another stack).
    pub fn set_prefix(&mut self, prefix: &str) {
        self.prefix = prefix.to_owned();
    }

    /// Records one check: `Ok(detail)` passes, `Err` fails with its cause.
    /// Returns whether it passed.
    pub fn check<T: std::fmt::Display>(&mut self, name: &str, result: anyhow::Result<T>) -> bool {
        let t = self.started.elapsed().as_secs_f32();
        let name = format!("{}{name}", self.prefix);
        let name = name.as_str();
        match result {
            Ok(detail) => {
                self.passed += 1;
                let detail = detail.to_string();
                if detail.is_empty() {
                    println!("PASS [{t:6.1}s] {name}");
                } else {
                    println!("PASS [{t:6.1}s] {name} ({detail})");
                }
                true
            }
            Err(e) => {
                println!("FAIL [{t:6.1}s] {name}: {e:#}");
                self.failed.push(name.to_owned());
                false
            }
        }
    }

    /// A section heading.
    pub fn section(&self, title: &str) {
        println!("\n== {}{title}", self.prefix);
    }

    /// Number of passed checks.
    pub fn passed(&self) -> usize {
        self.passed
    }

    /// Names of the failed checks.
    pub fn failed(&self) -> &[String] {
        &self.failed
    }

    /// Prints the summary line.
    pub fn summary(&self) {
        println!();
        for name in &self.failed {
            println!("failed: {name}");
        }
        println!(
            "acceptance: {} passed, {} failed ({:.0}s)",
            self.passed,
            self.failed.len(),
            self.started.elapsed().as_secs_f32()
        );
    }
}
